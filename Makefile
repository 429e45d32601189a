# Makefile for order_engine (PGXS)
#
#   make                 build
#   make install         install into the PostgreSQL that pg_config names
#   scripts/test.sh      build, install and run every test suite (README)

EXTENSION = order_engine
MODULE_big = order_engine
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA = $(sort $(wildcard order_engine--*.sql))
PGFILEDESC = "order_engine - order-critical primitives for e-commerce"

# the suites are run by scripts/test.sh; these make them visible to PGXS too
REGRESS = $(basename $(notdir $(sort $(wildcard sql/*.sql))))
REGRESS_OPTS = --temp-config=$(srcdir)/test/postgresql.conf --temp-instance=./tmp_check
ISOLATION = $(basename $(notdir $(sort $(wildcard test/isolation/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test/isolation --temp-config=$(srcdir)/test/postgresql.conf --temp-instance=./tmp_check_iso

PG_CPPFLAGS = -I$(srcdir)/src
PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
