"""Operators' endpoints against the real processes: metrics that add up over gunicorn's workers
and the RQ worker's jobs; JSON logs; readiness while Redis or S3 is SIGSTOPped."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import FIXTURES
from tests.live.stack import LiveStack, wait_until

pytestmark = pytest.mark.live

TOKEN = "live-metrics-token"
EXPORT = "/orgs/CIELTEST/sources/CIELTEST/v1/export/"


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("metrics")


@pytest.fixture(scope="module")
def stack(metrics_dir: Path) -> Iterator[LiveStack]:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "METRICS_TOKEN": TOKEN, "LOG_FORMAT": "json"}
    with LiveStack("ops", env=env) as stack:
        stack.import_file(FIXTURES / "ocl-v1-CIELTEST-2015.zip", "--version", "v1")
        yield stack


def scrape(stack: LiveStack) -> dict[tuple[str, frozenset], float]:
    response = requests.get(stack.url("/metrics"), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def web_workers(stack: LiveStack) -> set[int]:
    return {child.pid for child in stack.descendants("web")}


def export(stack: LiveStack, token: str, fmt: str) -> None:
    url = stack.url(f"{EXPORT}?format={fmt}")
    assert requests.post(url, headers={"Authorization": f"Token {token}"}, timeout=10).status_code == 202
    wait_until(
        lambda: requests.get(url, allow_redirects=False, timeout=10).status_code == 303, 60, what=f"the {fmt} export"
    )


def identities(metrics_dir: Path) -> set[str]:
    """Whose files the directory holds: ``counter_<host>_<who>.db`` (and a gauge's
    ``gauge_<mode>_<host>_<who>.db``) -> ``<who>``."""
    return {path.stem.split("_", 3 if path.stem.startswith("gauge_") else 2)[-1] for path in metrics_dir.glob("*.db")}


def test_metrics_add_up_over_web_workers_that_came_and_went_and_the_workers_jobs(stack, metrics_dir):
    token = stack.make_user("alice", admin_of="CIELTEST")
    export(stack, token, "tgz")
    first_workers = web_workers(stack)
    assert len(first_workers) == 2
    for _ in range(30):
        assert requests.get(stack.url("/healthz"), timeout=10).status_code == 200
    # Both web workers go (gunicorn starts new ones): what they counted must stay in the sums.
    for pid in first_workers:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: len(web_workers(stack) - first_workers) == 2, 30, what="two new web workers")
    for _ in range(30):
        assert wait_until(lambda: requests.get(stack.url("/healthz"), timeout=10).status_code == 200, 30)
    export(stack, token, "zip")

    snapshot = scrape(stack)
    healthz = frozenset({"route": "healthz", "method": "GET", "status": "200"}.items())
    assert snapshot[("ocl_http_requests_total", healthz)] == 60
    for fmt in ("tgz", "zip"):
        labels = frozenset({"format": fmt, "outcome": "completed"}.items())
        assert snapshot[("ocl_exports_finished_total", labels)] == 1
        assert snapshot[("ocl_export_duration_seconds_count", frozenset({"format": fmt}.items()))] == 1
        assert snapshot[("ocl_exports", frozenset({"state": "completed", "format": fmt}.items()))] == 1
    assert snapshot[("ocl_export_queue_depth", frozenset())] == 0

    # One set of files per web worker and one for the RQ worker's horses, however many jobs ran.
    rq_files = {who for who in identities(metrics_dir) if who.startswith("rq-")}
    assert len(rq_files) == 1
    web_files = {int(who) for who in identities(metrics_dir) - rq_files}
    assert web_files <= first_workers | web_workers(stack)


def test_logs_are_json_lines_with_the_request_id_and_the_export_and_job_ids(stack):
    response = requests.get(stack.url("/orgs/CIELTEST/sources/CIELTEST/"), headers={"X-Request-ID": "ops-live-7"})
    assert response.headers["X-Request-ID"] == "ops-live-7"

    def access_line() -> dict | None:
        for line in stack.log("web").splitlines():
            if '"ops-live-7"' in line:
                return json.loads(line)
        return None

    entry = wait_until(access_line, 10, what="the access line")
    assert entry["logger"] == "gunicorn.access"
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/orgs/CIELTEST/sources/CIELTEST/", 200)
    assert all(json.loads(line) for line in stack.log("web").splitlines() if line.strip())

    worker_lines = [json.loads(line) for line in stack.log("worker").splitlines() if line.startswith("{")]
    in_jobs = [line for line in worker_lines if "export_id" in line]
    assert in_jobs, stack.log("worker")[-2000:]
    assert all(line["job_id"].startswith(f"export-{line['export_id']}-") for line in in_jobs)


def readyz(stack: LiveStack) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = requests.get(stack.url("/readyz"), timeout=15)
    return response.status_code, response.json(), time.monotonic() - started


def test_readyz_names_a_stopped_redis_or_s3_server_within_its_timeout_and_recovers(stack):
    assert readyz(stack)[0] == 200
    for name, check in (("redis", "redis"), ("s3", "storage")):
        stack.kill(name, signal.SIGSTOP, group=name != "s3")
        try:
            status, body, elapsed = readyz(stack)
            assert status == 503, body
            assert body["failed"] == [check]
            assert elapsed < 4
        finally:
            stack.kill(name, signal.SIGCONT, group=name != "s3")
        wait_until(lambda: readyz(stack)[0] == 200, 30, step=0.5, what=f"ready again after {name} came back")


def test_kept_answers_are_counted_across_the_web_workers(stack):
    for _ in range(20):
        assert requests.get(stack.url("/orgs/CIELTEST/sources/CIELTEST/v1/"), timeout=10).status_code == 200
    samples = scrape(stack)
    hits = samples.get(("ocl_read_cache_lookups_total", frozenset({("outcome", "hit")})), 0)
    misses = samples.get(("ocl_read_cache_lookups_total", frozenset({("outcome", "miss")})), 0)
    assert hits >= 18 - 2 and misses >= 1  # at most one miss per worker for this answer
    assert samples.get(("ocl_read_cache_emptied_total", frozenset({("cause", "connected")})), 0) >= 2
