#!/usr/bin/env bash
# One RQ worker for the export queue: the production worker entry point (container command,
# systemd ExecStart, `make worker`). Run as many as you like, on as many machines as you like,
# against one REDIS_URL and one DATABASE_URL; migrations are the web side's job, not this one's.
#
# Shutdown: the worker process replaces this shell (exec), so SIGTERM from docker stop, systemd or
# Kubernetes reaches rq itself. rq answers the first SIGTERM/SIGINT with a warm shutdown (finish
# the job in hand, take no new one) and a second with a cold one. Give it a stop timeout long
# enough for a large export; if it is killed anyway, the export's heartbeat goes stale and the row
# is failed or retried by the export code (EXPORT_HEARTBEAT_STALE), and no partial archive is
# published.
#
# Only the main process should get SIGTERM: rq's work horse (the forked child running the job)
# restores the default handler and would die at once. Docker signals PID 1 only; for systemd use
# KillMode=mixed (see deploy/systemd/).
set -euo pipefail

cd "$(dirname "$0")/.."

# In the image the virtualenv is first on PATH; in a checkout, prefer .venv when there is one.
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi

# The queue name must match settings.EXPORT_QUEUE, which reads the same variable and default.
queue=${EXPORT_QUEUE:-exports}

# --with-scheduler: jobs retried with a delay (temporary S3/network errors) need a scheduler to be
# re-queued; with many workers, rq elects one scheduler through a lock in Redis.
exec "$PYTHON" manage.py rqworker "$queue" --with-scheduler "$@"
