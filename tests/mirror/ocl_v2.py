"""A scripted OCL v2 upstream of CIELTEST: the answers its API gives a mirror, made from real rows.

``upstream_answers`` imports the fixture and releases v1, renders what OCL v2 would answer (the
version's export, an empty HEAD diff, the repository, HEAD's brief listings), then empties the
database again for the mirror; ``script_for`` serves them from tests/mirror/scripted.py.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from django.db import connection

from repos.importers import import_file
from repos.importers.versions import create_version
from repos.models import Repository
from repos.representation.body import stream_version
from repos.representation.encoding import dumps
from repos.representation.items import EVERYTHING
from repos.representation.shapes import repository_dict
from tests.mirror.scripted import Answer, Script

FIXTURES = Path(__file__).parent.parent / "fixtures"
CIELTEST = FIXTURES / "ocl-v1-CIELTEST-2015.zip"
REPO = "/orgs/CIELTEST/sources/CIELTEST/"
JSON = {"Content-Type": "application/json"}
ZIP = {"Content-Type": "application/zip"}
VERSIONS = b'[{"id": "HEAD", "released": false}, {"id": "v1", "released": true}, {"id": "v0", "released": true}]'


def zipped(payload: bytes) -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("export.json", payload)
    return raw.getvalue()


def listing(body: bytes, kind: str) -> bytes:
    """OCL v2's brief listing of a body's items of ``kind`` (what a reconciliation reads)."""
    return json.dumps([{"id": item["id"], "url": item["url"]} for item in json.loads(body)[kind]]).encode()


def script_for(files: dict[str, bytes], export_answers: list[Answer] | None = None) -> Script:
    return Script(
        {
            f"GET {REPO}versions/": [Answer(200, VERSIONS, JSON)],
            f"GET {REPO}v1/export/": export_answers or [Answer(200, zipped(files["v1"]), ZIP)],
            f"GET {REPO}?": [Answer(200, zipped(files["diff"]), ZIP)],
            f"GET {REPO} ": [Answer(200, files["repository"], JSON)],  # the path alone (see Script)
            f"GET {REPO}concepts/": [Answer(200, files["concepts"], JSON)],
            f"GET {REPO}mappings/": [Answer(200, files["mappings"], JSON)],
        }
    )


def upstream_answers() -> dict[str, bytes]:
    """The upstream's export of a released v1 of CIELTEST, an empty HEAD diff, the repository and
    its HEAD's brief listings (an OCL v2 server's answers); then a clean database."""
    import_file(CIELTEST)
    version = create_version(REPO, "v1", released=True)
    repo = Repository.objects.get(mnemonic="CIELTEST")
    files = {
        "repository": dumps(repository_dict(repo)),
        "v1": b"".join(stream_version(version, EVERYTHING)),
        "diff": json.dumps(
            {
                **json.loads(b"".join(stream_version(repo.head(), top=repository_dict(repo)))),
                "concepts": [],
                "mappings": [],
            }
        ).encode(),  # fmt: skip
    }
    for kind in ("concepts", "mappings"):
        files[kind] = listing(files["v1"], kind)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE repos_repository, repos_organization CASCADE")
    return files
