--
-- versioned_update: optimistic updates of any table with a version column.
--
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; det text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RETURN st || ': ' || msg || coalesce(' | ' || nullif(det, ''), '');
END $$;

CREATE SCHEMA vu;
CREATE TABLE vu.shipments (
    id           bigint PRIMARY KEY,
    logistics_no text,
    address      varchar(20),
    qty          integer,
    paid_at      timestamptz,
    tags         text[],
    extra        jsonb,
    version      bigint NOT NULL DEFAULT 1
);
INSERT INTO vu.shipments (id) VALUES (1), (2);

-- the seeds' ABA case: 666, then 888, then a late retry of 666 loses
SELECT order_engine.versioned_update('vu.shipments', '{"id": 1}', 1, '{"logistics_no": "666"}');
SELECT order_engine.versioned_update('vu.shipments', '{"id": 1}', 2, '{"logistics_no": "888"}');
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 1}', 1, '{"logistics_no": "666"}')$$);
SELECT id, logistics_no, version FROM vu.shipments ORDER BY id;

-- values are coerced to the column types; null sets NULL
SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 1,
    '{"address": "1 Main St", "qty": 3, "paid_at": "2024-05-01 10:00+00", "tags": "{a,b}",
      "extra": {"gift": true, "n": [1, 2]}, "logistics_no": null}');
SELECT order_engine.versioned_update('vu.shipments', '{"id": "2"}', 2, '{"qty": "4", "extra": "just a string"}');
SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 3, '{"extra": null, "address": true}');
SELECT id, address, qty, paid_at AT TIME ZONE 'UTC' AS paid_at_utc, tags, extra, version
  FROM vu.shipments WHERE id = 2;

-- a missing row: OE002; a stale version: OE001 naming the current one
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 99}', 1, '{"qty": 1}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 3, '{"qty": 1}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 5, '{"qty": 1}')$$);

-- bad values: the type's own SQLSTATE, with the column as context; nothing changes
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4, '{"qty": "many"}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4, '{"qty": 1.5}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4, '{"qty": 99999999999}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4, '{"address": "an address far too long for the column"}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4, '{"tags": ["a", "b"]}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4, '{"qty": {"n": 1}}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": "two"}', 4, '{"qty": 1}')$$);
SELECT id, qty, address, version FROM vu.shipments WHERE id = 2;

-- unknown columns: 42703, in changes and in key
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4, '{"colour": "red"}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"ident": 2}', 4, '{"qty": 1}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4, '{"ctid": "(0,1)"}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4, '{"": 1}')$$);
SELECT pg_temp.try(format($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4, '{"%s": 1}')$$, repeat('x', 100)));

-- key and version columns cannot be changed: 22023
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4, '{"version": 100}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4, '{"id": 3, "qty": 1}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2, "version": 4}', 4, '{"qty": 1}')$$);

-- malformed key or changes
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{}', 4, '{"qty": 1}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '[2]', 4, '{"qty": 1}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '2', 4, '{"qty": 1}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4, '{}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4, '"qty"')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": null}', 4, '{"qty": 1}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"qty": 1}', 4, '{"address": "x"}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update(NULL, '{"id": 2}', 4, '{"qty": 1}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', NULL, 4, '{"qty": 1}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', NULL, '{"qty": 1}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4, NULL)$$);
SELECT id, qty, address, version FROM vu.shipments WHERE id = 2;

-- SQL injection through column names, keys, values and the relation
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4,
    '{"qty = 0, version = 1 --": 1}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4,
    '{"\"qty\"": 1}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id = id OR true; --": 1}', 4,
    '{"qty": 1}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": "2 OR 1=1"}', 4,
    '{"qty": 1}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments; DROP TABLE vu.shipments', '{"id": 2}', 4,
    '{"qty": 1}')$$);
SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 4,
    $j${"logistics_no": "x'); DROP TABLE vu.shipments; --", "address": "$1 $$ \\"}$j$);
SELECT id, logistics_no, address, qty, version FROM vu.shipments ORDER BY id;
-- hostile identifiers that do exist are quoted, not spliced
CREATE TABLE vu."we""ird; table" ("key; DROP TABLE vu.shipments" text PRIMARY KEY,
                                 "a""b" text, "SELECT" int, version integer NOT NULL DEFAULT 0);
INSERT INTO vu."we""ird; table" VALUES ($$k' OR '1'='1$$, 'old', 1), ('other', 'old', 1);
SELECT order_engine.versioned_update('vu."we""ird; table"', $${"key; DROP TABLE vu.shipments": "k' OR '1'='1"}$$, 0,
    '{"a\"b": "new", "SELECT": 2}');
SELECT * FROM vu."we""ird; table" ORDER BY 1;
-- a text key that looks like SQL matches nothing else
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu."we""ird; table"', '{"key; DROP TABLE vu.shipments": "x'' OR ''1''=''1"}', 0, '{"SELECT": 3}')$$);

-- composite keys; a partial key is refused (22023)
CREATE TABLE vu.lines (order_no bigint, line_no int, qty int, version int NOT NULL DEFAULT 1,
                       PRIMARY KEY (order_no, line_no));
