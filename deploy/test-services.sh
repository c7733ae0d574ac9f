#!/usr/bin/env bash
# Make sure the services the test suite talks to answer on loopback:
#   PostgreSQL on 127.0.0.1:5432, with the `postgres` role reachable over TCP without a password
#   Redis on 127.0.0.1:6379
# and that Debian's chromium is at /usr/bin/chromium (the admin console's browser test drives it
# with Playwright, whose own browser downloads are not used).
# Each is left alone when it already answers. Otherwise it is started when installed, and
# installed from Debian's packages when absent (root or sudo needed for that).
#
# The S3 server is not handled here: the suite starts its own moto server (tests/conftest.py).
#
# When DATABASE_URL or REDIS_URL point somewhere other than these loopback ports, that service is
# only waited for, never started or installed: it is someone else's to run.
set -euo pipefail

PG_HOST=127.0.0.1
REDIS_HOST=127.0.0.1
# The ports are fixed by the project's defaults; the overrides exist to exercise this script against
# a throwaway cluster or server without disturbing the machine's own.
PG_PORT=${TEST_SERVICES_PG_PORT:-5432}
REDIS_PORT=${TEST_SERVICES_REDIS_PORT:-6379}
WAIT_SECONDS=${SERVICES_WAIT_SECONDS:-30}

log() { printf 'test-services: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Run a command as root: directly when we are root, through sudo otherwise (non-interactive, so
# CI with no terminal fails fast instead of hanging on a password prompt).
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo -n "$@"
    else
        die "need root to run: $*"
    fi
}

