#!/usr/bin/env bash
# One RQ worker for the export queue: the production worker entry point (container command,
# systemd ExecStart, `make worker`). Run as many as you like, on as many machines as you like,
# against one REDIS_URL and one DATABASE_URL; migrations are the web side's job, not this one's.
#
# The worker is ocl_export.worker.ExportWorker (RQ's forking worker): it forks a work horse per job.
#
# Restarts: rq ends when Redis goes away (an outage, a restart) or on an unexpected error. This
# script starts it again, after 1 s, then 2, 4, ... up to 30 s while it keeps ending within a
# minute, so a worker rides out a Redis outage and picks up again when Redis is back. systemd
# (Restart=always) and compose (restart: unless-stopped) restart the script itself if it dies.
#
# Shutdown: SIGTERM or SIGINT to this script is passed to rq, which then kills the work horse at
# once (its export is retried: by another worker, or by this one when it comes back) and stops;
# this script then exits. A stopped worker leaves nothing running: the horse and the scheduler are
# killed by the kernel when the worker dies, however it dies, and the worker when this script dies.
# So stop timeouts need only be a few seconds (see deploy/systemd/ and deploy/docker-compose.yml).
set -euo pipefail

cd "$(dirname "$0")/.."

# In the image the virtualenv is first on PATH; in a checkout, prefer .venv when there is one.
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi

# The queue name must match settings.EXPORT_QUEUE, which reads the same variable and default.
queue=${EXPORT_QUEUE:-exports}

stopping=""
child=""
stop() {
    stopping=1
    if [[ -n $child ]]; then kill -"$1" "$child" 2>/dev/null || true; fi
}
trap 'stop TERM' TERM
trap 'stop INT' INT

delay=1
while true; do
    started=$SECONDS
    # --with-scheduler: jobs retried with a delay (temporary S3/network errors, a killed work horse)
    # need a scheduler to be queued again; with many workers, rq elects one through a lock in Redis.
    "$PYTHON" manage.py rqworker "$queue" --with-scheduler "$@" &
    child=$!
    status=0
    wait "$child" || status=$?
    # A trapped signal ends `wait` early: wait on until rq has really stopped.
    while kill -0 "$child" 2>/dev/null; do
        status=0
        wait "$child" || status=$?
    done
    child=""
    if [[ -n $stopping ]]; then exit 0; fi
    if ((SECONDS - started >= 60)); then delay=1; fi
    echo "worker.sh: rq ended (status $status); starting it again in ${delay}s" >&2
    sleep "$delay" &
    child=$!
    wait "$child" || true
    child=""
    if [[ -n $stopping ]]; then exit 0; fi
    delay=$((delay * 2 > 30 ? 30 : delay * 2))
done
