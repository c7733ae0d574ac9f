"""The export worker's process hygiene: children die with it, dead schedulers' locks are freed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta

import psutil
from rq.utils import now, utcformat

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
