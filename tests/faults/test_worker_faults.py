"""Workers killed mid-export: the horse, the worker that forked it, or both. Nothing may keep
running behind a dead worker, and recovery uses what RQ knows at once, not a stale heartbeat."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.harness import HEARTBEAT_STALE, Harness, gone
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
    outcome = faults.recovered("worker (horse's parent) SIGKILLed", fault_at)
    assert outcome.state == "completed" or "heartbeat" in outcome.error


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
    assert outcome.state == "completed" or "heartbeat" in outcome.error
