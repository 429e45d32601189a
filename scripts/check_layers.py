#!/usr/bin/env python3
"""check_layers.py: the folders of src/ depend on each other one way.

Reads every .c and .h file below src/ (or the directory given) and builds
the graph of its folders ("nodes") from two kinds of reference:

  * #include "folder/file.h" of one of our own headers;
  * a use, in a .c file, of a function or variable that a header of another
    node declares extern (the node of a symbol is the node of the header
    that declares it).

Nodes are the folders (common, stock, ids, idem, orders, jobs, worker),
plus:
  * "<folder>:sql" for the fmgr layer of a folder (<folder>/<folder>_sql.c:
    the SQL-callable entry points, above every domain);
  * "worker/signal" for worker/signal.h, the one header domain code
    includes to wake the worker (an interface: it may include none of our
    headers; worker/ implements it);
  * "." for the files at the top of src/ (_PG_init and the shared-memory
    hooks that wire the folders together).

It prints every edge with what makes it, and exits 1 if
  * two nodes reach each other (a cycle), or
  * an edge goes against the layers below (a lower layer may never use a
    higher one, nor a peer: stock, ids and idem know nothing of each
    other), or
  * an interface header includes one of our headers, or
  * a symbol is declared in a header of one node and defined in a .c file
    of another (the header belongs to the folder that implements it), or
    declared extern in two headers, or
  * a file other than common/internal_sql.c connects SPI, prepares or runs
    a statement, or starts a subtransaction (the one internal-SQL path pins
    the search path there).

    scripts/check_layers.py [src-dir]
"""
import os
import re
import sys

# lower number = lower layer; an edge must go to a strictly lower layer
LAYERS = {
    "common": 0,
    "worker/signal": 0,
    "ids": 1,
    "idem": 1,
    "stock": 1,
    "orders": 2,
    "jobs": 3,
    "worker": 4,
    ":sql": 5,          # any folder's fmgr layer (*_sql.c)
    ".": 6,
}
INTERFACES = {"worker/signal.h": "worker/signal"}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
EXTERN_FUNC = re.compile(
    r'^(?:extern|PGDLLEXPORT)\b[^;{}()]*?\b([A-Za-z_]\w*)\s*\(', re.M)
EXTERN_VAR = re.compile(r'^extern\b[^;(){}]*?\b([A-Za-z_]\w*)\s*(?:\[[^\]]*\])?\s*;', re.M)
FUNC_DEF = re.compile(r'^(?!static\b)[A-Za-z_][\w \t\*]*?\n?\b([A-Za-z_]\w*)\s*\([^;{}]*\)\s*\{', re.M)
VAR_DEF = re.compile(r'^(?!static\b|extern\b|typedef\b)[A-Za-z_][\w \t\*]*?\b([A-Za-z_]\w*)\s*(?:=[^;]*)?;', re.M)
IDENT = re.compile(r'\b[A-Za-z_]\w*\b')

# what only the internal-SQL path may call
SQL_PATH = os.path.join("common", "internal_sql.c")
ONLY_IN_SQL_PATH = ("SPI_connect", "SPI_connect_ext", "BeginInternalSubTransaction",
                    "SPI_prepare", "SPI_prepare_cursor", "SPI_prepare_params",
                    "SPI_prepare_extended", "SPI_execute", "SPI_exec",
                    "SPI_execute_plan", "SPI_execp", "SPI_execute_plan_extended",
                    "SPI_execute_plan_with_paramlist", "SPI_execute_snapshot",
                    "SPI_execute_with_args", "SPI_execute_extended",
                    "SPI_cursor_open", "SPI_cursor_open_with_args",
                    "SPI_cursor_open_with_paramlist", "SPI_cursor_parse_open")


