"""ocldev (PyPI ``ocldev``, the OCL team's Python library) against the live service.

``OclExportFactory.load_export`` GETs ``{version_url}export/`` following redirects, needs a final
200 and opens the body as a zip holding ``export.json``; with ``do_wait_for_export`` a 204 makes
it POST once and then poll through 208s until a 200. ``load_latest_export`` reads ``latest/``
first. In v2 all of it works as it does against OCL v2; in v1 it needs a zip (``?format=zip``).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests
from ocldev import oclexport
from ocldev.oclexport import OclExportFactory

from tests.clients.conftest import (
    ADMIN_TOKEN,
    CIEL_URL,
    CIEL_VERSION,
    DEMO_URL,
    DEMO_VERSION,
    Deployment,
)
from tests.live.stack import wait_until

pytestmark = pytest.mark.live

EVERYTHING = "?includeConcepts=true&includeMappings=true&includeRetired=true&limit=0"
SOURCES = [(CIEL_URL, CIEL_VERSION, 1946, 4897), (DEMO_URL, DEMO_VERSION, 23, 22)]


def read_api_body(deployment: Deployment, version_path: str) -> dict[str, Any]:
    return requests.get(deployment.url(f"{version_path}{EVERYTHING}"), timeout=60).json()


class Recorder:
    """Stands in for the ``requests`` module inside ocldev: the same calls, each answer noted."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self._note("GET", requests.get(url, timeout=60, **kwargs))

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self._note("POST", requests.post(url, timeout=60, **kwargs))

    def _note(self, method: str, response: requests.Response) -> requests.Response:
        # The first answer of a redirect chain is what the service said to ocldev's request.
        first = response.history[0] if response.history else response
        self.seen.append((method, first.status_code))
        return response


@pytest.mark.parametrize(("repo", "version", "concepts", "mappings"), SOURCES, ids=["CIEL-subset", "DemoSource"])
def test_v2_load_export_gives_every_concept_and_mapping(v2, repo, version, concepts, mappings) -> None:
    v2.ensure_exported(f"{repo}{version}/")
    export = OclExportFactory.load_export(repo_version_url=v2.url(f"{repo}{version}/"), oclapitoken=ADMIN_TOKEN)
    body = export.get_full_export()
    assert (len(body["concepts"]), len(body["mappings"])) == (concepts, mappings)
    assert body == read_api_body(v2, f"{repo}{version}/")


def test_v2_load_latest_export_reads_latest_then_the_export(v2) -> None:
    v2.ensure_exported(f"{DEMO_URL}{DEMO_VERSION}/")
    export = OclExportFactory.load_latest_export(v2.url(DEMO_URL), oclapitoken=ADMIN_TOKEN)
    assert export.get_full_export()["id"] == DEMO_VERSION
    assert len(export) == 23 + 22


def test_v2_the_wait_loop_posts_on_204_waits_through_208s_and_loads_on_200(v2, monkeypatch) -> None:
    version_path = f"{DEMO_URL}{DEMO_VERSION}/"
    v2.ensure_no_export(version_path)
    recorder = Recorder()
    monkeypatch.setattr(oclexport, "requests", recorder)
    loaded: dict[str, Any] = {}

    def load() -> None:
        loaded["export"] = OclExportFactory.load_export(
            repo_version_url=v2.url(version_path),
            oclapitoken=ADMIN_TOKEN,
            do_wait_for_export=True,
            delay_seconds=0.3,
            max_wait_seconds=60,
        )

    with v2.worker_paused():
        client = threading.Thread(target=load, daemon=True)
        client.start()
        wait_until(lambda: recorder.seen.count(("GET", 208)) >= 2, timeout=30, what="two 208s")
    client.join(timeout=60)
    assert not client.is_alive()
    assert recorder.seen[:3] == [("GET", 204), ("POST", 202), ("GET", 208)]
    assert recorder.seen[-1] == ("GET", 302)  # followed to the archive, which answered 200
    assert {answer for _, answer in recorder.seen[2:-1]} == {208}
    assert len(loaded["export"]) == 23 + 22


def test_v1_loads_a_zip_asked_for_with_format_zip(v1) -> None:
    version_path = f"{CIEL_URL}{CIEL_VERSION}/"
    v1.ensure_exported(version_path, fmt="zip")
    # ocldev appends "export/" to the URL it is given: ending that URL with "export/?format=zip#"
    # puts the appended part in the fragment, which is never sent.
    url = v1.url(f"{version_path}export/?format=zip#")
    export = OclExportFactory.load_export(repo_version_url=url, oclapitoken=ADMIN_TOKEN)
    body = export.get_full_export()
    assert (len(body["concepts"]), len(body["mappings"])) == (1946, 4897)
    assert body == read_api_body(v1, version_path)
