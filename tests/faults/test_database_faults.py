"""The export's PostgreSQL backends terminated under it (a failover, an operator's
pg_terminate_backend): the job's read is retried, the heartbeat reconnects."""

from __future__ import annotations

import time

import pytest

from tests.faults.harness import HEARTBEAT_STALE, PROGRESS_STALE, REAP_INTERVAL, SETTLE, Harness, gone
from tests.live.stack import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.live]


def terminate(faults: Harness, where: str) -> int:
    rows = faults.query(
        "SELECT pg_terminate_backend(pid) AS done, pid FROM pg_stat_activity"
        f" WHERE datname = current_database() AND pid <> pg_backend_pid() AND {where}"
    )
    return sum(1 for row in rows if row["done"])


def test_the_jobs_backend_terminated_mid_read_is_retried(faults: Harness) -> None:
    assert faults.post().status_code == 202
    # Found and terminated in one statement, polled: the COPY lasts about a second.
    copy = "query LIKE 'COPY %%' AND state = 'active'"
    assert wait_until(lambda: terminate(faults, copy), SETTLE, step=0.02, what="the export's COPY")
    fault_at = time.monotonic()
    outcome = faults.recovered("the job's PostgreSQL backend terminated mid-COPY", fault_at)
    assert outcome.state == "completed" and faults.row()["attempts"] == 1  # retried by RQ


def test_the_heartbeats_backend_terminated_reconnects(faults: Harness) -> None:
    """The job waits (on a locked table) while its heartbeat's connection is terminated: the
    heartbeat beats again on a new connection, so the reaper never takes the live job for dead."""
    with faults.table_locked("repos_conceptversion"):
        assert faults.post().status_code == 202
        faults.wait_row(lambda r: r["heartbeat_on"] is not None and r["state"] == "processing", "a first beat")
        beat = 'query ~ \'^UPDATE "ocl_export_export" SET "(heartbeat_on|items_done|progress_on)"\''
        assert wait_until(lambda: terminate(faults, beat), 5, step=0.05, what="the heartbeat's backend")
        fault_at = time.monotonic()
        terminated = faults.query("SELECT now() AS now")[0]["now"]
        faults.wait_row(lambda r: r["heartbeat_on"] > terminated, "a heartbeat after the termination", timeout=5)
        time.sleep(max(0.0, fault_at + HEARTBEAT_STALE + 1 - time.monotonic()))  # stale, had it stopped
        assert faults.row()["state"] == "processing"
    outcome = faults.recovered("the heartbeat's PostgreSQL backend terminated", fault_at)
    assert outcome.state == "completed" and faults.row()["attempts"] == 1


def test_a_job_that_makes_no_progress_is_failed_and_stopped(faults: Harness) -> None:
    """Its heartbeat beats, yet nothing moves (a read blocked for good): after EXPORT_PROGRESS_STALE
    the reaper fails the export and stops its job, which frees the worker."""
    with faults.table_locked("repos_conceptversion"):
        assert faults.post().status_code == 202
        faults.wait_row(lambda r: r["state"] == "processing", "the job to start")
        horse = faults.horse()
        fault_at = time.monotonic()
        row = faults.wait_row(
            lambda r: r["state"] == "failed", "the reaper", timeout=PROGRESS_STALE + 3 * REAP_INTERVAL + 10
        )
        assert "no progress" in row["error"]
        assert wait_until(lambda: gone(horse), 10, what="the stuck job's work horse to be stopped")
    outcome = faults.recovered(f"job stuck in a read (heartbeat alive) > {PROGRESS_STALE} s", fault_at)
    assert outcome.state == "failed"
