"""What the export feature does when the terminology core or its own rows change."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from rest_framework.exceptions import APIException

from repos.models import RepositoryVersion

from .jobs import queue_export
from .models import Export, key_in_use
from .storage import StorageError, get_storage

logger = logging.getLogger(__name__)


def export_new_version(sender: Any, version: RepositoryVersion, user: Any = None, **kwargs: Any) -> None:
    """``version_created``: queue the new version's export in the deployment's default format."""
    if not settings.EXPORT_ON_VERSION_CREATE or version.is_head:
        return
    try:
        queue_export(version, settings.EXPORT_DEFAULT_FORMAT, user)
    except APIException as exc:
        # The version exists either way; its export can still be requested by POST.
        logger.warning("could not queue the export of %s: %s", version, exc.detail)


def delete_archive(sender: type[Export], instance: Export, **kwargs: Any) -> None:
    """post_delete of an Export (directly, or cascaded from its version or repository): the stored
    object goes once the deletion has committed, never while a rollback could bring the row back."""
    if instance.key:
        transaction.on_commit(partial(delete_stored_object, instance.pk, instance.key))


def delete_stored_object(export_id: int, key: str) -> None:
    if key_in_use(key):
        return  # a newer row of the same version works on the same archive (same name, same bytes)
    try:
        get_storage().delete(key)
    except (StorageError, OSError):
        logger.exception("export %s: could not delete %s from storage", export_id, key)
