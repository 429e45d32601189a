# Makefile for order_engine (PGXS)
#
#   make                 build
#   make installcheck    pg_regress (sql/, expected/) against a temporary instance
#   make prove_installcheck  TAP (test/t) against the installed server's binaries
#   make install         install into the PostgreSQL that pg_config names
#   scripts/test.sh      build, install and run every test suite (README)

EXTENSION = order_engine
MODULE_big = order_engine
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c src/*/*.c)))
# The install script of the current version is built from one source,
# src/sql/order_engine.sql (as pgvector builds sql/vector--X.Y.Z.sql from
# sql/vector.sql); the base script of 0.1 and the upgrade scripts
# order_engine--A--B.sql are kept by hand beside it, so that every older
# version installs and updates.  test/t/816_install_equals_upgrade.pl
# checks that the built script and 0.1 plus the chain give the same schema.
EXTVERSION = $(shell sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" $(srcdir)/order_engine.control)
DATA_built = order_engine--$(EXTVERSION).sql
DATA = order_engine--0.1.sql $(sort $(wildcard order_engine--*--*.sql))
# a full script of an earlier default_version, built before it changed
EXTRA_CLEAN = $(filter-out $(DATA),$(wildcard order_engine--*.sql))
PGFILEDESC = "order_engine - order-critical primitives for e-commerce"

# the suites are run by scripts/test.sh; these make them visible to PGXS too
REGRESS = $(basename $(notdir $(sort $(wildcard sql/*.sql))))
REGRESS_OPTS = --temp-config=$(srcdir)/test/postgresql.conf --temp-instance=./tmp_check
ISOLATION = $(basename $(notdir $(sort $(wildcard test/isolation/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test/isolation --temp-config=$(srcdir)/test/postgresql.conf --temp-instance=./tmp_check_iso

# src/<folder>/<file>.h is included as "<folder>/<file>.h"; the warnings are
# the ones CI builds with (scripts/lib.sh OE_WARNINGS), so a plain make is CI's
# (test/mutation.sh builds its mutants with OE_WARNING_FLAGS= : a mutation
# may leave a function unused)
OE_WARNING_FLAGS = -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-sign-compare -Wno-missing-field-initializers
PG_CPPFLAGS = -I$(srcdir)/src $(OE_WARNING_FLAGS)
PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# common/digest.c calls the server's OpenSSL directly (one fetched SHA-256
# per backend) when the server was built with it
ifeq ($(with_ssl),openssl)
SHLIB_LINK += -lcrypto
endif

# TAP (test/t, helpers in test/perl) the way PGXS runs it, as its own target:
# TAP_TESTS would make installcheck run TAP too
PROVE_TESTS = test/t/*.pl
PROVE_FLAGS += -I $(srcdir)/test/perl
.PHONY: prove_installcheck
prove_installcheck: export OE_TEST_CONF = $(abspath $(srcdir)/test/postgresql.conf)
prove_installcheck:
	$(prove_installcheck)

order_engine--$(EXTVERSION).sql: src/sql/order_engine.sql
	cp $< $@
