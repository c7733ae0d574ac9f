"""What every fault case shares: one export of a big version driven through a live stack, and the
checks that must hold once the fault is over, whatever it was.

After every fault: the export ends ``completed`` with the bytes of a clean run or ``failed`` with an
error saying why, within the configured limits; a reaper sweep later no incomplete multipart upload
is left; nothing but completed archives is in the bucket; a new POST succeeds (and builds the
clean bytes); the web process never answered a 5xx other than 503.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psutil
import psycopg
import requests
from psycopg.rows import dict_row

from tests.live.stack import LiveStack, wait_until

EXPORT = "/orgs/CIEL/sources/CIEL/v1/export/"
# Enough poorly compressible text that an export takes a few seconds (an 8.3 MB archive: one PUT;
# tests/faults/test_cancel.py builds a bigger version for a multipart upload).
CONCEPTS = 24_000
BIG_VERSION = (
    "from repos.models import Organization\n"
    "from repos.representation.rendering import render_all_pending\n"
    "from tests.export_support import big_version\n"
    f"big_version(Organization.objects.get(mnemonic='CIEL'), {CONCEPTS})\n"
    "render_all_pending()\n"
)
# Short limits, so that each case ends in seconds. README: every variable.
HEARTBEAT_STALE = 5
PROGRESS_STALE = 10
REAP_INTERVAL = 3
ENV = {
    "EXPORT_HEARTBEAT_INTERVAL": "1",
    "EXPORT_HEARTBEAT_STALE": str(HEARTBEAT_STALE),
    "EXPORT_PROGRESS_STALE": str(PROGRESS_STALE),
    "EXPORT_RETRY_DELAYS": "1,1,1",
    "EXPORT_LOCATION_TTL": "20",
    "EXPORT_PRESIGN_TTL": "20",
    "AWS_S3_CONNECT_TIMEOUT": "1",
    "AWS_S3_READ_TIMEOUT": "2",
    "AWS_S3_MAX_ATTEMPTS": "2",
    "REDIS_SOCKET_TIMEOUT": "1",
    "REAP_INTERVAL": str(REAP_INTERVAL),
    # Checked on every POST and DELETE, so a killed or paused Redis meets the rate-limit check too
    # (it must let requests through, never answer 5xx), but high: a case POSTs 100 times at once.
    "RATE_LIMIT_EXPORT_WRITES": "100000/hour",
}
# The longest any case may take to settle once its fault is over: a few retries, a stale
# heartbeat or progress, two reaper sweeps, and a machine shared with other work.
SETTLE = 60
TERMINAL = ("completed", "failed")
ACCESS_STATUS = re.compile(r'" (\d{3}) ')


@dataclass
class Outcome:
    case: str
    state: str
    error: str
    seconds: float  # from the fault until the export was whole again (completed, right bytes)


RESULTS: list[Outcome] = []


class Harness:
    def __init__(self, stack: LiveStack, token: str) -> None:
        self.stack = stack
        self.auth = {"Authorization": f"Token {token}"}
        self.clean: dict[str, str] = {}  # format -> sha256 of a clean run

    # --- HTTP, with the one rule every answer obeys ------------------------------------------

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        url = path_or_url if path_or_url.startswith("http") else self.stack.url(path_or_url)
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("allow_redirects", False)
        response = requests.request(method, url, **kwargs)
        if url.startswith(self.stack.base_url):
            assert response.status_code < 500 or response.status_code == 503, (method, url, response.text[:500])
            if response.status_code >= 400:
                assert response.headers["Content-Type"] == "application/json", response.headers
        return response

    def post(self, fmt: str = "tgz") -> requests.Response:
        return self.request("POST", f"{EXPORT}?format={fmt}", headers=self.auth)

    def delete(self) -> None:
        def deleted() -> bool:
            return self.request("DELETE", EXPORT, headers=self.auth).status_code in (200, 204)

        wait_until(deleted, SETTLE, step=0.5, what="the exports to be deletable")

    # --- the database, read directly ----------------------------------------------------------

    def query(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        with psycopg.connect(self.stack.database_url, autocommit=True, row_factory=dict_row) as conn:
            return conn.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def table_locked(self, table: str) -> Iterator[None]:
        """Hold ``table`` locked against any read (an export's reads wait; the heartbeat, which
        writes the export row, does not): a job stuck in the database on demand."""
        with psycopg.connect(self.stack.database_url) as conn:
            conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            yield
            conn.rollback()

    def row(self, fmt: str = "tgz") -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM ocl_export_export WHERE format = %s", (fmt,))
        return rows[0] if rows else None

    def wait_row(
        self, condition: Callable[[dict[str, Any]], bool], what: str, fmt: str = "tgz", timeout: float = SETTLE
    ):
        return wait_until(lambda: (row := self.row(fmt)) is not None and condition(row) and row, timeout, 0.05, what)

    def copying(self) -> bool:
        return bool(self.query("SELECT 1 FROM pg_stat_activity WHERE query LIKE 'COPY %%' AND state = 'active'"))

    def processing(self, fmt: str = "tgz") -> dict[str, Any]:
        """The export once it streams rows (its COPY is under way: a second or so, at 20 ms polls)."""
        wait_until(self.copying, SETTLE, step=0.02, what="the export's COPY")
        return self.wait_row(lambda r: r["state"] == "processing", "the export to be processing", fmt)

    def settled(self, fmt: str = "tgz", timeout: float = SETTLE) -> dict[str, Any]:
        return self.wait_row(lambda r: r["state"] in TERMINAL, f"the {fmt} export to settle", fmt, timeout)

    # --- downloads --------------------------------------------------------------------------

    def download(self, fmt: str = "tgz") -> bytes:
        answer = self.request("GET", f"{EXPORT}?format={fmt}")
        assert answer.status_code == 303, (answer.status_code, answer.headers)
        redirect = self.request("GET", answer.headers["Location"])
        assert redirect.status_code == 302, redirect.text
        archive = requests.get(redirect.headers["Location"], timeout=30)
        assert archive.status_code == 200
        return archive.content

    def run_clean(self, fmt: str) -> str:
        assert self.post(fmt).status_code == 202
        row = self.settled(fmt)
        assert row["state"] == "completed", row["error"]
        sha = hashlib.sha256(self.download(fmt)).hexdigest()
        assert sha == row["sha256"]
        self.clean[fmt] = sha
        return sha

    # --- after the fault -------------------------------------------------------------------

    def recovered(self, case: str, fault_at: float, fmt: str = "tgz", timeout: float = SETTLE) -> Outcome:
        """Every check that must hold once a fault is over; records the case's outcome."""
        row = self.settled(fmt, timeout)
        if row["state"] == "completed":
            assert row["sha256"] == self.clean[fmt]
            assert hashlib.sha256(self.download(fmt)).hexdigest() == self.clean[fmt]
        else:
            assert row["error"], "a failed export says why"
        outcome = Outcome(case, row["state"], row["error"], 0.0)
        self.assert_nothing_half_written()
        if row["state"] == "failed":
            assert self.post(fmt).status_code == 202  # a new POST succeeds
            row = self.settled(fmt, timeout)
            assert row["state"] == "completed", row["error"]
            assert hashlib.sha256(self.download(fmt)).hexdigest() == self.clean[fmt]
        else:
            assert self.post(fmt).status_code == 303  # the export is there
        outcome.seconds = round(time.monotonic() - fault_at, 1)
        self.assert_nothing_half_written()
        self.assert_no_5xx_but_503()
        RESULTS.append(outcome)
        return outcome

    def assert_nothing_half_written(self) -> None:
        """Within a reaper sweep (two, for the timing), no incomplete upload is left, and the bucket
        holds only the archives of completed exports."""
        s3 = self.stack.s3_client()

        def no_uploads() -> bool:
            return not s3.list_multipart_uploads(Bucket=self.stack.bucket).get("Uploads")

        wait_until(no_uploads, 2 * REAP_INTERVAL + 10, step=0.2, what="the reaper to abort every incomplete upload")
        objects = {item["Key"] for item in s3.list_objects_v2(Bucket=self.stack.bucket).get("Contents", [])}
        completed = {
            f"exports/{row['key']}" for row in self.query("SELECT key FROM ocl_export_export WHERE state = 'completed'")
        }
        assert objects <= completed, f"objects {objects - completed} belong to no completed export"

    def assert_no_5xx_but_503(self) -> None:
        statuses = [int(status) for status in ACCESS_STATUS.findall(self.stack.log("web"))]
        assert statuses, "the web log names no answers"
        assert not [status for status in statuses if status >= 500 and status != 503]

    def revive(self) -> None:
        for name in ("redis", "s3", "web", "worker", "reaper"):
            process = self.stack.procs.get(name)
            if process is None:
                continue
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGCONT)
            else:
                self.stack.start_process(name)

    def reset(self) -> None:
        """No export of the version: the next case starts from nothing."""
        self.delete()
        assert self.query("SELECT count(*) AS n FROM ocl_export_export")[0]["n"] == 0

    # --- processes ---------------------------------------------------------------------------

    def horse(self) -> psutil.Process:
        return psutil.Process(wait_until(self.stack.horse_pids, 10, what="a work horse")[0])

    def scheduler_holder_alive(self) -> bool:
        """A scheduler holds the queue's lock, and its process lives (on this machine)."""
        import redis

        client = redis.Redis.from_url(self.stack.redis_url, socket_timeout=2)
        holder = client.get("rq:scheduler-lock:exports")
        if holder is None:
            return False
        pid = int(client.hget(f"rq:scheduler:{holder.decode()}", "pid") or 0)
        return pid > 0 and psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
