"""DRF's token authentication, with each token's (user, token) kept by ``read_cache.store``.

A token and its user are rows of watched tables: a revoked token, a deactivated user or a new
password is a committed change, which empties the store like any other. A token that fails is
not kept: it is looked up again, and refused again, every time.
"""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import TokenAuthentication

from .store import get_store


class KeptTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        parent = super().authenticate_credentials
        return get_store().remember(("token", key), lambda: parent(key))
