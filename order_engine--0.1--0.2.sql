/*
 * order_engine 0.1 -> 0.2: stock: deltas, holds, buckets, purchase limits, audit.
 */
\echo Use "ALTER EXTENSION order_engine UPDATE" to load this file. \quit
