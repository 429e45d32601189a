#!/usr/bin/env python3
"""check_sql_qualified.py: the "second wall" lint for internal query texts.

Every operator in order_engine's internal SQL is written as
OPERATOR(pg_catalog.op), so a bare "=" can never resolve through a
search_path to an operator someone else defined.  This script reads the C
string literals of the given files (default: src/**/*.c), joins the adjacent
literals of one statement (macros such as KEYS_TABLE are expanded from
their #define; the fragments that one function appends to the same
StringInfo are joined into one statement, printf conversions such as %s
standing for an identifier), and reports, as file:line, every

  * comparison/arithmetic operator (any run of + - * / < > = ~ ! @ # % ^
    & | ` ?) outside quotes and comments that is not written as
    OPERATOR(schema.op), except
      - the assignment "=" of an UPDATE ... SET / DO UPDATE SET list,
      - "=>" (named argument) and "*" where no operand precedes it
        (count(*), SELECT *, t.*),
      - "-" directly before a number with no operand before it (a negative
        constant, folded by the grammar: no operator lookup);
  * construct that looks an operator up by name through the search path:
    IN (...), LIKE, ILIKE, SIMILAR TO, BETWEEN, IS [NOT] DISTINCT FROM,
    NULLIF, and the simple CASE x WHEN;
  * OPERATOR(op) without a schema.

A literal is taken for SQL if it starts with SELECT/INSERT/UPDATE/DELETE/
WITH/VALUES, or contains a $n parameter, or is appended to a StringInfo
that also receives such text.  Literals passed to errmsg/errdetail/
errhint/errcontext/elog are never SQL.

    scripts/check_sql_qualified.py [file.c ...]

Prints the offenders and exits 1 if there are any, else exits 0.
"""
import glob
import os
import re
import sys

OPCHARS = set("+-*/<>=~!@#%^&|`?")
SQL_START = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|VALUES)\b")
PARAM = re.compile(r"\$(\d|%d)")
MESSAGE_FUNCS = {"errmsg", "errmsg_internal", "errdetail", "errdetail_internal",
                 "errhint", "errcontext", "elog", "errmsg_plural",
                 "errdetail_plural", "ereport", "CStringGetTextDatum",
                 "strcmp", "get_relname_relid", "get_namespace_oid",
                 "get_attnum", "set_config_option", "AllocSetContextCreate"}
APPEND_FUNCS = {"appendStringInfo", "appendStringInfoString"}
FORMAT_FUNCS = {"appendStringInfo", "psprintf", "snprintf", "sprintf",
                "pg_snprintf"}
FORMAT_SPEC = re.compile(r"%[-+ #0]*(\d+|\*)?(\.(\d+|\*))?(hh|h|ll|l|z|j|t)?[diouxXscpu]")


def tokenize_c(src):
    """Yield ('str', text, pos) for string literals, ('id', name, pos) for
    identifiers, ('punct', ch, pos) for anything else significant; comments
    and preprocessor lines other than #define are skipped."""
    i, n = 0, len(src)
    line_start = True
    while i < n:
        c = src[i]
        if c == "\n":
            line_start = True
            i += 1
            continue
        if c in " \t\r\f\v":
            i += 1
            continue
        if line_start and c == "#":
            # a preprocessor line (with continuations)
            j = i
            while True:
                k = src.find("\n", j)
                if k == -1:
                    k = n
                if k > 0 and src[k - 1] == "\\":
                    j = k + 1
                    continue
                break
            yield ("pp", src[i:k], i)
            i = k
            continue
        line_start = False
        if src.startswith("/*", i):
            k = src.find("*/", i + 2)
            i = n if k == -1 else k + 2
            continue
        if src.startswith("//", i):
            k = src.find("\n", i)
            i = n if k == -1 else k
            continue
        if c == '"':
            j = i + 1
            buf = []
            while j < n and src[j] != '"':
                if src[j] == "\\" and j + 1 < n:
                    esc = src[j + 1]
                    buf.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\",
                                "'": "'"}.get(esc, esc))
                    j += 2
                    continue
                buf.append(src[j])
                j += 1
            yield ("str", "".join(buf), i)
            i = j + 1
            continue
        if c == "'":
            j = i + 1
            while j < n and src[j] != "'":
                j += 2 if src[j] == "\\" else 1
            i = j + 1
            yield ("punct", "'", i)
            continue
        if c.isalpha() or c == "_":
            j = i
            while j < n and (src[j].isalnum() or src[j] == "_"):
                j += 1
            yield ("id", src[i:j], i)
            i = j
            continue
        yield ("punct", c, i)
        i += 1


def macro_strings(tokens):
    """#define NAME "literal" ... -> NAME: text"""
    macros = {}
    for kind, text, _ in tokens:
        if kind != "pp":
            continue
        m = re.match(r'#\s*define\s+(\w+)\s+((?:"(?:[^"\\]|\\.)*"\s*)+)$', text.strip())
        if m:
            macros[m.group(1)] = "".join(
                bytes(s, "utf-8").decode("unicode_escape")
                for s in re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2)))
    return macros


