"""The export worker's process hygiene: children die with it, dead schedulers' locks are freed, dead
workers are told from live ones."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta

import psutil
from rq.utils import now, utcformat

from jobqueue.abandoned import worker_is_dead
from jobqueue.worker import scheduler_is_dead

# A worker-like parent that forks a long-sleeping child (as rq forks a work horse) and dies.
PARENT = """
import os, sys, time
import django
django.setup()
from jobqueue.worker import install_fork_hooks
install_fork_hooks()
child = os.fork()
if child == 0:
    time.sleep(60)
    os._exit(0)
print(child, flush=True)
time.sleep(0.5)
os._exit(0)
"""


def test_a_child_forked_by_the_worker_dies_with_it() -> None:
    parent = subprocess.run(
        [sys.executable, "-c", PARENT],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": ".", "DJANGO_SETTINGS_MODULE": "tests.settings"},
    )
    assert parent.returncode == 0, parent.stderr
    child = int(parent.stdout.split()[0])
    deadline = time.monotonic() + 5
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the child outlived its parent"
        time.sleep(0.05)


def scheduler(pid: int, beat_age: float, hostname: str | None = None) -> dict[str, str]:
    return {
        "hostname": hostname or socket.gethostname(),
        "pid": str(pid),
        "last_heartbeat": utcformat(now() - timedelta(seconds=beat_age)),
    }


def test_a_scheduler_is_dead_when_its_process_is_gone_or_it_stopped_beating() -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert scheduler_is_dead(scheduler(int(gone.stdout), beat_age=0))
    assert scheduler_is_dead(scheduler(os.getpid(), beat_age=60, hostname="elsewhere"))
    assert not scheduler_is_dead(scheduler(os.getpid(), beat_age=1))
    assert not scheduler_is_dead(scheduler(int(gone.stdout), beat_age=1, hostname="elsewhere"))
    assert not scheduler_is_dead({})  # not registered yet: it may be starting


def test_a_worker_is_dead_when_its_key_expired_or_its_process_here_is_gone(redis_conn) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    here = socket.gethostname()

    def registered(name: str, **fields: object) -> str:
        redis_conn.hset(f"rq:worker:{name}", mapping={key: str(value) for key, value in fields.items()})
        return name

    assert worker_is_dead(redis_conn, "never-registered")  # or its key expired
    assert worker_is_dead(redis_conn, registered("killed", hostname=here, pid=int(gone.stdout)))
    assert not worker_is_dead(redis_conn, registered("alive", hostname=here, pid=os.getpid()))
    # Elsewhere its pid says nothing: only its key's expiry tells.
    assert not worker_is_dead(redis_conn, registered("remote", hostname="elsewhere", pid=int(gone.stdout)))
    # A worker that stopped cleanly handed its job back itself.
    assert not worker_is_dead(
        redis_conn, registered("stopped", hostname=here, pid=int(gone.stdout), death="2026-12-06T00:00:00Z")
    )
