/*
 * order_engine 0.2 -> 0.3: ids: Leaf-style segments, order numbers, snowflake ids.
 */
\echo Use "ALTER EXTENSION order_engine UPDATE" to load this file. \quit
