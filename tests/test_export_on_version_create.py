"""A new version queues its own export when EXPORT_ON_VERSION_CREATE is on."""

from __future__ import annotations

import pytest

from ocl_export.models import Export, ExportState
from repos.signals import version_created
from tests.export_support import EXPORT_URL, ciel_source, ciel_v1, queued_job_ids, work

pytestmark = pytest.mark.django_db(transaction=True)


def test_creating_a_version_over_http_queues_its_export(
    org, alice, alice_client, anon_client, redis_conn, fs_storage, settings
) -> None:
    settings.EXPORT_ON_VERSION_CREATE = True
    ciel_source(org)
    response = alice_client.post("/orgs/CIEL/sources/CIEL/versions/", {"id": "v1", "released": True}, format="json")
    assert response.status_code == 201, response.content
    export = Export.objects.get(version__version="v1")
    assert (export.state, export.format, export.requested_by) == (
        ExportState.PENDING,
        settings.EXPORT_DEFAULT_FORMAT,
        alice,
    )
    assert queued_job_ids() == [export.job_id]
    work()
    assert anon_client.get(EXPORT_URL).status_code == 303


def test_nothing_is_queued_when_the_setting_is_off(org, alice, redis_conn, settings) -> None:
    settings.EXPORT_ON_VERSION_CREATE = False
    version = ciel_v1(org)
    version_created.send(sender=type(version), version=version, user=alice)
    assert not Export.objects.exists()


def test_a_dead_queue_does_not_break_version_creation(org, alice, settings) -> None:
    settings.EXPORT_ON_VERSION_CREATE = True
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    version = ciel_v1(org)
    version_created.send(sender=type(version), version=version, user=alice)
    assert Export.objects.get(version=version).state == ExportState.FAILED
