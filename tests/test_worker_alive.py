"""``deploy/worker_alive.py``, the workers' health check, against real RQ workers: a worker started
by ``deploy/worker.sh`` is alive while it runs, and not once it is killed (although rq's registry
still lists it) or once it stops beating (although its process is still there).

The worker runs with a small ``--worker-ttl`` so that it beats every second; a queue of the test's
own keeps it apart from any other worker on the test Redis database.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from rq.utils import now, utcformat
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from tests.live.stack import free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
QUEUE = f"alive-{os.getpid()}"
# rq beats every worker_ttl - 15 s while idle: every second here.
WORKER_TTL = 16
MAX_AGE = 3

pytestmark = pytest.mark.slow


def environment(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "DJANGO_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        DJANGO_SETTINGS_MODULE="ocl_export.settings",
        PYTHON=sys.executable,
        PYTHONUNBUFFERED="1",
        REDIS_URL=settings.REDIS_URL,
        EXPORT_QUEUE=QUEUE,
    )
    env.update(overrides)
    return env


def alive(*args: str, **env: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "deploy/worker_alive.py", *args],
        cwd=ROOT,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def worker(redis_conn: redis.Redis, tmp_path: Path) -> Iterator[subprocess.Popen]:
    """deploy/worker.sh (rq and its scheduler), registered in Redis, in a process group of its own."""
    log = tmp_path / "worker.log"
    process = subprocess.Popen(
        ["bash", "deploy/worker.sh", "--worker-ttl", str(WORKER_TTL)],
        cwd=ROOT,
        env=environment(OCL_VAR_DIR=str(tmp_path / "var")),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: process.poll() is not None or redis_conn.smembers(WORKERS_BY_QUEUE_KEY % QUEUE),
            60,
            what="the worker to register",
        )
        assert process.poll() is None, log.read_text()
        yield process
    finally:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
        process.wait(timeout=10)


def test_a_running_worker_is_alive_and_a_killed_one_is_not_though_rq_still_lists_it(worker, redis_conn):
    status, said = alive()
    assert status == 0, said
    assert "is alive" in said
    os.killpg(worker.pid, signal.SIGKILL)  # worker.sh, rq and its scheduler: nothing restarts rq
    worker.wait(timeout=10)
    (key,) = redis_conn.smembers(WORKERS_BY_QUEUE_KEY % QUEUE)
    assert redis_conn.exists(key)  # rq's registry trusts it until its hash expires
    status, said = alive()
    assert status == 1
    assert "is not running" in said


def test_a_worker_that_stops_beating_is_not_alive_and_is_again_when_it_beats(worker):
    assert alive("--max-age", str(MAX_AGE))[0] == 0
    os.killpg(worker.pid, signal.SIGSTOP)  # still there, silent: as a worker that hangs

    def stale() -> str:
        status, said = alive("--max-age", str(MAX_AGE))
        return said if status == 1 else ""

    said = wait_until(stale, 15, step=0.5, what="the heartbeat to go stale")
    assert "last heartbeat" in said
    os.killpg(worker.pid, signal.SIGCONT)
    wait_until(lambda: alive("--max-age", str(MAX_AGE))[0] == 0, 15, step=0.5, what="a beat after SIGCONT")


def test_no_registered_worker_is_not_alive(redis_conn):
    status, said = alive()
    assert status == 1
    assert f"no worker of queue '{QUEUE}'" in said


def test_another_hosts_worker_does_not_make_this_one_alive(redis_conn):
    key = f"rq:worker:{'e' * 32}"
    redis_conn.hset(
        key,
        mapping={"hostname": f"not-{socket.gethostname()}", "pid": os.getpid(), "last_heartbeat": utcformat(now())},
    )
    redis_conn.sadd(WORKERS_BY_QUEUE_KEY % QUEUE, key)
    status, said = alive()
    assert status == 1
    assert "no worker" in said


def test_an_unreachable_redis_is_not_alive():
    status, said = alive(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert status == 1
    assert "Redis does not answer" in said
