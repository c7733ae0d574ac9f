"""The read cache's attack against the real processes: one anonymous client asking for a large
page over and over, each time with something new in the query string, must not grow gunicorn's
workers past the byte bound (issue #19: 24,000 such GETs grew two workers to 1.9 and 1.4 GB).

Half the requests carry a parameter the view ignores (``?cachebuster=N``): not kept at all. Half
carry a different value of one it reads (``updatedSince``, each before every concept, so the
same page under a key of its own): kept, within ``READ_CACHE_BYTES``. Each worker's resident
memory is read from ``/proc`` (psutil), the store's charge from ``/metrics``.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import FIXTURES
from tests.live.stack import LiveStack

pytestmark = pytest.mark.live

PAGE = "/orgs/CIELTEST/sources/CIELTEST/v1/concepts/?limit=1000"
BOUND = 8 * 1024 * 1024
REQUESTS = 1200
THREADS = 8
# Resident memory a worker may gain besides the bound: the allocator's own slack (freed pages it
# keeps, one arena per thread), the answers in flight, caches warming. Measured: each worker grew
# 18 MB in all with the 8 MiB bound; before the bound in bytes, 98 and 104 MB.
SLACK = 40 * 1024 * 1024
TOKEN = "live-cache-memory-token"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    metrics_dir = tmp_path_factory.mktemp("metrics")
    env = {"READ_CACHE_BYTES": str(BOUND), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "METRICS_TOKEN": TOKEN}
    with LiveStack("cachemem", env=env, web_workers=2, storage="filesystem") as stack:
        stack.import_file(FIXTURES / "ocl-v1-CIELTEST-2015.zip", "--version", "v1")
        yield stack


def worker_rss(stack: LiveStack) -> dict[int, int]:
    return {worker.pid: worker.memory_info().rss for worker in stack.descendants("web")}


def held_bytes(stack: LiveStack) -> float:
    """ocl_read_cache_held{measure="bytes"} as /metrics reports it."""
    text = requests.get(stack.url("/metrics"), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
    (value,) = [
        line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith('ocl_read_cache_held{measure="bytes"}')
    ]
    return float(value)


def query(n: int) -> str:
    if n % 2:
        return f"&cachebuster={n}"
    return f"&updatedSince={datetime.date(1900, 1, 1) + datetime.timedelta(days=n)}"


def test_distinct_query_strings_of_a_large_page_keep_each_worker_within_the_bound(stack):
    page = requests.get(stack.url(PAGE), timeout=30)
    assert page.status_code == 200 and len(page.content) > 100_000  # a large page, still kept whole
    for _ in range(40):  # every worker warm (a new connection each): imports, connections, a kept answer
        requests.get(stack.url(PAGE), timeout=30)
    baseline = worker_rss(stack)
    assert len(baseline) == 2

    def get(n: int) -> tuple[int, bytes]:
        response = requests.get(stack.url(PAGE + query(n)), timeout=60)
        return response.status_code, response.content

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(get, range(REQUESTS)))
    assert {status for status, _ in answers} == {200}
    assert {content for _, content in answers} == {page.content}  # the same page, whatever the key

    after = worker_rss(stack)
    grown = {pid: (after[pid] - baseline[pid]) / 2**20 for pid in baseline}
    for pid in baseline:
        assert after[pid] <= baseline[pid] + BOUND + SLACK, f"worker RSS grew by MB: {grown}"
    held = held_bytes(stack)  # the fullest worker's
    print(f"RSS grown (MB) by worker: {grown}; the fullest store holds {held:.0f} bytes")
    assert 0.75 * BOUND < held <= BOUND
