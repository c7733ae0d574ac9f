"""One-use, short-lived download URLs ("the Location").

Issuing one stores a :class:`DownloadGrant` and signs its nonce into the URL, so a forged or altered
token is told apart (404) from a genuine one that was used or has expired (410). Redeeming is one
conditional UPDATE: of any number of simultaneous requests for the same URL exactly one wins.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from rest_framework.exceptions import NotFound

from .errors import Gone
from .models import DownloadGrant, Export, ExportState

SALT = "ocl_export.locations.download"
DOWNLOAD_ROUTE = "export-download"


def issue_location(request: HttpRequest, export: Export, now: datetime | None = None) -> str:
    """An absolute URL on this service, ending with the archive's file name, valid once."""
    now = now or timezone.now()
    grant = DownloadGrant.objects.create(
        export=export, created_on=now, expires_on=now + timedelta(seconds=settings.EXPORT_LOCATION_TTL)
    )
    token = signing.dumps(grant.nonce, salt=SALT)
    path = reverse(DOWNLOAD_ROUTE, kwargs={"token": token, "file_name": export.file_name})
    return request.build_absolute_uri(path)


def _grant(token: str, file_name: str) -> DownloadGrant:
    try:
        nonce = signing.loads(token, salt=SALT)
    except signing.BadSignature as exc:
        raise NotFound("Unknown download link.") from exc
    grant = DownloadGrant.objects.select_related("export").filter(nonce=nonce).first()
    if grant is None or grant.export.file_name != file_name:
        raise NotFound("Unknown download link.")
    return grant


def _usable(grant: DownloadGrant) -> Export:
    if grant.export.state != ExportState.COMPLETED:
        # Only completed exports get grants, and a completed export never changes state; a deleted
        # one takes its grants along. Kept as a guard, not an expected path.
        raise Gone()
    return grant.export


def peek_location(token: str, file_name: str, now: datetime | None = None) -> Export:
    """The export a token grants, if it could be redeemed now, without using it up (for HEAD:
    a link checker or ``curl -I`` must not spend a one-use link)."""
    grant = _grant(token, file_name)
    if grant.redeemed_on is not None or grant.expires_on <= (now or timezone.now()):
        raise Gone()
    return _usable(grant)


def redeem_location(token: str, file_name: str, now: datetime | None = None) -> Export:
    """The completed export a token grants, recording the grant as used.

    Raises NotFound for a token this service did not sign (or for another file), Gone for a grant
    that was used already or has expired.
    """
    grant = _grant(token, file_name)
    now = now or timezone.now()
    redeemed = DownloadGrant.objects.filter(pk=grant.pk, redeemed_on__isnull=True, expires_on__gt=now).update(
        redeemed_on=now
    )
    if redeemed != 1:
        raise Gone()
    return _usable(grant)
