#!/usr/bin/env python3
"""Exit 0 when an RQ export worker of this host (this container) is alive, else print why and
exit 1: the health check of the compose file's workers. Needs redis and rq only, not Django.

    python deploy/worker_alive.py [--queue NAME] [--max-age SECONDS]

Alive means, in rq's own registry in Redis: a worker listed for the export queue
(``rq:workers:<queue>``) whose hash (``rq:worker:<name>``) still exists, was written from this
host (its ``hostname`` is ours, so each of several worker containers checks its own), is not
marked dead, names a process that is still running here, and holds a heartbeat at most
``--max-age`` seconds old. deploy/worker.sh gives rq no ``--name`` (rq picks a random one, and
would refuse a fixed one after a crash until it expired), so the host and the pid are what tell
our worker from the others.

Both halves are needed. rq's registry alone trusts a SIGKILLed worker until its hash expires,
``worker_ttl`` + 60 s after its last heartbeat (8 minutes by default): the pid finds a dead worker
at once. The pid alone trusts a worker that hangs: the heartbeat finds it. rq beats at least every
``worker_ttl`` - 15 s while idle and every ``job_monitoring_interval`` (30 s) during a job, so
``--max-age`` defaults to the hash's own expiry with rq's default ``worker_ttl`` (420 s); with a
smaller ``--worker-ttl`` given to the worker, give a smaller ``--max-age`` here.

``REDIS_URL`` and ``EXPORT_QUEUE`` are read as the settings read them (``NAME_FILE`` wins).
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import sys
from pathlib import Path

import redis
from rq import Worker
from rq.defaults import DEFAULT_WORKER_TTL
from rq.utils import now, utcparse
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

REDIS_TIMEOUT = 5
DEFAULT_MAX_AGE = DEFAULT_WORKER_TTL + 60


def env_str(name: str, default: str) -> str:
    """As ``foundation.environment.env_str``: ``NAME_FILE`` (a path) wins over ``NAME``."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        return Path(file_path).read_text().strip()
    return os.environ.get(name, default)


def process_running(pid: int) -> bool:
    """A process of this host that has not ended (a zombie has: it only waits to be reaped)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def check(client: redis.Redis, queue: str, max_age: float, hostname: str) -> tuple[bool, str]:
    """(alive, why) for the workers of ``queue`` registered from ``hostname``."""
    problems = []
    for key in sorted(_text(k) for k in client.smembers(WORKERS_BY_QUEUE_KEY % queue)):
        name = key.removeprefix(Worker.redis_worker_namespace_prefix)
        info = {_text(k): _text(v) for k, v in client.hgetall(key).items()}
        if not info or info.get("hostname") != hostname:
            continue  # expired (rq drops the name from the set later), or another host's
        pid = int(info.get("pid") or 0)
        beat = info.get("last_heartbeat")
        age = (now() - utcparse(beat)).total_seconds() if beat else math.inf
        if info.get("death"):
            problems.append(f"worker {name} registered its death")
        elif not process_running(pid):
            problems.append(f"worker {name}: its process {pid} is not running")
        elif age > max_age:
            problems.append(f"worker {name} (pid {pid}): last heartbeat {age:.0f} s ago, more than {max_age:g} s")
        else:
            return True, f"worker {name} (pid {pid}) of queue {queue!r} is alive: last heartbeat {age:.0f} s ago"
    if not problems:
        return False, f"no worker of queue {queue!r} on {hostname} is registered in Redis"
    return False, "; ".join(problems)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue", default=env_str("EXPORT_QUEUE", "exports"))
    parser.add_argument("--max-age", type=float, default=DEFAULT_MAX_AGE, metavar="SECONDS")
    options = parser.parse_args()
    url = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
    try:
        alive, why = check(client, options.queue, options.max_age, socket.gethostname())
    except redis.RedisError as exc:
        alive, why = False, f"Redis does not answer: {type(exc).__name__}: {exc}"
    finally:
        client.close()
    print(why if alive else f"not alive: {why}", file=sys.stdout if alive else sys.stderr)
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