INSERT INTO vu.lines VALUES (10, 1, 1), (10, 2, 1);
SELECT order_engine.versioned_update('vu.lines', '{"order_no": 10, "line_no": 2}', 1, '{"qty": 5}');
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.lines', '{"order_no": 10}', 1, '{"qty": 5}')$$);
SELECT * FROM vu.lines ORDER BY 1, 2;
-- a unique index other than the primary key is a key too; partial ones are not
CREATE TABLE vu.parcels (id int PRIMARY KEY, tracking text UNIQUE, carrier text, note text,
                         version smallint NOT NULL DEFAULT 1);
CREATE UNIQUE INDEX ON vu.parcels (carrier) WHERE carrier IS NOT NULL;
INSERT INTO vu.parcels VALUES (1, 'T-1', 'dhl', NULL);
SELECT order_engine.versioned_update('vu.parcels', '{"tracking": "T-1"}', 1, '{"note": "fragile"}');
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.parcels', '{"carrier": "dhl"}', 2, '{"note": "x"}')$$);
-- a smallint version overflows with the type's error
UPDATE vu.parcels SET version = 32767;
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.parcels', '{"id": 1}', 32767, '{"note": "x"}')$$);
UPDATE vu.shipments SET version = 9223372036854775807 WHERE id = 1;
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 1}', 9223372036854775807, '{"qty": 1}')$$);

-- relations without a usable version column, and what is not a table
CREATE TABLE vu.unversioned (id int PRIMARY KEY, note text);
CREATE TABLE vu.text_version (id int PRIMARY KEY, note text, version text);
CREATE VIEW vu.shipments_view AS SELECT * FROM vu.shipments;
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.unversioned', '{"id": 1}', 1, '{"note": "x"}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.text_version', '{"id": 1}', 1, '{"note": "x"}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments_view', '{"id": 1}', 1, '{"qty": 1}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.no_such_table', '{"id": 1}', 1, '{"qty": 1}')$$);
SELECT pg_temp.try($$SELECT order_engine.versioned_update(0, '{"id": 1}', 1, '{"qty": 1}')$$);

-- a key that matches rows in two tables of an inheritance tree: 21000, nothing changed
CREATE TABLE vu.archived_shipments () INHERITS (vu.shipments);
INSERT INTO vu.archived_shipments (id, version) VALUES (2, 5);
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 5, '{"qty": 7}')$$);
SELECT tableoid::regclass, id, qty, version FROM vu.shipments WHERE id = 2 ORDER BY 1;
DROP TABLE vu.archived_shipments;

-- partitioned tables work
CREATE TABLE vu.orders_p (id bigint PRIMARY KEY, note text, version bigint NOT NULL DEFAULT 1)
    PARTITION BY RANGE (id);
CREATE TABLE vu.orders_p1 PARTITION OF vu.orders_p FOR VALUES FROM (0) TO (100);
INSERT INTO vu.orders_p VALUES (5, NULL);
SELECT order_engine.versioned_update('vu.orders_p', '{"id": 5}', 1, '{"note": "partitioned"}');

-- kept plans follow DDL: a changed type, a renamed table
SELECT order_engine.versioned_update('vu.lines', '{"order_no": 10, "line_no": 1}', 1, '{"qty": 2}');
ALTER TABLE vu.lines ALTER COLUMN qty TYPE numeric(6, 2);
SELECT order_engine.versioned_update('vu.lines', '{"order_no": 10, "line_no": 1}', 2, '{"qty": 2.25}');
ALTER TABLE vu.lines RENAME TO order_lines;
CREATE TABLE vu.lines (order_no bigint, line_no int, qty int, version int NOT NULL DEFAULT 1,
                       PRIMARY KEY (order_no, line_no));
INSERT INTO vu.lines VALUES (10, 1, 100, 7);
SELECT order_engine.versioned_update('vu.order_lines', '{"order_no": 10, "line_no": 1}', 3, '{"qty": 3.5}');
SELECT order_engine.versioned_update('vu.lines', '{"order_no": 10, "line_no": 1}', 7, '{"qty": 101}');
SELECT 'order_lines' AS t, * FROM vu.order_lines UNION ALL SELECT 'lines', * FROM vu.lines ORDER BY 1, 2, 3;

-- the caller's privileges apply (the function is not SECURITY DEFINER)
CREATE ROLE regress_oe_clerk;
GRANT order_engine_app TO regress_oe_clerk;
GRANT USAGE ON SCHEMA vu TO regress_oe_clerk;
GRANT SELECT ON vu.shipments TO regress_oe_clerk;
SET ROLE regress_oe_clerk;
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 5, '{"qty": 1}')$$);
RESET ROLE;
GRANT UPDATE (qty, version) ON vu.shipments TO regress_oe_clerk;
SET ROLE regress_oe_clerk;
SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 5, '{"qty": 1}');
SELECT pg_temp.try($$SELECT order_engine.versioned_update('vu.shipments', '{"id": 2}', 6, '{"address": "nope"}')$$);
RESET ROLE;
SELECT id, qty, address, version FROM vu.shipments WHERE id = 2;

DROP SCHEMA vu CASCADE;
REVOKE order_engine_app FROM regress_oe_clerk;
DROP ROLE regress_oe_clerk;
