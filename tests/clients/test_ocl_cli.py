"""The ``ocl`` command (PyPI ``openconceptlab``) run as a real process against the v2 profile.

What it needs (read from its code): ``repo export status`` sends a HEAD and reads 200/302 as
ready, 204 as none, 208 as processing; ``create`` reads 202/303/409; ``download`` takes a 200, or
a 302 whose Location it GETs once without following further; ``delete`` reads 204/404;
``repo versions --released true`` sends ``?released=true``.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

from tests.clients.conftest import ADMIN_TOKEN, DEMO_URL, DEMO_VERSION, Deployment
from tests.live.stack import wait_until

pytestmark = pytest.mark.live

OCL = str(Path(sys.executable).parent / "ocl")
EXPORT_ARGS = ("DemoOrg", "DemoSource", DEMO_VERSION, "--type", "source")


def ocl(deployment: Deployment, home: Path, *args: str) -> subprocess.CompletedProcess:
    """``ocl --server <the stack> --token <admin> ARGS`` with a HOME of its own (no ~/.ocl)."""
    return subprocess.run(
        [OCL, "--server", deployment.base_url, "--token", ADMIN_TOKEN, *args],
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
    )


def said(result: subprocess.CompletedProcess) -> tuple[int, str]:
    return result.returncode, (result.stdout + result.stderr).strip()


def test_export_create_status_download_delete(v2: Deployment, tmp_path: Path) -> None:
    v2.ensure_no_export(f"{DEMO_URL}{DEMO_VERSION}/")
    export = ("repo", "export")

    code, out = said(ocl(v2, tmp_path, *export, "status", *EXPORT_ARGS))
    assert (code, out) == (0, "No export exists. Use 'ocl repo export create' to generate one.")

    with v2.worker_paused():
        code, out = said(ocl(v2, tmp_path, *export, "create", *EXPORT_ARGS))
        assert (code, out) == (0, "Export creation started. Check status with 'ocl repo export status'.")
        code, out = said(ocl(v2, tmp_path, *export, "status", *EXPORT_ARGS))
        assert (code, out) == (0, "Export is currently being generated. Try again shortly.")
        code, out = said(ocl(v2, tmp_path, *export, "download", *EXPORT_ARGS))
        assert code == 2 and "Export is still being processed" in out

    wait_until(lambda: v2.export_status(f"{DEMO_URL}{DEMO_VERSION}/export/") == 302, timeout=60, what="the export")
    code, out = said(ocl(v2, tmp_path, *export, "status", *EXPORT_ARGS))
    assert (code, out) == (0, "Export is ready for download.")
    code, out = said(ocl(v2, tmp_path, *export, "create", *EXPORT_ARGS))
    assert (code, out) == (0, "Export already exists. Use 'ocl repo export download' to retrieve it.")

    code, out = said(ocl(v2, tmp_path, *export, "download", *EXPORT_ARGS))
    saved = tmp_path / "DemoSource_v1.0.20230526120030.zip"
    assert code == 0 and f"Saved to {saved.name}" in out, out
    with zipfile.ZipFile(io.BytesIO(saved.read_bytes())) as bundle:
        assert bundle.namelist() == ["export.json"]
        body = json.loads(bundle.read("export.json"))
    read = requests.get(
        v2.url(f"{DEMO_URL}{DEMO_VERSION}/?includeConcepts=true&includeMappings=true&includeRetired=true&limit=0"),
        timeout=60,
    )
    assert body == read.json()

    code, out = said(ocl(v2, tmp_path, *export, "delete", *EXPORT_ARGS))
    assert (code, out) == (0, "Export deleted.")
    code, out = said(ocl(v2, tmp_path, *export, "delete", *EXPORT_ARGS))
    assert code == 1 and out.startswith("Error: Export not found")


def test_repo_versions_released_true_lists_released_versions_only(v2: Deployment, tmp_path: Path) -> None:
    result = ocl(v2, tmp_path, "--json", "repo", "versions", "DemoOrg", "DemoSource", "--released", "true")
    assert result.returncode == 0, result.stderr
    assert [version["id"] for version in json.loads(result.stdout)["results"]] == [DEMO_VERSION]
    everything = ocl(v2, tmp_path, "--json", "repo", "versions", "DemoOrg", "DemoSource")
    assert [version["id"] for version in json.loads(everything.stdout)["results"]] == [DEMO_VERSION, "HEAD"]