def strip(src):
    """Comments, string and character literals out (line breaks kept)."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def node_of(rel):
    if rel in INTERFACES:
        return INTERFACES[rel]
    folder = os.path.dirname(rel)
    if folder == "":
        return "."
    if os.path.basename(rel) == os.path.basename(folder) + "_sql.c":
        return folder + ":sql"
    return folder


def layer_of(node):
    if node.endswith(":sql"):
        return LAYERS[":sql"]
    return LAYERS.get(node)


def sccs(nodes, edges):
    """Tarjan: the strongly connected components of more than one node."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main(argv):
    root = argv[1] if len(argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "src")
    root = os.path.normpath(root)
    files, raw = {}, {}
    for d, _, names in os.walk(root):
        for name in names:
            if name.endswith((".c", ".h")):
                p = os.path.join(d, name)
                rel = os.path.relpath(p, root)
                raw[rel] = open(p, encoding="utf-8").read()
                files[rel] = strip(raw[rel])
    problems = []
    nodes = {node_of(f) for f in files}
    for n in sorted(nodes):
        if layer_of(n) is None:
            problems.append("folder %s has no layer in scripts/check_layers.py" % n)

    # who declares what
    declared = {}
    for f, src in sorted(files.items()):
        if not f.endswith(".h"):
            continue
        for m in list(EXTERN_FUNC.finditer(src)) + list(EXTERN_VAR.finditer(src)):
            sym = m.group(1)
            if sym in declared and declared[sym] != f:
                problems.append("%s declared extern in %s and in %s" % (sym, declared[sym], f))
            declared.setdefault(sym, f)

    # who defines what: the header must be the implementing folder's
    for f, src in sorted(files.items()):
        if not f.endswith(".c"):
            continue
        for m in list(FUNC_DEF.finditer(src)) + list(VAR_DEF.finditer(src)):
            sym = m.group(1)
            h = declared.get(sym)
            if h and os.path.dirname(h) != os.path.dirname(f):
                problems.append("%s is defined in %s but declared in %s (another folder)" % (sym, f, h))

    # the one internal-SQL path: only common/internal_sql.c connects SPI,
    # prepares or runs a statement (OeKeepPlan and OeExecPlan pin the
    # scope's search_path first) or starts a subtransaction
    # (OeRunInSubtransaction)
    for f, src in sorted(files.items()):
        if f == SQL_PATH:
            continue
        for sym in ONLY_IN_SQL_PATH:
            for m in re.finditer(r"\b%s\s*\(" % sym, src):
                problems.append("%s:%d calls %s; internal SQL goes through %s"
                                % (f, src.count("\n", 0, m.start()) + 1, sym, SQL_PATH))

    edges = {}          # (from, to) -> set of reasons

    def edge(a, b, why):
        if a != b:
            edges.setdefault((a, b), set()).add(why)

    for f, src in sorted(files.items()):
        here = node_of(f)
        for inc in INCLUDE.findall(re.sub(r"/\*.*?\*/", "", raw[f], flags=re.S)):
            target = None
            for cand in (inc, os.path.normpath(os.path.join(os.path.dirname(f), inc))):
                if cand in files:
                    target = cand
                    break
            if target is None:
                continue
            if f in INTERFACES:
                problems.append("%s is an interface header but includes %s" % (f, target))
            edge(here, node_of(target), "#include " + target)
        if f.endswith(".c"):
            for sym in set(IDENT.findall(src)):
                h = declared.get(sym)
                if h:
                    edge(here, node_of(h), sym)

    graph = {}
    for (a, b) in edges:
        graph.setdefault(a, set()).add(b)

    print("layers (low to high): " + ", ".join(
        "%s=%d" % (k, v) for k, v in sorted(LAYERS.items(), key=lambda kv: (kv[1], kv[0]))))
    for (a, b) in sorted(edges):
        reasons = sorted(edges[(a, b)], key=lambda r: (not r.startswith("#"), r))
        print("%-14s -> %-14s %s" % (a, b, ", ".join(reasons)))
        la, lb = layer_of(a), layer_of(b)
        if la is not None and lb is not None and la <= lb:
            problems.append("%s -> %s goes against the layers (%d -> %d): %s"
                            % (a, b, la, lb, ", ".join(reasons)))
    for comp in sccs(nodes, graph):
        problems.append("cycle between " + ", ".join(comp))

    for p in problems:
        print("ERROR: " + p)
    print("%d nodes, %d edges, %d problems" % (len(nodes), len(edges), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
