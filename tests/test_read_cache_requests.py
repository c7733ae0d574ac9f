"""Which requests ``read_cache`` answers from a process's store, through the real middleware chain.

The store here is listening but hears nothing (no listener thread runs in-process), so a row
changed behind its back tells a kept answer (the old value) from a fresh one (the new).
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from read_cache.store import Store
from repos.models import Repository
from tests.factories import add_concept, make_source

REPO = "/orgs/CIEL/sources/CIEL/"
CONCEPTS = f"{REPO}concepts/"


@pytest.fixture
def store(settings, monkeypatch) -> Store:
    """The process's store, on, as a web process of a deployment has it."""
    settings.READ_CACHE = True
    monkeypatch.setattr("read_cache.middleware.listener.start", lambda: None)
    store = Store(8 * 1024 * 1024, 60)
    store.set_listening(True)
    monkeypatch.setattr("read_cache.middleware.get_store", lambda: store)
    return store


@pytest.fixture
def source(org):
    source = make_source(org, "CIEL", name="Before")
    for n in range(30):
        add_concept(source, str(n), extras={"padding": "x" * 300})
    return source


def rename(source: Repository, name: str) -> None:
    Repository.objects.filter(pk=source.pk).update(name=name)


def name_seen(client: APIClient, **headers: str) -> str:
    # Each call is a new caller, sending only the headers given: the test client's cookie jar would
    # otherwise carry the session middleware's deletion of an unknown sessionid into the next call.
    client.cookies.clear()
    response = client.get(REPO, headers=headers)
    assert response.status_code == 200
    return response.json()["name"]


@pytest.mark.django_db
def test_an_anonymous_answer_is_kept_and_served_again(store, source):
    client = APIClient()
    assert name_seen(client) == "Before"
    rename(source, "After")
    assert name_seen(client) == "Before"  # from the store
    assert len(store) == 1


@pytest.mark.django_db
def test_a_request_with_a_cookie_is_not_served_a_kept_answer_and_keeps_none(store, source):
    client = APIClient()
    assert name_seen(client, Cookie="sessionid=abc") == "Before"
    assert len(store) == 0  # made for a cookie: not kept
    assert name_seen(client) == "Before"  # kept, for callers without a cookie
    rename(source, "After")
    assert name_seen(client, Cookie="sessionid=abc") == "After"  # not served the kept one
    assert name_seen(client, Cookie="csrftoken=x") == "After"  # any cookie
    assert name_seen(client) == "Before"
    assert len(store) == 1


@pytest.mark.django_db
def test_an_answer_to_a_parameter_the_view_does_not_read_is_not_kept_and_is_the_same(store, source):
    client = APIClient()
    plain = client.get(CONCEPTS, {"limit": "30"})
    assert len(store) == 1
    ignored = [client.get(CONCEPTS, {"limit": "30", "cachebuster": str(n)}) for n in range(20)]
    assert len(store) == 1  # none of the twenty kept
    for response in ignored:
        assert response.status_code == 200
        assert response.content == plain.content
        assert dict(response.items()) | {"X-Request-ID": ""} == dict(plain.items()) | {"X-Request-ID": ""}


@pytest.mark.django_db
def test_each_value_of_a_parameter_the_view_reads_is_an_answer_of_its_own(store, source):
    client = APIClient()
    pages = [client.get(CONCEPTS, {"limit": "5", "offset": str(offset)}) for offset in (0, 5, 10)]
    assert len(store) == 3
    assert len({page.content for page in pages}) == 3
    assert client.get(CONCEPTS, {"limit": "5", "offset": "5"}).content == pages[1].content


def hits() -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("ocl_read_cache_lookups_total", {"outcome": "hit"}) or 0.0


def served_from_store(client: APIClient, path: str, params: dict[str, str]) -> bool:
    before = hits()
    assert client.get(path, params).status_code == 200
    return hits() == before + 1


@pytest.mark.django_db
def test_a_process_holds_at_most_its_byte_budget_of_answers_the_least_recently_used_going(store, source):
    page_bytes = len(APIClient().get(CONCEPTS, {"limit": "30"}).content)
    store.budget = 5 * page_bytes
    store.set_listening(True)  # emptied
    client = APIClient()
    for limit in range(1, 31):  # thirty different answers, growing to a whole page
        assert not served_from_store(client, CONCEPTS, {"limit": str(limit)})
        assert store.bytes <= store.budget
    assert 4 <= len(store) < 30
    assert served_from_store(client, CONCEPTS, {"limit": "30"})  # the most recent stay
    assert served_from_store(client, CONCEPTS, {"limit": "27"})
    assert not served_from_store(client, CONCEPTS, {"limit": "1"})  # the oldest went
