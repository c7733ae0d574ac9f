"""The management commands: import_ocl, create_version, load_sample."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from repos import signals
from repos.importers.sample import DEFAULT_DEMO_TOKEN
from repos.models import ConceptVersion, Membership, Repository, RepositoryVersion

FIXTURES = Path(__file__).parent / "fixtures"
DEMO = FIXTURES / "ocl-v2-DemoSource_v1.0.20230526120030.zip"
CIELTEST = FIXTURES / "ocl-v1-CIELTEST-2015.zip"


def run(*args: Any, **options: Any) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


@pytest.fixture
def received() -> list[dict]:
    """version_created signals, as their keyword arguments."""
    seen: list[dict] = []

    def listener(sender: Any, **kwargs: Any) -> None:
        seen.append(kwargs)

    signals.version_created.connect(listener, weak=False)
    yield seen
    signals.version_created.disconnect(listener)


@pytest.mark.django_db
def test_it_imports_a_file_and_says_what_it_did() -> None:
    output = run("import_ocl", str(DEMO), "--quiet")
    assert "/orgs/DemoOrg/sources/DemoSource/v1.0/ created: 23 concepts (23 new), 22 mappings (22 new)" in output
    assert "unchanged" in run("import_ocl", str(DEMO), "--quiet")


@pytest.mark.django_db
def test_it_passes_version_and_owner_type_options() -> None:
    output = run("import_ocl", str(CIELTEST), "--version", "v9", "--owner-type", "users", "--quiet")
    assert "/users/CIELTEST/sources/CIELTEST/v9/ created" in output


@pytest.mark.django_db
def test_it_turns_a_bad_file_into_a_command_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(DEMO.read_bytes()[:1000])
    with pytest.raises(CommandError, match="broken.zip: damaged or truncated zip file"):
        run("import_ocl", str(broken), "--quiet")
    assert Repository.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_it_sends_version_created_after_the_import_commits(received: list[dict]) -> None:
    run("import_ocl", str(DEMO), "--quiet")
    assert [kwargs["version"].version for kwargs in received] == ["v1.0"]
    run("import_ocl", str(DEMO), "--quiet")  # unchanged: no new version, no signal
    assert len(received) == 1


@pytest.mark.django_db(transaction=True)
def test_it_creates_a_version_from_head_and_signals_after_commit(received: list[dict]) -> None:
    run("import_ocl", str(DEMO), "--quiet")
    received.clear()
    output = run("create_version", "/orgs/DemoOrg/sources/DemoSource/", "v2", "--released", "--description", "two")
    assert "created /orgs/DemoOrg/sources/DemoSource/v2/ (23 concepts, 22 mappings, released=True)" in output
    version = RepositoryVersion.objects.get(version="v2")
    assert (version.released, version.description) == (True, "two")
    assert version.last_updated is not None
    assert [kwargs["version"].pk for kwargs in received] == [version.pk]


@pytest.mark.django_db
def test_it_refuses_a_taken_version_id_or_an_unknown_repository() -> None:
    run("import_ocl", str(DEMO), "--quiet")
    with pytest.raises(CommandError, match="already has a version 'v1.0'"):
        run("create_version", "/orgs/DemoOrg/sources/DemoSource/", "v1.0")
    with pytest.raises(CommandError, match="no repository at /orgs/Nobody/sources/X/"):
        run("create_version", "orgs/Nobody/sources/X", "v1")
    with pytest.raises(CommandError, match="cannot name a version"):
        run("create_version", "/orgs/DemoOrg/sources/DemoSource/", "HEAD")


@pytest.mark.django_db
def test_it_loads_the_sample_once_and_prints_the_demo_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEMO_TOKEN", raising=False)
    first = run("load_sample", "--quiet")
    assert "v1.0/: created" in first and DEFAULT_DEMO_TOKEN in first
    rows = ConceptVersion.objects.count()
    second = run("load_sample", "--quiet")
    assert "v1.0/: unchanged" in second and "user demo (exists)" in second
    assert ConceptVersion.objects.count() == rows == 23
    token = Token.objects.get(key=DEFAULT_DEMO_TOKEN)
    assert token.user.username == "demo"
    assert Membership.objects.get(user=token.user, organization__mnemonic="DemoOrg").role == Membership.ADMIN


@pytest.mark.django_db
def test_it_takes_the_demo_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    run("load_sample", "--quiet")
    monkeypatch.setenv("DEMO_TOKEN", "my-own-demo-token")
    assert "my-own-demo-token" in run("load_sample", "--quiet")
    assert list(Token.objects.filter(user__username="demo").values_list("key", flat=True)) == ["my-own-demo-token"]
