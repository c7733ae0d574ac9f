"""S3 gone or stalled while an export streams, and an archive deleted behind the service's back.
A job that cannot write must fail (or retry) by itself, never sit processing for good."""

from __future__ import annotations

import signal
import time

import pytest

from tests.faults.harness import HEARTBEAT_STALE, Harness

pytestmark = [pytest.mark.faults, pytest.mark.live]


def kill_s3(faults: Harness) -> None:
    faults.stack.kill("s3", signal.SIGKILL, group=False)
    faults.stack.proc("s3").wait(timeout=10)


def test_s3_killed_mid_stream(faults: Harness) -> None:
    assert faults.post().status_code == 202
    faults.processing()
    kill_s3(faults)
    fault_at = time.monotonic()
    time.sleep(1)
    faults.stack.start_process("s3")  # back on its port, empty
    faults.recovered("S3 SIGKILLed mid-stream, back after 1 s", fault_at)


def test_s3_down_when_the_job_starts(faults: Harness) -> None:
    kill_s3(faults)
    fault_at = time.monotonic()
    assert faults.post().status_code == 202
    row = faults.wait_row(lambda r: "StorageError" in r["error"], "the job to fail on storage")
    assert row["state"] in ("pending", "failed")  # retrying, or out of retries
    faults.stack.start_process("s3")
    faults.recovered("S3 down when the job starts", fault_at)


PAUSE = HEARTBEAT_STALE + 2  # longer than the heartbeat's stale limit


def test_s3_paused_longer_than_the_stale_limit(faults: Harness) -> None:
    assert faults.post().status_code == 202
    faults.processing()
    faults.stack.kill("s3", signal.SIGSTOP, group=False)
    fault_at = time.monotonic()
    try:
        # S3 calls time out (AWS_S3_READ_TIMEOUT x AWS_S3_MAX_ATTEMPTS): the job fails, cancels its
        # read, and retries; should anything hang, the reaper fails an export without progress.
        row = faults.wait_row(lambda r: r["state"] != "processing" or r["error"], "the job to notice", timeout=30)
        assert row["error"]
        time.sleep(max(0.0, PAUSE - (time.monotonic() - fault_at)))
    finally:
        faults.stack.kill("s3", signal.SIGCONT, group=False)
    faults.recovered(f"S3 SIGSTOPped {PAUSE} s mid-stream, then resumed", fault_at)


def test_an_archive_deleted_behind_the_service_is_rebuilt_on_request(faults: Harness) -> None:
    assert faults.post().status_code == 202
    row = faults.settled()
    assert row["state"] == "completed"
    location = faults.request("GET", "/orgs/CIEL/sources/CIEL/v1/export/").headers["Location"]
    faults.stack.s3_client().delete_object(Bucket=faults.stack.bucket, Key=f"exports/{row['key']}")
    fault_at = time.monotonic()
    answer = faults.request("GET", location)
    assert answer.status_code == 404 and "request one" in answer.json()["detail"]
    row = faults.row()
    assert row["state"] == "failed" and "missing from storage" in row["error"]
    faults.recovered("archive deleted from S3 behind the service", fault_at)
