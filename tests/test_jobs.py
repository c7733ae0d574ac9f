"""The export job and its state machine: claims, heartbeat, progress, failures and retries."""

from __future__ import annotations

import time
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rq.job import Job, JobStatus

from jobqueue.queue import work_queue
from ocl_export import jobs, queue
from ocl_export.jobs import Heartbeat, discard_unclaimed_object, run_export
from ocl_export.models import Export, ExportState, IllegalTransition
from ocl_export.storage import get_storage
from tests.export_support import EXPORT_URL, ciel_v1, the_export, work

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pending(org, alice) -> Export:
    return Export.create_pending(ciel_v1(org), "tgz", alice)


def test_a_transition_the_state_machine_does_not_allow_raises(pending) -> None:
    with pytest.raises(IllegalTransition):
        pending.transition(ExportState.COMPLETED)


def test_a_transition_someone_else_made_first_is_lost(pending) -> None:
    stale_copy = Export.objects.get(pk=pending.pk)
    assert pending.transition(ExportState.PROCESSING, started_on=timezone.now())
    assert not stale_copy.transition(ExportState.PROCESSING, started_on=timezone.now())
    assert stale_copy.state == ExportState.PENDING  # the loser's instance is left as it was
    assert not pending.transition(ExportState.FAILED, expect_job_id="export-0-1")


def test_the_job_runs_only_a_pending_row_of_its_own_attempt(pending, fs_storage) -> None:
    pending.transition(ExportState.FAILED, error="gave up")
    assert run_export(pending.pk)["outcome"] == "not claimed"
    assert the_export(pending.version).state == ExportState.FAILED
    assert run_export(10**9)["outcome"] == "gone"


def test_the_job_records_the_outcome_on_the_row(pending, fs_storage) -> None:
    outcome = run_export(pending.pk)
    export = the_export(pending.version)
    assert outcome["outcome"] == "completed"
    assert export.state == ExportState.COMPLETED
    assert export.file_name == "CIEL_v1.20161004123113.tgz"
    assert export.key == "orgs/CIEL/sources/CIEL/CIEL_v1.20161004123113.tgz"
    assert export.last_updated == export.version.get_last_updated()
    assert len(export.sha256) == 64 and export.size == get_storage().size(export.key)
    assert export.started_on <= export.heartbeat_on <= export.finished_on
    assert (export.items_done, export.items_total, export.percent) == (5, 5, 100)


def test_a_permanent_failure_fails_the_row_and_is_not_retried(org, alice_client, redis_conn, fs_storage) -> None:
    version = ciel_v1(org)
    alice_client.post(EXPORT_URL)
    # Data the archive writer refuses: retrying cannot help.
    Export.objects.filter(version=version).update(format="rar")
    work()
    export = Export.objects.get(version=version)
    assert export.state == ExportState.FAILED
    assert "rar" in export.error
    job = Job.fetch(export.job_id, connection=redis_conn)
    assert job.get_status() == JobStatus.FAILED
    assert job.retries_left == 0
    assert "ValueError" in job.latest_result().exc_string
    assert not list(fs_storage.rglob("*.*"))


def test_a_temporary_failure_is_retried_then_fails(
    org, alice_client, redis_conn, s3_bucket, settings, monkeypatch
) -> None:
    settings.EXPORT_RETRY_DELAYS = [0, 0]  # no scheduler in a burst worker
    version = ciel_v1(org)
    alice_client.post(EXPORT_URL)
    settings.AWS_S3_ENDPOINT_URL = "http://127.0.0.1:1"  # S3 unreachable
    work()
    export = Export.objects.get(version=version)
    assert export.state == ExportState.FAILED
    assert "StorageError" in export.error and "will retry" not in export.error
    job = Job.fetch(export.job_id, connection=redis_conn)
    assert (job.get_status(), job.retries_left) == (JobStatus.FAILED, 0)
    assert len(list(job.results())) == 0 or job.latest_result().exc_string


def test_the_heartbeat_beats_on_its_own_connection(pending) -> None:
    pending.transition(ExportState.PROCESSING, started_on=timezone.now(), heartbeat_on=None)
    heartbeat = Heartbeat(pending.pk, pending.job_id, interval=0.05)
    heartbeat.start()
    time.sleep(0.3)
    heartbeat.stop()
    assert not heartbeat.is_alive()
    assert the_export(pending.version).heartbeat_on is not None


def test_progress_is_written_by_the_heartbeat_not_by_the_reading_connection(pending) -> None:
    pending.transition(ExportState.PROCESSING, started_on=timezone.now())
    heartbeat = Heartbeat(pending.pk, pending.job_id, interval=60)
    heartbeat.report(10)
    heartbeat.report(20)
    assert the_export(pending.version).items_done == 0  # reporting writes nothing by itself
    heartbeat.beat()
    assert the_export(pending.version).items_done == 20
    Export.objects.filter(pk=pending.pk).update(items_done=0)
    heartbeat.beat()  # nothing new to say: no write
    assert the_export(pending.version).items_done == 0