class Piece:
    """Statement text with the source offset of every character."""

    def __init__(self):
        self.text = []
        self.pos = []

    def add(self, s, pos, spread=True):
        for k, ch in enumerate(s):
            self.text.append(ch)
            self.pos.append(pos + (k + 1 if spread else 0))

    def string(self):
        return "".join(self.text)


def literal_groups(tokens, macros):
    """Adjacent string literals (and macros between them) as groups, each
    with the name of the function it is an argument of and that call's
    first argument text."""
    groups = []
    stack = []                  # (function name, first-arg text list)
    k = 0
    toks = [t for t in tokens if t[0] != "pp"]
    prev = [None, None]
    while k < len(toks):
        kind, text, pos = toks[k]
        if kind == "punct" and text == "(":
            fname = prev[1] if prev[0] == "id" else None
            stack.append([fname, [], True])
        elif kind == "punct" and text == ")":
            if stack:
                stack.pop()
        elif kind == "punct" and text == ",":
            if stack:
                stack[-1][2] = False
        elif kind == "punct" and text in ";{}":
            stack = []
        if kind in ("str", "id") and (kind == "str" or text in macros):
            # start of a literal group?
            j = k
            piece = Piece()
            has_str = False
            while j < len(toks):
                kd, tx, ps = toks[j]
                if kd == "str":
                    piece.add(tx, ps)
                    has_str = True
                elif kd == "id" and tx in macros:
                    piece.add(macros[tx], ps, spread=False)
                else:
                    break
                j += 1
            if has_str:
                fname, firstarg = (stack[-1][0], "".join(stack[-1][1])) if stack else (None, "")
                groups.append((piece, fname, firstarg.strip(), pos))
                # the group is part of the current argument
                for kd, tx, _ in toks[k:j]:
                    if stack and stack[-1][2]:
                        stack[-1][1].append(tx)
                prev = list(toks[j - 1][:2])
                k = j
                continue
        if stack and stack[-1][2] and not (kind == "punct" and text == "("):
            stack[-1][1].append(text)
        prev = [kind, text]
        k += 1
    return groups


def blank_formats(piece):
    """printf conversions become identifier-like placeholders."""
    s = piece.string()
    out = list(s)
    for m in FORMAT_SPEC.finditer(s):
        for q in range(m.start(), m.end()):
            out[q] = "x"
    s2 = "".join(out).replace("%%", " %")
    piece.text = list(s2)
    return piece


def set_assignments(sql, code):
    """Offsets of '=' that are SET assignments.  code: sql with quoted text
    and comments blanked out."""
    result = set()
    starts = [m.end() for m in re.finditer(r"\bSET\b", code, re.I)]
    # a piece that goes on a SET list (", col = $n", pasted in with %s)
    if re.match(r"\s*,\s*\w+\s*=", code):
        starts.append(0)
    for start in starts:
        i = start
        depth = 0
        expect_assign = True
        while i < len(code):
            ch = code[i]
            if ch == "(":
                depth += 1
            elif ch == ")":
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0:
                if ch == ",":
                    expect_assign = True
                elif ch == "=" and expect_assign and code[i + 1:i + 2] not in ("=", ">") \
                        and code[i - 1:i] not in OPCHARS:
                    result.add(i)
                    expect_assign = False
                elif re.match(r"(WHERE|RETURNING|FROM)\b", code[i:], re.I) and \
                        (i == 0 or not (code[i - 1].isalnum() or code[i - 1] == "_")):
                    break
            i += 1
    return result


def blank_quotes(sql):
    """Quoted literals, quoted identifiers and comments as spaces."""
    out = list(sql)
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "'":
            j = i + 1
            while j < n:
                if sql[j] == "'" and j + 1 < n and sql[j + 1] == "'":
                    j += 2
                    continue
                if sql[j] == "'":
                    break
                j += 1
            for q in range(i, min(j + 1, n)):
                out[q] = "'" if q in (i, j) else " "
            i = j + 1
            continue
        if c == '"':
            j = sql.find('"', i + 1)
            j = n - 1 if j == -1 else j
            for q in range(i + 1, j):
                out[q] = "x"
            i = j + 1
            continue
        if sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j == -1 else j
            for q in range(i, j):
                out[q] = " "
            i = j
            continue
        if sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n - 2 if j == -1 else j
            for q in range(i, j + 2):
                out[q] = " "
            i = j + 2
            continue
        i += 1
    return "".join(out)


KEYWORDS_NOT_OPERAND = {"SELECT", "RETURNING", "DISTINCT", "ALL", "AND", "OR",
                        "NOT", "WHERE", "ON", "WHEN", "THEN", "ELSE", "BY",
                        "VALUES", "SET", "AS", "IN", "IS", "LIMIT", "OFFSET",
                        "HAVING", "CASE", "FILTER", "USING", "FROM", "OPERATOR"}
