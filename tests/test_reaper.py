"""The reaper's judgement of exports under way: stuck ones fail and their jobs stop, lost jobs are
queued again, and the age-based sweep never touches the upload of an export under way."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rq.command import PUBSUB_CHANNEL_TEMPLATE

from jobqueue.queue import work_queue
from ocl_export.models import Export, ExportState
from ocl_export.queue import enqueue_export_job
from ocl_export.reaper import reap_exports
from tests.export_support import ciel_v1, the_export

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "orgs/CIEL/sources/CIEL/CIEL_v1.20161004123113.tgz"


@pytest.fixture
def processing(org, alice, redis_conn) -> Export:
    export = Export.create_pending(ciel_v1(org), "tgz", alice)
    enqueue_export_job(export.pk, export.job_id)
    now = timezone.now()
    export.transition(ExportState.PROCESSING, started_on=now, heartbeat_on=now, progress_on=now, key=KEY)
    return export


def test_an_export_whose_heartbeat_beats_but_progress_stopped_is_failed_and_its_job_stopped(
    processing, redis_conn, settings, fs_storage
) -> None:
    # The job runs in a worker named "w1" (as RQ records it when a worker takes a job).
    job = work_queue().fetch_job(processing.job_id)
    job.worker_name = "w1"
    job.save()
    pubsub = redis_conn.pubsub()
    pubsub.subscribe(PUBSUB_CHANNEL_TEMPLATE % "w1")
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"

    long_ago = timezone.now() - timedelta(seconds=settings.EXPORT_PROGRESS_STALE + 1)
    Export.objects.filter(pk=processing.pk).update(progress_on=long_ago)
    assert reap_exports().failed == 1
    export = the_export(processing.version)
    assert export.state == ExportState.FAILED
    assert f"no progress for {settings.EXPORT_PROGRESS_STALE} s" in export.error
    command = pubsub.get_message(timeout=1)
    assert b"stop-job" in command["data"] and processing.job_id.encode() in command["data"]


def test_a_moving_export_with_a_fresh_heartbeat_is_left_alone(processing, fs_storage) -> None:
    assert reap_exports().failed == 0
    assert the_export(processing.version).state == ExportState.PROCESSING


def test_a_processing_export_whose_job_redis_lost_lives_while_its_heartbeat_beats(
    processing, redis_conn, fs_storage
) -> None:
    redis_conn.flushdb()  # a Redis restarted empty under a running job
    assert reap_exports().failed == 0
    assert the_export(processing.version).state == ExportState.PROCESSING


def test_the_sweep_never_aborts_the_upload_of_an_export_under_way(processing, s3_bucket, settings) -> None:
    """moto dates every upload in 2010 and clocks may disagree: age alone is no proof of death."""
    client, bucket = s3_bucket
    live = client.create_multipart_upload(Bucket=bucket, Key=f"{settings.AWS_LOCATION}/{KEY}")
    client.create_multipart_upload(Bucket=bucket, Key=f"{settings.AWS_LOCATION}/orgs/CIEL/sources/X/old.tgz")
    assert reap_exports(upload_age_seconds=0).uploads_aborted == 1
    assert [upload["UploadId"] for upload in client.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [
        live["UploadId"]
    ]
