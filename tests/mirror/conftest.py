"""Fixtures of the mirror's tests against the scripted OCL v2 upstream (tests/mirror/ocl_v2.py)."""

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