CONSTRUCTS = [
    (re.compile(r"\bIN\s*\(", re.I), "IN (...) looks = up by name"),
    (re.compile(r"\b(I?LIKE)\b", re.I), "LIKE/ILIKE looks ~~ up by name"),
    (re.compile(r"\bSIMILAR\s+TO\b", re.I), "SIMILAR TO looks an operator up by name"),
    (re.compile(r"\bBETWEEN\b", re.I), "BETWEEN looks >= and <= up by name"),
    (re.compile(r"\bDISTINCT\s+FROM\b", re.I), "IS DISTINCT FROM looks = up by name"),
    (re.compile(r"\bNULLIF\s*\(", re.I), "NULLIF looks = up by name"),
    (re.compile(r"\bCASE\b(?!\s+WHEN\b)", re.I), "CASE x WHEN looks = up by name"),
]


def check_sql(sql):
    """[(offset, message)] for one statement."""
    code = blank_quotes(sql)
    assigns = set_assignments(sql, code)
    problems = []
    # OPERATOR(...) spans: checked for a schema, skipped otherwise
    skip = set()
    for m in re.finditer(r"\bOPERATOR\s*\(([^)]*)\)", code, re.I):
        if "." not in m.group(1):
            problems.append((m.start(), "OPERATOR(%s) has no schema" % m.group(1).strip()))
        skip.update(range(m.start(), m.end()))
    for rx, msg in CONSTRUCTS:
        for m in rx.finditer(code):
            problems.append((m.start(), msg))
    i, n = 0, len(code)
    while i < n:
        if i in skip or code[i] not in OPCHARS:
            i += 1
            continue
        j = i
        while j < n and code[j] in OPCHARS and j not in skip:
            j += 1
        op = code[i:j]
        # what precedes: an operand or not?
        b = i - 1
        while b >= 0 and code[b].isspace():
            b -= 1
        before = code[b] if b >= 0 else ""
        word = re.search(r"(\w+)\s*$", code[:i])
        operand_before = bool(before) and (before.isalnum() or before in "_)]'$\"")
        if operand_before and word and word.group(1).upper() in KEYWORDS_NOT_OPERAND:
            operand_before = False
        if op == "=>" or (op == "=" and i in assigns):
            pass
        elif op == "*" and not operand_before:
            pass
        elif op == "-" and not operand_before and j < n and code[j].isdigit():
            pass
        elif op == "$":
            pass
        else:
            problems.append((i, "bare operator %s" % op))
        i = j
    return problems


def line_of(src, pos):
    return src.count("\n", 0, pos) + 1


def check_file(path):
    src = open(path, encoding="utf-8", errors="replace").read()
    tokens = list(tokenize_c(src))
    macros = macro_strings(tokens)
    groups = literal_groups(tokens, macros)

    statements = []             # (Piece, is_sql)
    # StringInfo-built statements: the fragments appended to one buffer
    # between two uses of its .data / resets are one statement
    by_buffer = {}
    for piece, fname, firstarg, pos in groups:
        if fname in MESSAGE_FUNCS:
            continue
        if fname in FORMAT_FUNCS:
            blank_formats(piece)
        if fname in APPEND_FUNCS and firstarg:
            buf = firstarg.lstrip("&")
            cur = by_buffer.get(buf)
            if cur is not None:
                between = src[cur[2]:pos]
                if re.search(r"\b(reset|init)StringInfo\s*\(\s*&?\s*%s\b|\b%s\s*(\.|->)\s*data\b"
                             % (re.escape(buf), re.escape(buf)), between):
                    statements.append(cur[:2])
                    cur = None
            if cur is None:
                cur = [Piece(), False, pos]
            cur[0].text += piece.text
            cur[0].pos += piece.pos
            cur[2] = pos
            by_buffer[buf] = cur
            continue
        statements.append([piece, False])
    statements.extend(v[:2] for v in by_buffer.values())

    offenders = []
    for st in statements:
        piece = st[0]
        sql = piece.string()
        if not (SQL_START.search(sql) or PARAM.search(sql)):
            continue
        for off, msg in check_sql(sql):
            p = piece.pos[off] if off < len(piece.pos) else piece.pos[-1]
            offenders.append((line_of(src, p), msg, sql))
    return sorted(set((l, m) for l, m, _ in offenders))


def main(argv):
    files = argv[1:]
    if not files:
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
        files = sorted(glob.glob(os.path.join(root, "src", "**", "*.c"), recursive=True))
    bad = 0
    for f in files:
        for line, msg in check_file(f):
            print("%s:%d: %s" % (f, line, msg))
            bad += 1
    if bad:
        print("%d unqualified operator(s) in internal SQL" % bad, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