# Split "scheme://user:pw@host:port/db" into host and port, defaults when absent.
url_host() { local rest=${1#*://}; rest=${rest##*@}; rest=${rest%%/*}; rest=${rest%%\?*}; rest=${rest%:*}; echo "${rest:-127.0.0.1}"; }
url_port() {
    local rest=${1#*://}; rest=${rest##*@}; rest=${rest%%/*}; rest=${rest%%\?*}
    if [[ $rest == *:* ]]; then echo "${rest##*:}"; else echo "$2"; fi
}
is_local() { [[ $1 == 127.0.0.1 || $1 == localhost ]]; }

# A TCP connect through bash's /dev/tcp: needs no client programs, which a fresh machine may lack.
tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# A Redis PING over /dev/tcp, in a subshell so the file descriptor never leaks into this shell.
redis_answers() (
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf 'PING\r\n' >&3
    reply=""
    read -r -t 2 reply <&3 || true
    [[ $reply == +PONG* ]]
) 2>/dev/null

wait_for() { # description, command...
    local what=$1; shift
    local deadline=$((SECONDS + WAIT_SECONDS))
    until "$@"; do
        ((SECONDS < deadline)) || die "$what did not answer within ${WAIT_SECONDS}s"
        sleep 0.5
    done
}

apt_install() {
    command -v apt-get >/dev/null || die "$* not installed and no apt-get here; install it yourself, or point DATABASE_URL/REDIS_URL at a running server"
    log "installing $* from Debian packages"
    # Service start-up during the package's postinst may fail without systemd; we start it ourselves.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- PostgreSQL ---------------------------------------------------------------------------------

# shellcheck disable=SC2012  # the entries are version numbers
pg_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }

# The postgres role over TCP without a password: what DATABASE_URL in tests/settings.py assumes.
pg_login_works() {
    command -v psql >/dev/null || return 0 # no client to check with; the suite will tell
    PGCONNECT_TIMEOUT=3 psql -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1
}

# Trust the postgres role from loopback. Done only on a cluster this script installed, or when asked
# (CI=true, or OCL_TEST_SERVICES_CONFIGURE=1), never on a working setup: a developer's own
# PostgreSQL keeps its authentication unless they opt in.
pg_trust_loopback() {
    local hba
    hba=$(as_root runuser -u postgres -- psql -p "$PG_PORT" -tAc 'SHOW hba_file') || die "cannot ask PostgreSQL for its pg_hba.conf"
    if ! as_root grep -q 'ocl-export test-services' "$hba"; then
        log "adding trust for the postgres role from 127.0.0.1 and ::1 to $hba"
        # Prepended: pg_hba.conf is first-match, so these must come before any password rule.
        local lines='# ocl-export test-services: postgres over loopback without a password (tests only)
host all postgres 127.0.0.1/32 trust
host all postgres ::1/128 trust'
        # Rewritten through a redirect, not replaced, so the file keeps its owner and mode.
        # shellcheck disable=SC2016  # expanded by the inner shell, on purpose
        as_root bash -c 'new=$(printf "%s\n" "$1"; cat "$2") && printf "%s\n" "$new" >"$2"' _ "$lines" "$hba"
    fi
    as_root runuser -u postgres -- psql -p "$PG_PORT" -tAc 'SELECT pg_reload_conf()' >/dev/null
}

ensure_postgres() {
    local url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ocl_export}
    case $url in postgres://* | postgresql://*) ;; *) log "DATABASE_URL is not PostgreSQL; skipping"; return ;; esac
    local host port
    host=$(url_host "$url"); port=$(url_port "$url" 5432)
    if ! is_local "$host" || [[ $port != "$PG_PORT" ]]; then
        log "PostgreSQL at $host:$port is not ours to manage; waiting for it"
        wait_for "PostgreSQL at $host:$port" tcp_open "$host" "$port"
        return
    fi

    local installed_now=0
    if ! tcp_open "$PG_HOST" "$PG_PORT"; then
        if [[ -z $(pg_version) ]]; then
            apt_install postgresql
            installed_now=1
        fi
        # The cluster that owns our port; the package creates "main" on 5432, and a machine where it
        # was dropped gets a new one.
        local version cluster
        read -r version cluster < <(pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '$3 == port {print $1, $2; exit}') || true
        if [[ -z ${cluster:-} ]]; then
            version=$(pg_version); cluster=main
            # "main" may exist on another port; then make one named for ours.
            pg_lsclusters -h 2>/dev/null | awk '{print $2}' | grep -qx main && cluster="ocl_test_$PG_PORT"
            log "creating PostgreSQL $version cluster $cluster on port $PG_PORT"
            as_root pg_createcluster --port "$PG_PORT" "$version" "$cluster" >/dev/null
        fi
        log "starting PostgreSQL $version/$cluster"
        # --skip-systemctl-redirect: there may be no systemd (containers, CI); start it directly.
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start || true
        wait_for "PostgreSQL on $PG_HOST:$PG_PORT" tcp_open "$PG_HOST" "$PG_PORT"
    fi

    if ! pg_login_works; then
        if ((installed_now)) || [[ ${CI:-} == true || ${OCL_TEST_SERVICES_CONFIGURE:-} == 1 ]]; then
            pg_trust_loopback
            wait_for "PostgreSQL login as postgres over TCP" pg_login_works
        else
            die "PostgreSQL answers on $PG_HOST:$PG_PORT but the postgres role cannot log in over TCP without a password.
  Set DATABASE_URL with a password, or rerun with OCL_TEST_SERVICES_CONFIGURE=1 to add loopback trust for the postgres role."
        fi
    fi
    log "PostgreSQL ok on $PG_HOST:$PG_PORT"
}

# --- Redis --------------------------------------------------------------------------------------

ensure_redis() {
    local url=${REDIS_URL:-redis://127.0.0.1:6379/13}
    local host port
    host=$(url_host "$url"); port=$(url_port "$url" 6379)
    if ! is_local "$host" || [[ $port != "$REDIS_PORT" ]]; then
        log "Redis at $host:$port is not ours to manage; waiting for it"
        wait_for "Redis at $host:$port" tcp_open "$host" "$port"
        return
    fi

    if redis_answers "$REDIS_HOST" "$REDIS_PORT"; then
        log "Redis ok on $REDIS_HOST:$REDIS_PORT"
        return
    fi
    command -v redis-server >/dev/null || apt_install redis-server
    # The package's own service may have come up during the install.
    if ! redis_answers "$REDIS_HOST" "$REDIS_PORT"; then
        log "starting redis-server on $REDIS_HOST:$REDIS_PORT (no persistence: tests flush it anyway)"
        as_root mkdir -p /var/lib/redis /var/log/redis
        as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
            --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
        wait_for "Redis on $REDIS_HOST:$REDIS_PORT" redis_answers "$REDIS_HOST" "$REDIS_PORT"
    fi
    log "Redis ok on $REDIS_HOST:$REDIS_PORT"
}

# --- chromium (the browser test of the admin console) ---------------------------------------------

ensure_chromium() {
    if [[ -x /usr/bin/chromium ]]; then
        log "chromium ok at /usr/bin/chromium"
        return
    fi
    apt_install chromium
    [[ -x /usr/bin/chromium ]] || die "chromium was installed but /usr/bin/chromium is missing"
    log "chromium installed at /usr/bin/chromium"
}

ensure_postgres
ensure_redis
ensure_chromium
