"""Many clients at once: exactly one export is queued for a hundred POSTs, and a one-use Location
is redeemed exactly once by twenty simultaneous downloads."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from tests.faults.harness import EXPORT, Harness

pytestmark = [pytest.mark.faults, pytest.mark.live]


def test_a_hundred_concurrent_posts_queue_one_job(faults: Harness) -> None:
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=100) as pool:
        statuses = Counter(pool.map(lambda _: faults.post().status_code, range(100)))
    assert statuses[202] == 1 and statuses[202] + statuses[409] + statuses[303] == 100, statuses
    row = faults.row()
    client = redis.Redis.from_url(faults.stack.redis_url)
    jobs = [key.decode() for key in client.scan_iter(f"rq:job:export-{row['id']}-*")]
    assert jobs == [f"rq:job:{row['job_id']}"]
    assert row["attempts"] == 1
    faults.recovered("100 concurrent POSTs (one 202, one job)", started)


def test_twenty_concurrent_redemptions_of_one_location_have_one_winner(faults: Harness) -> None:
    assert faults.post().status_code == 202
    assert faults.settled()["state"] == "completed"
    location = faults.request("GET", EXPORT).headers["Location"]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = Counter(pool.map(lambda _: faults.request("GET", location).status_code, range(20)))
    assert statuses == Counter({302: 1, 410: 19})
    faults.recovered("20 concurrent redemptions of one Location (one 302)", started)
