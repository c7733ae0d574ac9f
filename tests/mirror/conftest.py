"""Fixtures of the mirror's tests: against the scripted OCL v2 upstream (tests/mirror/ocl_v2.py), and
the retry settings of the live ones."""

from __future__ import annotations

import pytest

from tests.mirror.ocl_v2 import upstream_answers


@pytest.fixture
def upstream_files(db) -> dict[str, bytes]:
    return upstream_answers()


@pytest.fixture
def fast_retries(settings):
    settings.MIRROR_ATTEMPTS = 3
    settings.MIRROR_BACKOFF = 0
    return settings


@pytest.fixture
def live_retries(settings):
    """Few attempts and no backoff, with room for a live upstream that is slow to export."""
    settings.MIRROR_ATTEMPTS = 2
    settings.MIRROR_BACKOFF = 0
    settings.MIRROR_TIMEOUT = 30
    settings.MIRROR_EXPORT_WAIT = 180
    return settings
