"""Workers killed mid-export: the horse, the worker that forked it, or both. Nothing may keep
running behind a dead worker, recovery uses what RQ knows at once, not a stale heartbeat, and the
export completes without any client asking again: within a minute of the fault, at most
1 + len(EXPORT_RETRY_DELAYS) attempts, then a failure that says so."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from tests.faults.harness import ENV, HEARTBEAT_STALE, SETTLE, Harness, gone
from tests.live.stack import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.live]


def test_a_killed_work_horse_is_retried_at_once(faults: Harness) -> None:
    assert faults.post().status_code == 202
    faults.processing()
    horse = faults.horse()
    horse.kill()
    fault_at = time.monotonic()
    # The worker saw its horse die: the row is handed back for RQ's retry at once, well before its
    # heartbeat could go stale.
    row = faults.wait_row(lambda r: r["state"] != "processing", "the row to leave processing", timeout=HEARTBEAT_STALE)
    assert row["state"] in ("pending", "completed") and "work horse died" in row["error"]
    outcome = faults.recovered("work horse SIGKILLed mid-export", fault_at)
    assert outcome.state == "completed" and faults.row()["attempts"] == 1  # retried, never failed


def test_a_killed_worker_takes_its_horse_along(faults: Harness) -> None:
    assert faults.post().status_code == 202
    faults.processing()
    horse = faults.horse()
    worker = horse.parent()
    os.kill(worker.pid, signal.SIGKILL)  # the rq worker alone; deploy/worker.sh starts it again
    fault_at = time.monotonic()
    assert wait_until(lambda: gone(horse), 5, what="the horse to die with its worker")
    # Handed back to RQ as soon as the dead worker is seen, not failed once its heartbeat is stale.
    row = faults.wait_row(lambda r: r["state"] != "processing", "the row to leave processing")
    assert (row["state"], row["error"]) == ("pending", "The worker running the export died; will retry")
    outcome = faults.recovered("worker (horse's parent) SIGKILLed", fault_at)
    assert outcome.state == "completed", outcome.error
    assert faults.row()["attempts"] == 1  # retried by RQ, no client POSTed again


def test_a_killed_worker_group_leaves_nothing_and_its_successor_schedules_at_once(faults: Harness) -> None:
    """A supervisor kills the worker's process group (the horse has a group of its own) and starts
    a new worker: the horse is gone, and the new worker runs the scheduler at once, not after the
    dead one's lock expires (delayed retries need it)."""
    assert faults.post().status_code == 202
    faults.processing()
    horse = faults.horse()
    faults.stack.kill("worker", signal.SIGKILL)
    fault_at = time.monotonic()
    assert wait_until(lambda: gone(horse), 5, what="the horse to die with its worker")
    faults.stack.start_process("worker")
    try:
        wait_until(faults.scheduler_holder_alive, 30, what="the new worker's scheduler to take the lock")
    except TimeoutError as exc:
        raise AssertionError(faults.stack.log("worker")[-4000:]) from exc
    outcome = faults.recovered("worker and horse SIGKILLed (process groups)", fault_at)
    assert outcome.state == "completed", outcome.error
    assert faults.row()["attempts"] == 1


def test_an_export_whose_every_worker_dies_fails_saying_so(faults: Harness) -> None:
    """EXPORT_RETRY_DELAYS is 1,1,1 here: four attempts, each one's worker killed mid-export; each
    death hands the export back to RQ, the last one fails it saying so."""
    assert faults.post().status_code == 202
    attempts = len(ENV["EXPORT_RETRY_DELAYS"].split(",")) + 1
    killed: set[int] = set()
    for attempt in range(1, attempts + 1):
        row = faults.wait_row(lambda r: r["state"] != "pending", f"attempt {attempt} to start")
        assert row["state"] == "processing", (attempt, row["state"], row["error"], faults.stack.log("worker")[-3000:])
        horse = psutil.Process(
            wait_until(lambda: [pid for pid in faults.stack.horse_pids() if pid not in killed], 30, what="a new horse")[
                0
            ]
        )
        killed.add(horse.pid)
        os.kill(horse.parent().pid, signal.SIGKILL)
        fault_at = time.monotonic()
        assert wait_until(lambda horse=horse: gone(horse), 5, what="the horse to die with its worker")
        if attempt < attempts:
            row = faults.wait_row(lambda r: r["state"] != "processing", f"attempt {attempt} to be handed back")
            assert (row["state"], row["error"]) == ("pending", "The worker running the export died; will retry")
    row = faults.settled()
    assert row["state"] == "failed"
    assert row["error"] == f"The worker running the export died; gave up after {attempts} attempts."
    assert time.monotonic() - fault_at < SETTLE
    faults.recovered("every attempt's worker SIGKILLed", fault_at)
