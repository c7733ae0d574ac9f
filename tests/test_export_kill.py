"""A worker killed mid-upload: nothing published, its job retried by RQ, the export completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import django_rq
import pytest
from django.conf import settings
from django.db import connection

from ocl_export.models import ExportState
from ocl_export.reaper import reap_exports
from tests.conftest import S3_CREDENTIALS
from tests.export_support import EXPORT_URL, big_version, the_export, work

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
CONCEPTS = 60_000  # enough poorly compressible text for several 8 MiB parts: the upload is caught under way


def worker_environment(bucket: str, endpoint: str) -> dict[str, str]:
    database = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        # the test database, which the worker must share with this process
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "EXPORT_STORAGE": "s3",
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": S3_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": S3_CREDENTIALS["aws_secret_access_key"],
        "EXPORT_HEARTBEAT_INTERVAL": "1",
    }


def wait_for(condition: object, timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(step)
    return False


def test_a_killed_worker_leaves_nothing_behind_and_the_export_can_be_requested_again(
    org, alice_client, anon_client, redis_conn, s3_server, s3_bucket, settings, tmp_path
) -> None:
    client, bucket = s3_bucket
    version = big_version(org, CONCEPTS)
    assert alice_client.post(EXPORT_URL).status_code == 202

    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "rqworker",
            settings.EXPORT_QUEUE,
            "--burst",
            "--worker-class",
            "rq.SimpleWorker",
        ],
        cwd=ROOT,
        env=worker_environment(bucket, s3_server),
        start_new_session=True,  # its own process group: the kill reaches every process it made
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        uploading = wait_for(lambda: client.list_multipart_uploads(Bucket=bucket).get("Uploads"), timeout=30)
        assert uploading, (
            f"the worker never started its upload: {the_export(version)} {the_export(version).size}\n{log.read_text()[-3000:]}"
        )
        os.killpg(worker.pid, signal.SIGKILL)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)

    assert the_export(version).state == ExportState.PROCESSING
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0

    # The heartbeat stops with the worker; once it is stale, a look at the export finds the worker
    # dead and hands its job back to RQ, which retries it: the row is pending again, saying why.
    settings.EXPORT_HEARTBEAT_STALE = 2
    assert wait_for(lambda: anon_client.get(EXPORT_URL)["X-Export-State"] == "pending", timeout=15, step=0.5)
    assert the_export(version).error == "The worker running the export died; will retry"
    # The dead attempt's upload is at the key of the export under way: its retry aborts it.
    assert reap_exports().uploads_aborted == 0

    # RQ's retry, scheduled EXPORT_RETRY_DELAYS[0] seconds on, runs now; no client asks again.
    queue = django_rq.get_queue(settings.EXPORT_QUEUE)
    scheduled = queue.scheduled_job_registry
    assert scheduled.get_job_ids() == [the_export(version).job_id]
    job = queue.fetch_job(the_export(version).job_id)
    scheduled.remove(job)
    queue.enqueue_job(job)
    work()
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert anon_client.get(EXPORT_URL).status_code == 303
    assert (the_export(version).items_done, the_export(version).attempts) == (CONCEPTS, 1)
