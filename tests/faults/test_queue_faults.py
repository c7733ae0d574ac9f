"""Redis killed (and back empty) or paused: workers ride it out and pick up again, POST answers 503
meanwhile, and exports whose queued jobs Redis lost are queued again."""

from __future__ import annotations

import signal
import time

import pytest

from tests.faults.harness import Harness

pytestmark = [pytest.mark.faults, pytest.mark.live]


def test_redis_killed_mid_export_and_back_empty(faults: Harness) -> None:
    assert faults.post().status_code == 202
    faults.processing()
    assert faults.post("zip").status_code == 202  # queued behind the running job: lost with Redis
    faults.stack.kill("redis", signal.SIGKILL)
    fault_at = time.monotonic()
    time.sleep(1)
    assert faults.post("tgz").status_code in (303, 409, 503)  # done, under way, or Redis needed
    faults.stack.start_process("redis")
    faults.recovered("Redis SIGKILLed mid-export, back empty (running job)", fault_at)
    zip_outcome = faults.recovered("Redis SIGKILLed mid-export, back empty (queued job)", fault_at, "zip")
    assert zip_outcome.state == "completed"  # its job was queued again


def test_redis_paused(faults: Harness) -> None:
    faults.stack.kill("redis", signal.SIGSTOP)
    fault_at = time.monotonic()
    try:
        answer = faults.post()
        assert answer.status_code == 503 and answer.headers["Retry-After"]
        time.sleep(3)
    finally:
        faults.stack.kill("redis", signal.SIGCONT)
    assert faults.post().status_code == 202
    outcome = faults.recovered("Redis SIGSTOPped 4 s (POST 503 meanwhile)", fault_at)
    assert outcome.state == "completed"
