#!/usr/bin/env bash
# Runs `manage.py reap_exports` every REAP_INTERVAL seconds (default 120): it fails exports whose
# worker died (stale heartbeat, job gone from Redis) and aborts the uploads they left. One instance
# per deployment is enough (the compose `reaper` service); with systemd use the timer in
# deploy/systemd/ instead of this loop.
set -euo pipefail

cd "$(dirname "$0")/.."
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
interval=${REAP_INTERVAL:-120}

# Exit at once on SIGTERM (docker stop) instead of sitting out the sleep; a sweep in progress is
# safe to cut short, the next one redoes it.
sleeper=""
trap 'if [[ -n $sleeper ]]; then kill "$sleeper" 2>/dev/null || true; fi; exit 0' TERM INT

while true; do
    # A failed sweep (database briefly away) must not end the loop; the next one retries.
    "$PYTHON" manage.py reap_exports || echo "reaper: sweep failed; retrying in ${interval}s" >&2
    sleep "$interval" &
    sleeper=$!
    wait "$sleeper" || true
done
