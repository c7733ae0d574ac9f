"""The embedded mode's sample data: DemoSource, and a "demo" user with a known API token."""

from __future__ import annotations

import os
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

from repos.importers.errors import ImportFileError
from repos.importers.loader import ImportSummary, import_file
from repos.models import Membership, Organization
from repos.sample import SAMPLE_EXPORT

DEMO_USERNAME = "demo"
# A development value, printed by load_sample; set DEMO_TOKEN for anything reachable by others.
DEFAULT_DEMO_TOKEN = "demo0000000000000000000000000000000token"


@dataclass
class SampleSummary:
    imported: ImportSummary
    username: str
    token: str
    user_created: bool
    token_changed: bool


def demo_token() -> str:
    token = getattr(settings, "DEMO_TOKEN", None) or os.environ.get("DEMO_TOKEN") or DEFAULT_DEMO_TOKEN
    if len(token) > 40:
        raise ImportFileError("DEMO_TOKEN must be at most 40 characters (a DRF token key)")
    return token


def load_sample(quiet: bool = True) -> SampleSummary:
    """Import the embedded DemoSource export and ensure the demo user; safe to run again."""
    token_key = demo_token()
    imported = import_file(SAMPLE_EXPORT, quiet=quiet)
    with transaction.atomic():
        user, user_created = get_user_model().objects.get_or_create(username=DEMO_USERNAME)
        if user_created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        organization = Organization.objects.get(mnemonic="DemoOrg")
        Membership.objects.update_or_create(organization=organization, user=user, defaults={"role": Membership.ADMIN})
        token = Token.objects.filter(user=user).first()
        token_changed = token is None or token.key != token_key
        if token_changed:
            # The key is the primary key of a token row: replace the row rather than edit it.
            Token.objects.filter(user=user).delete()
            Token.objects.filter(key=token_key).delete()
            Token.objects.create(user=user, key=token_key)
    return SampleSummary(imported, DEMO_USERNAME, token_key, user_created, token_changed)