def test_an_abandoned_attempt_removes_what_it_published(pending, fs_storage) -> None:
    storage = get_storage()
    with storage.open_writer("orgs/CIEL/sources/CIEL/x.tgz", "application/gzip") as sink:
        sink.write(b"archive")
    pending.transition(ExportState.PROCESSING, key="orgs/CIEL/sources/CIEL/x.tgz")
    discard_unclaimed_object(pending.pk, "orgs/CIEL/sources/CIEL/x.tgz")
    assert storage.exists("orgs/CIEL/sources/CIEL/x.tgz")  # a live attempt works on the same key
    pending.transition(ExportState.FAILED)
    discard_unclaimed_object(pending.pk, "orgs/CIEL/sources/CIEL/x.tgz")
    assert not storage.exists("orgs/CIEL/sources/CIEL/x.tgz")


def test_the_reap_command_fails_dead_exports_and_aborts_their_uploads(pending, s3_bucket, settings) -> None:
    client, bucket = s3_bucket
    key = "orgs/CIEL/sources/CIEL/CIEL_v1.20161004123113.tgz"
    client.create_multipart_upload(Bucket=bucket, Key=f"{settings.AWS_LOCATION}/{key}")
    long_ago = timezone.now() - timezone.timedelta(seconds=settings.EXPORT_HEARTBEAT_STALE + 5)
    pending.transition(ExportState.PROCESSING, started_on=long_ago, heartbeat_on=long_ago)
    Export.objects.filter(pk=pending.pk).update(key=key)

    out = StringIO()
    call_command("reap_exports", stdout=out)
    assert "failed 1 dead export(s), aborted 1 upload(s)" in out.getvalue()
    export = the_export(pending.version)
    assert (export.state, export.key) == (ExportState.FAILED, "")
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_dropped_database_connection_under_psycopg_is_temporary_and_retried(
    org, alice_client, redis_conn, fs_storage, settings, monkeypatch
) -> None:
    """The export's COPY runs on psycopg itself, so a terminated backend surfaces as psycopg's own
    OperationalError (not Django's): it is retried like any temporary failure."""
    settings.EXPORT_RETRY_DELAYS = [0]
    version = ciel_v1(org)
    alice_client.post(EXPORT_URL)
    calls = []

    def backend_terminated(*args, **kwargs):
        calls.append(1)
        raise psycopg.errors.AdminShutdown("terminating connection due to administrator command")

    monkeypatch.setattr(jobs, "produce_archive", backend_terminated)
    work()
    assert len(calls) == 2  # the first attempt and its retry
    export = the_export(version)
    assert export.state == ExportState.FAILED and "AdminShutdown" in export.error


def test_the_heartbeat_reconnects_after_its_connection_is_terminated(pending) -> None:
    pending.transition(ExportState.PROCESSING, started_on=timezone.now(), heartbeat_on=None)
    heartbeat = Heartbeat(pending.pk, pending.job_id, interval=0.05)
    heartbeat.start()
    try:
        assert wait_until(lambda: the_export(pending.version).heartbeat_on is not None)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cursor.rowcount >= 1
        terminated = timezone.now()
        assert wait_until(lambda: the_export(pending.version).heartbeat_on > terminated)
        assert heartbeat.is_alive()
    finally:
        heartbeat.stop()


def test_job_ids_never_repeat_for_the_same_row_and_attempt() -> None:
    ids = {Export.job_id_for(1, 1) for _ in range(100)}
    assert len(ids) == 100 and all(job_id.startswith("export-1-1-") for job_id in ids)


def test_a_job_id_whose_job_already_ended_is_queued_again(pending, redis_conn) -> None:
    """A Redis db that served an earlier database holds a finished job of the same id."""
    queue.enqueue_export_job(pending.pk, pending.job_id)
    old = Job.fetch(pending.job_id, connection=redis_conn)
    old.set_status(JobStatus.FINISHED)
    work_queue().remove(old)
    queue.enqueue_export_job(pending.pk, pending.job_id)
    assert Job.fetch(pending.job_id, connection=redis_conn).get_status() == JobStatus.QUEUED
    assert work_queue().get_job_ids() == [pending.job_id]


def test_a_job_id_still_queued_is_not_queued_twice(pending, redis_conn) -> None:
    queue.enqueue_export_job(pending.pk, pending.job_id)
    queue.enqueue_export_job(pending.pk, pending.job_id)
    assert work_queue().get_job_ids() == [pending.job_id]


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
