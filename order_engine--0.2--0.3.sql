/*
 * order_engine 0.2 -> 0.3: ids: Leaf-style segments, order numbers, snowflake ids.
 */
\echo Use "ALTER EXTENSION order_engine UPDATE" to load this file. \quit

/*
 * The registry of id tags.  A tag's max_id (the highest id ever reserved)
 * is not a column: it lives in the tag's own sequence, moved forward with
 * setval() outside the caller's transaction (docs/ids.md, "Durability"),
 * and the view id_segments shows it.  step is the configured (smallest)
 * step; the dynamic step lives in shared memory.
 */
CREATE TABLE @extschema@.id_tags (
    biz_tag     text PRIMARY KEY
                CHECK (pg_catalog.octet_length(biz_tag) BETWEEN 1 AND 63),
    start_id    bigint NOT NULL CHECK (start_id >= 1),
    step        integer NOT NULL CHECK (step >= 1),
    description text,
    seq         regclass NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE @extschema@.id_tags IS
    'order_engine id tags: configured step and the sequence that keeps max_id durable';
COMMENT ON COLUMN @extschema@.id_tags.seq IS
    'Sequence whose last_value is the highest id ever reserved for the tag';

REVOKE ALL ON @extschema@.id_tags FROM PUBLIC;
GRANT SELECT ON @extschema@.id_tags TO order_engine_admin;

/* high-water mark of snowflake_id(): milliseconds since 2024-01-01 UTC */
CREATE SEQUENCE @extschema@.snowflake_hwm AS bigint MINVALUE 0 START 0 NO CYCLE;
SELECT pg_catalog.setval('snowflake_hwm', 0, true);
COMMENT ON SEQUENCE @extschema@.snowflake_hwm IS
    'snowflake_id(): persisted high-water mark of the clock (ms since 2024-01-01 UTC); ids never go below it';
REVOKE ALL ON SEQUENCE @extschema@.snowflake_hwm FROM PUBLIC;
GRANT SELECT ON SEQUENCE @extschema@.snowflake_hwm TO order_engine_admin;

CREATE FUNCTION @extschema@.create_id_tag(
    biz_tag text,
    start_id bigint DEFAULT 1,
    step integer DEFAULT 1000,
    description text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    nsp name := (SELECT n.nspname FROM pg_catalog.pg_extension e
                   JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
                  WHERE e.extname = 'order_engine');
    seqname text := 'id_tag_' || pg_catalog.md5(biz_tag) || '_seq';
    seqoid regclass;
BEGIN
    IF biz_tag IS NULL OR start_id IS NULL OR step IS NULL THEN
        RAISE EXCEPTION 'biz_tag, start_id and step must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF pg_catalog.octet_length(biz_tag) NOT BETWEEN 1 AND 63 THEN
        RAISE EXCEPTION 'invalid id tag length %', pg_catalog.octet_length(biz_tag)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A tag is 1 to 63 bytes long.';
    END IF;
    IF start_id < 1 THEN
        RAISE EXCEPTION 'start_id must be at least 1'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('start_id was %s.', start_id);
    END IF;
    IF step < 1 THEN
        RAISE EXCEPTION 'step must be at least 1'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('step was %s.', step);
    END IF;

    BEGIN
        EXECUTE pg_catalog.format(
            'CREATE SEQUENCE %I.%I AS bigint MINVALUE %s START %s NO CYCLE OWNED BY %I.id_tags.biz_tag',
            nsp, seqname, start_id - 1, start_id - 1, nsp);
        seqoid := pg_catalog.format('%I.%I', nsp, seqname)::regclass;
        -- last_value reads start_id - 1: nothing reserved yet
        PERFORM pg_catalog.setval(seqoid, start_id - 1, true);
        EXECUTE pg_catalog.format('GRANT SELECT ON SEQUENCE %s TO order_engine_admin', seqoid);
        EXECUTE pg_catalog.format(
            'INSERT INTO %I.id_tags (biz_tag, start_id, step, description, seq) VALUES ($1, $2, $3, $4, $5)',
            nsp) USING biz_tag, start_id, step, description, seqoid;
    EXCEPTION WHEN unique_violation OR duplicate_table THEN
        RAISE EXCEPTION 'id tag "%" already exists', biz_tag
            USING ERRCODE = 'OE014',
                  HINT = 'Use the existing tag, or pick another name.';
    END;
END
$fn$;

COMMENT ON FUNCTION @extschema@.create_id_tag(text, bigint, integer, text) IS
    'Registers an id tag: ids start at start_id and are reserved step (or more, dynamically) at a time';

CREATE FUNCTION @extschema@.next_id(biz_tag text)
RETURNS bigint
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'oe_next_id';

COMMENT ON FUNCTION @extschema@.next_id(text) IS
    'Next id of the tag: unique, increasing in the order handed out, never reused after rollback or crash (gaps possible)';

CREATE FUNCTION @extschema@.next_ids(biz_tag text, n integer)
RETURNS bigint[]
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'oe_next_ids_sql';

COMMENT ON FUNCTION @extschema@.next_ids(text, integer) IS
    'n ids of the tag (1 to 1000000) in one call, increasing';

CREATE FUNCTION @extschema@.next_order_no(buyer_id bigint)
RETURNS bigint
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'oe_next_order_no';

COMMENT ON FUNCTION @extschema@.next_order_no(bigint) IS
    'New order number; its last two digits are the buyer''s shard gene (buyer_id mod order_engine.shard_count)';

CREATE FUNCTION @extschema@.shard_of(order_no bigint)
RETURNS integer
LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'oe_shard_of';

COMMENT ON FUNCTION @extschema@.shard_of(bigint) IS
    'The shard gene of an order number (its last two decimal digits)';

CREATE FUNCTION @extschema@.snowflake_id()
RETURNS bigint
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'oe_snowflake_id';

COMMENT ON FUNCTION @extschema@.snowflake_id() IS
    'Time-ordered id (ms since 2024 | order_engine.node_id | sequence); never goes backwards, across restarts too';

CREATE FUNCTION @extschema@.id_segment_state(
    OUT biz_tag text,
    OUT current_step bigint,
    OUT current_start bigint,
    OUT current_end bigint,
    OUT next_start bigint,
    OUT next_end bigint,
    OUT ids_left bigint,
    OUT fetches bigint,
    OUT last_fetch_at timestamptz)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'oe_id_segment_state';

COMMENT ON FUNCTION @extschema@.id_segment_state() IS
    'Shared-memory state of the id tags of this database (needs shared_preload_libraries)';

CREATE VIEW @extschema@.id_segments AS
    SELECT t.biz_tag,
           pg_catalog.pg_sequence_last_value(t.seq) AS max_id,
           t.step,
           s.current_step,
           s.current_start,
           s.current_end,
           s.next_start,
           s.next_end,
           coalesce(s.ids_left, 0) AS ids_left,
           coalesce(s.fetches, 0) AS fetches,
           s.last_fetch_at,
           t.description
      FROM @extschema@.id_tags t
      LEFT JOIN @extschema@.id_segment_state() s ON s.biz_tag = t.biz_tag;

COMMENT ON VIEW @extschema@.id_segments IS
    'Per id tag: durable max_id, configured and current step, current and next range (inclusive bounds), ids left in memory';

REVOKE ALL ON FUNCTION @extschema@.create_id_tag(text, bigint, integer, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.next_id(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.next_ids(text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.next_order_no(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shard_of(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.snowflake_id() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.id_segment_state() FROM PUBLIC;
REVOKE ALL ON @extschema@.id_segments FROM PUBLIC;

GRANT EXECUTE ON FUNCTION @extschema@.next_id(text) TO order_engine_app;
GRANT EXECUTE ON FUNCTION @extschema@.next_ids(text, integer) TO order_engine_app;
GRANT EXECUTE ON FUNCTION @extschema@.next_order_no(bigint) TO order_engine_app;
GRANT EXECUTE ON FUNCTION @extschema@.shard_of(bigint) TO order_engine_app;
GRANT EXECUTE ON FUNCTION @extschema@.snowflake_id() TO order_engine_app;
GRANT EXECUTE ON FUNCTION @extschema@.create_id_tag(text, bigint, integer, text) TO order_engine_admin;
GRANT EXECUTE ON FUNCTION @extschema@.id_segment_state() TO order_engine_admin;
GRANT SELECT ON @extschema@.id_segments TO order_engine_admin;

/* the tag of next_order_no(); its sequence is a member of the extension */
SELECT @extschema@.create_id_tag('order_no', 1, 1000, 'order numbers (next_order_no)');

/*
 * pg_dump keeps the user's tags and every high-water mark; the order_no
 * row is recreated by CREATE EXTENSION, its sequence value is dumped.
 */
SELECT pg_catalog.pg_extension_config_dump('id_tags', 'WHERE biz_tag <> ''order_no''');
SELECT pg_catalog.pg_extension_config_dump('snowflake_hwm', '');
SELECT pg_catalog.pg_extension_config_dump(t.seq, '')
  FROM @extschema@.id_tags t WHERE t.biz_tag = 'order_no';
