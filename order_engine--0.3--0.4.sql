/*
 * order_engine 0.3 -> 0.4: idempotency keys, checkout tokens, versioned updates.
 */
\echo Use "ALTER EXTENSION order_engine UPDATE" to load this file. \quit
