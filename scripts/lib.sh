# scripts/lib.sh: what scripts/demo.sh and scripts/test.sh share.
# Sourced, not run.

OE_PG_MAJOR=15
OE_PACKAGES="postgresql-$OE_PG_MAJOR postgresql-server-dev-$OE_PG_MAJOR postgresql-$OE_PG_MAJOR-cron postgresql-$OE_PG_MAJOR-pgtap libtap-parser-sourcehandler-pgtap-perl libipc-run-perl cppcheck sqlsmith make gcc"
OE_SYSTEM_BINDIR=/usr/lib/postgresql/$OE_PG_MAJOR/bin
OE_WARNINGS="-Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers"

oe_say() { printf '== %s\n' "$*"; }

# Re-run the calling script as root (apt-get, runuser and make install need it).
oe_become_root() {
    if [ "$(id -u)" -ne 0 ]; then
        exec sudo --preserve-env=CI,OE_TEST_WORK,OE_SYSTEM_INSTALL,OE_SUITES,OE_DEMO_PORT "$0" "$@"
    fi
}

# Install the Debian packages that are missing; a second run installs nothing.
oe_install_packages() {
    local missing="" p
    for p in $OE_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        oe_say "installing Debian packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
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
