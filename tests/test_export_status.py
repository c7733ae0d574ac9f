"""GET /exports/jobs/<id>/: the job's state and progress, with the version's visibility."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from ocl_export.models import Export, ExportState
from tests.export_support import EXPORT_URL, ciel_v1, the_export, work

pytestmark = pytest.mark.django_db(transaction=True)

STATUS_KEYS = {
    "id", "state", "format", "percent", "items_done", "items_total", "size", "sha256", "file_name",
    "last_updated", "error", "created_on", "started_on", "finished_on", "url", "links",
}  # fmt: skip


def test_the_status_link_follows_the_job_to_completion(org, alice_client, anon_client, redis_conn, fs_storage) -> None:
    version = ciel_v1(org)
    url = alice_client.post(EXPORT_URL).json()["url"]
    pending = anon_client.get(url).json()
    assert set(pending) == STATUS_KEYS
    assert (pending["state"], pending["percent"], pending["started_on"]) == ("pending", 0, None)

    work()
    done = anon_client.get(url.rstrip("/")).json()
    export = the_export(version)
    assert done["state"] == "completed"
    assert (done["percent"], done["items_done"], done["items_total"]) == (100, 5, 5)
    assert (done["size"], done["sha256"]) == (export.size, export.sha256)
    assert done["file_name"] == "CIEL_v1.20161004123113.tgz"
    assert done["last_updated"] == "2016-10-04T12:31:13Z"
    assert done["finished_on"].endswith("Z") and done["error"] is None
    assert done["links"]["export"] == "http://testserver/orgs/CIEL/sources/CIEL/v1/export/?format=tgz"


def test_a_failed_job_shows_its_error(org, alice, anon_client) -> None:
    export = Export.create_pending(ciel_v1(org), "tgz", alice)
    export.transition(ExportState.FAILED, error="ValueError: bad data", finished_on=timezone.now())
    body = anon_client.get(f"/exports/jobs/{export.pk}/").json()
    assert (body["state"], body["error"]) == ("failed", "ValueError: bad data")


def test_a_private_repositorys_job_is_404_to_outsiders(org, alice, charlie_client, bob_client) -> None:
    export = Export.create_pending(ciel_v1(org, public_access="None"), "tgz", alice)
    assert charlie_client.get(f"/exports/jobs/{export.pk}/").status_code == 404
    assert bob_client.get(f"/exports/jobs/{export.pk}/").status_code == 200


def test_an_unknown_job_is_404_json(anon_client, db) -> None:
    response = anon_client.get("/exports/jobs/999999/")
    assert response.status_code == 404
    assert response.json()["detail"]


def test_wait_returns_as_soon_as_the_state_changes(org, alice, anon_client, redis_conn) -> None:
    export = Export.create_pending(ciel_v1(org), "tgz", alice)

    def start_later() -> None:
        time.sleep(0.7)
        try:
            Export.objects.get(pk=export.pk).transition(ExportState.PROCESSING, heartbeat_on=timezone.now())
        finally:
            connection.close()

    thread = threading.Thread(target=start_later)
    began = time.monotonic()
    thread.start()
    body = anon_client.get(f"/exports/jobs/{export.pk}/?wait=10").json()
    thread.join()
    assert body["state"] == "processing"
    assert 0.5 < time.monotonic() - began < 5


def test_a_bad_wait_is_400(org, alice, anon_client) -> None:
    export = Export.create_pending(ciel_v1(org), "tgz", alice)
    assert anon_client.get(f"/exports/jobs/{export.pk}/?wait=soon").status_code == 400
