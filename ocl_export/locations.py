"""One-use, short-lived download URLs ("the Location").

Issuing one writes nothing: the token is self-contained, ``<export id>.<expiry>.<nonce>`` signed
with the SECRET_KEY, so a GET of an export (which every client polls, and each answer carries a
fresh Location) costs reads only. A forged or altered token fails its signature (404); a genuine
one names its export, its expiry (410 after it) and a random nonce. Only redemption writes: it
inserts the nonce into :class:`RedeemedLocation`, whose primary key lets exactly one of any number
of simultaneous redemptions insert it (the others, and every later one, hear 410).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, connection
from django.db.models import Exists
from django.http import HttpRequest
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from rest_framework.exceptions import NotFound

from foundation.errors import Gone
from observability import metrics
from serving.public_urls import absolute_url

from .models import Export, ExportState, RedeemedLocation

SALT = "ocl_export.locations.download"
DOWNLOAD_ROUTE = "export-download"
NONCE_BYTES = 12  # 96 random bits: 16 URL-safe characters
UNKNOWN = "Unknown download link."


@dataclass(frozen=True)
class Claim:
    """What a genuine token says: which export, until when, and its one-use nonce."""

    export_id: int
    expires: int  # Unix seconds
    nonce: str

    def expired(self, now: datetime) -> bool:
        return self.expires <= now.timestamp()

    @property
    def expires_on(self) -> datetime:
        return datetime.fromtimestamp(self.expires, UTC)


@lru_cache(maxsize=4)
def _signer(secret_key: str) -> signing.Signer:
    """One signer per key (built from the settings; a test may change SECRET_KEY)."""
    return signing.Signer(key=secret_key, salt=SALT)


def sign_claim(claim: Claim) -> str:
    return _signer(settings.SECRET_KEY).sign(f"{claim.export_id}.{claim.expires}.{claim.nonce}")


def read_claim(token: str) -> Claim:
    """The claim of a token this service signed; NotFound for anything else."""
    try:
        export_id, expires, nonce = signing.Signer(salt=SALT).unsign(token).split(".")
        return Claim(int(export_id), int(expires), nonce)
    except (signing.BadSignature, ValueError) as exc:
        raise NotFound(UNKNOWN) from exc


def issue_location(request: HttpRequest, export: Export, now: datetime | None = None) -> str:
    """An absolute URL on this service, ending with the archive's file name, valid once."""
    now = now or timezone.now()
    expires = int((now + timedelta(seconds=settings.EXPORT_LOCATION_TTL)).timestamp())
    token = sign_claim(Claim(export.pk, expires, secrets.token_urlsafe(NONCE_BYTES)))
    path = download_path(export.file_name, get_script_prefix()).replace(TOKEN_SLOT, token, 1)
    return absolute_url(request, path)


TOKEN_SLOT = "0.0.TOKEN"  # where a token goes in download_path(); reverse() leaves it as it is


@lru_cache(maxsize=1024)
def download_path(file_name: str, script_prefix: str) -> str:
    """The download route's path for ``file_name`` with TOKEN_SLOT for the token: resolved once per
    archive name (and mount point), not on every answer (a token only has characters that
    reverse() leaves alone, the URL-safe base64 alphabet, ``.`` and ``:``)."""
    return reverse(DOWNLOAD_ROUTE, kwargs={"token": TOKEN_SLOT, "file_name": file_name})


def _granted(export: Export | None, file_name: str) -> Export:
    if export is None or export.file_name != file_name:
        raise NotFound(UNKNOWN)
    if export.state != ExportState.COMPLETED:
        # Tokens are only issued for completed exports; one that left that state since (its
        # archive vanished from storage) grants nothing any more.
        raise Gone()
    return export


def peek_location(token: str, file_name: str, now: datetime | None = None) -> Export:
    """The export a token grants, if it could be redeemed now, without using it up (for HEAD:
    a link checker or ``curl -I`` must not spend a one-use link). One query."""
    claim = read_claim(token)
    used = RedeemedLocation.objects.filter(nonce=claim.nonce)
    export = Export.objects.annotate(used=Exists(used)).filter(pk=claim.export_id).first()
    export = _granted(export, file_name)
    if export.used or claim.expired(now or timezone.now()):
        raise Gone()
    return export


@metrics.counts_redemptions
def redeem_location(token: str, file_name: str, now: datetime | None = None) -> Export:
    """The completed export a token grants, recording the token as used.

    Raises NotFound for a token this service did not sign (or for another file, or an export that
    is gone), Gone for a token that was used already or has expired.
    """
    claim = read_claim(token)
    now = now or timezone.now()
    export = _granted(Export.objects.filter(pk=claim.export_id).first(), file_name)
    if claim.expired(now) or not _first_redemption(claim, now):
        raise Gone()
    return export


def _first_redemption(claim: Claim, now: datetime) -> bool:
    """Insert the nonce; True for the one caller whose insert went in (the primary key decides,
    without a lock or a transaction of our own)."""
    table = RedeemedLocation._meta.db_table
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (nonce, export_id, redeemed_on, expires_on) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (nonce) DO NOTHING",
                [claim.nonce, claim.export_id, now, claim.expires_on],
            )
            return cursor.rowcount == 1
    except IntegrityError as exc:
        # The export was deleted between its lookup and this insert (its foreign key is gone).
        raise NotFound(UNKNOWN) from exc
