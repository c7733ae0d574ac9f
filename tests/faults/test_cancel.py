"""A repository admin cancels an export while its multipart upload is in flight, on the live stack:
the DELETE answers 202 with the job cancelled, the horse is stopped, and by the time the answer
arrives the S3 server holds no object and no unfinished upload; the worker goes on to the next job."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.faults.harness import SETTLE, Harness
from tests.live.stack import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.live]

# The suite's archive (24,000 concepts, 8.3 MB) goes up in a single PUT; this one of 64,000
# concepts, about 22 MB, in a multipart upload of 8 MiB parts that stays in flight for seconds.
EXPORT_V2 = "/orgs/BIG/sources/CIEL/v1/export/"
BIGGER_VERSION = (
    "from repos.models import Organization\n"
    "from repos.representation.rendering import render_all_pending\n"
    "from tests.export_support import big_version\n"
    "big_version(Organization.objects.get(mnemonic='BIG'), 64000)\n"
    "render_all_pending()\n"
)


@pytest.fixture(scope="module")
def bigger(live: Harness) -> Iterator[None]:
    live.stack.make_user("alice", admin_of="BIG")
    live.stack.shell(BIGGER_VERSION)
    yield
    # The suite's cases expect no export row but theirs.
    wait_until(lambda: live.request("DELETE", EXPORT_V2, headers=live.auth).status_code in (200, 204), SETTLE, 0.5)


def row_of(faults: Harness, export_id: int) -> dict[str, Any]:
    return faults.query("SELECT * FROM ocl_export_export WHERE id = %s", (export_id,))[0]


def test_a_cancel_mid_upload_stops_the_job_and_leaves_nothing_in_storage(faults: Harness, bigger: None) -> None:
    s3 = faults.stack.s3_client()
    bucket = faults.stack.bucket

    def uploads() -> list[str]:
        return [upload["Key"] for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]

    posted = faults.request("POST", f"{EXPORT_V2}?format=tgz", headers=faults.auth)
    assert posted.status_code == 202
    export_id = posted.json()["id"]
    wait_until(uploads, SETTLE, step=0.02, what="the export's multipart upload to start")
    horse = faults.horse()
    worker = horse.parent()
    assert row_of(faults, export_id)["state"] == "processing"

    asked = time.monotonic()
    response = faults.request("DELETE", EXPORT_V2, headers=faults.auth)
    took = time.monotonic() - asked
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["state"], job["error"]) == ("cancelled", "Cancelled by alice.")
    # Done by the cancel itself, not left for the reaper's next sweep.
    assert uploads() == []
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    row = row_of(faults, export_id)
    assert (row["state"], row["key"]) == ("cancelled", "")
    assert not horse.is_running() or horse.status() == "zombie"
    assert faults.request("GET", job["url"]).json()["state"] == "cancelled"
    print(f"\ncancel answered in {took:.2f} s")

    # The worker lives on and runs the next job.
    following = faults.post()
    assert following.status_code == 202
    next_id = following.json()["id"]
    wait_until(lambda: row_of(faults, next_id)["state"] == "completed", SETTLE, what="the next job to complete")
    assert worker.is_running() and worker.pid in [p.pid for p in faults.stack.descendants("worker")]
    # The cancelled export stayed cancelled (nothing retried it), and can be requested again.
    assert row_of(faults, export_id)["state"] == "cancelled"
    assert faults.request("POST", f"{EXPORT_V2}?format=tgz", headers=faults.auth).status_code == 202
    wait_until(lambda: row_of(faults, export_id)["state"] == "completed", SETTLE, what="the export again")
    faults.assert_nothing_half_written()
