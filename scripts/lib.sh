# scripts/lib.sh: what scripts/demo.sh and scripts/test.sh share.
# Sourced, not run.

OE_PG_MAJOR=15
# the previous release, whose library test/t/896_old_library.pl runs next to
# this tree's SQL: scripts/test.sh builds it from this commit of the history
OE_PREVIOUS_RELEASE=0.7
OE_PREVIOUS_RELEASE_COMMIT=443f3c2cf568a45a08e327639f3bc75586cbf095
# Required: scripts/test.sh fails when one of these cannot be installed.
OE_PACKAGES="postgresql-$OE_PG_MAJOR postgresql-server-dev-$OE_PG_MAJOR postgresql-$OE_PG_MAJOR-cron postgresql-$OE_PG_MAJOR-pgtap libtap-parser-sourcehandler-pgtap-perl libipc-run-perl cppcheck sqlsmith make gcc"
# Required too, for suites that are being written (pooler, Python client,
# metrics exporter, PL/Proxy sharding); installed now so that they are there.
OE_PACKAGES="$OE_PACKAGES pgbouncer python3-psycopg2 prometheus-postgres-exporter postgresql-$OE_PG_MAJOR-plproxy curl"
# Optional packages, one "package:reason" a line; README ("Optional
# packages") mirrors this list.  A missing optional package is reported, not
# failed.  Empty: every package above is required.
OE_OPTIONAL_PACKAGES=""
# Skips that CI (CI=true) accepts, one "test-file:reason" a line; README
# mirrors it.  Any other skip fails a CI run.  Empty: no skip is accepted.
OE_ALLOWED_SKIPS=""
OE_SYSTEM_BINDIR=/usr/lib/postgresql/$OE_PG_MAJOR/bin
OE_WARNINGS="-Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers"

oe_say() { printf '== %s\n' "$*"; }

# Re-run the calling script as root (apt-get, runuser and make install need it).
oe_become_root() {
    if [ "$(id -u)" -ne 0 ]; then
        exec sudo --preserve-env=CI,OE_TEST_WORK,OE_SYSTEM_INSTALL,OE_SUITES,OE_DEMO_PORT,OE_REGRESS_FILES,OE_ISOLATION_FILES,OE_PGTAP_FILES,OE_TAP_FILES,OE_TIMEOUT_BUILD,OE_TIMEOUT_LINT,OE_TIMEOUT_REGRESS,OE_TIMEOUT_ISOLATION,OE_TIMEOUT_PGTAP,OE_TIMEOUT_TAP,OE_TIMEOUT_MUTATION,OE_SQLSMITH_QUERIES,OE_PGTAP_PORT "$0" "$@"
    fi
}

# Is $1 one of the packages in OE_OPTIONAL_PACKAGES?
oe_optional_package() {
    printf '%s\n' "$OE_OPTIONAL_PACKAGES" | grep -q "^$1:"
}

# Install the Debian packages that are missing; a second run installs nothing.
# Returns non-zero (after saying which) when a package that is not optional
# is still missing afterwards: a failed apt-get is a failed run.
oe_install_packages() {
    local missing="" p rc=0 still=""
    for p in $OE_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        oe_say "installing Debian packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || oe_say "apt-get update failed"
        # one at a time, so that one missing package does not keep the others out
        for p in $missing; do
            apt-get install -y -qq --no-install-recommends "$p" >/dev/null ||
                oe_say "apt-get install $p failed"
        done
    fi
    for p in $OE_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && continue
        if oe_optional_package "$p"; then
            oe_say "optional package $p is missing: $(printf '%s\n' "$OE_OPTIONAL_PACKAGES" | sed -n "s/^$p://p")"
        else
            still="$still $p"
        fi
    done
    if [ -n "$still" ]; then
        oe_say "required Debian packages missing:$still"
        rc=1
    fi
    return $rc
}

# Run a command as the postgres OS user (initdb and postgres refuse root).
oe_as_postgres() {
    runuser -u postgres -- env PATH="$PATH" "$@"
}

# Copy the source tree (without build output or git data) into $1.
oe_copy_tree() {
    local src=$1 dst=$2
    mkdir -p "$dst"
    tar -C "$src" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
        --exclude=./results --exclude=./tmp_check -cf - . | tar -C "$dst" -xf -
}

# Stop a server by the pid in its data directory, and wait for it to go.
oe_stop_server() {
    local datadir=$1 pid i
    [ -f "$datadir/postmaster.pid" ] || return 0
    pid=$(head -1 "$datadir/postmaster.pid")
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -QUIT "$pid" 2>/dev/null || true
}
