"""Mirror benchmark: bytes and time of a first sync and of a diff sync, from a real upstream.

    .venv/bin/python bench/bench_mirror.py                    # CIELTEST, then 100,000 items
    .venv/bin/python bench/bench_mirror.py --items 20000 --changed 0.05

Two instances of the service run as real processes on loopback (tests/live/stack.py: gunicorn,
an RQ worker, a database and a Redis of their own, one moto S3 server with two buckets): the
upstream, and the mirror, which subscribes to it and runs ``manage.py sync`` as an operator
would. For each scenario the upstream imports a source and releases ``v1``; its export is made
before the clock starts, so the first sync's time is download + check + import (plus the HEAD
diff, which holds only the boundary instant). Then the upstream imports a copy with a share of
its items changed (names edited, map types changed, all stamped later) and releases ``v2``;
the next sync brings ``v2`` whole and HEAD by an ``updatedSince`` diff, whose bytes and time are
what a HEAD-only subscription pays for the same change: a second mirror, following HEAD only, is
measured alongside (its first sync reads the whole of HEAD as one zipped ``limit=0`` answer). Figures come from the sync's own report
(bytes received over the wire, seconds per step).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import orjson
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from generate_ciel import generate  # noqa: E402

from tests.live.stack import LiveStack, wait_until  # noqa: E402
from tests.s3server import start_moto  # noqa: E402

CIELTEST = ROOT / "tests" / "fixtures" / "ocl-v1-CIELTEST-2015.zip"
LATER = "2030-01-01T00:00:00Z"  # after everything either file holds


def read_json(path: Path) -> dict[str, Any]:
    if path.suffix == ".zip":
        return orjson.loads(zipfile.ZipFile(path).read("export.json"))
    import tarfile

    with tarfile.open(path, "r:gz") as archive:
        member = archive.extractfile("export.json")
        assert member is not None
        return orjson.loads(member.read())


def changed_copy(source: Path, share: float, out: Path) -> tuple[Path, int]:
    """``source`` with every n-th item changed and stamped later; (path, items changed)."""
    data = read_json(source)
    step = max(1, round(1 / share))
    changed = 0
    for kind in ("concepts", "mappings"):
        for index, item in enumerate(data[kind]):
            if index % step:
                continue
            if kind == "concepts":
                item["display_name"] = f"{item.get('display_name') or ''} (edited)"
                if item.get("names"):
                    item["names"][0]["name"] = item["display_name"]
                item["updated_on"] = LATER
            else:
                item["map_type"] = "NARROWER-THAN" if item.get("map_type") != "NARROWER-THAN" else "SAME-AS"
                item["updated_on"] = item["updated_at"] = LATER
            changed += 1
    if data.get("type", "").endswith("Version"):
        data["id"] = data["version"] = f"{data['id']}-changed"
        data["released"] = False
    out.write_bytes(orjson.dumps(data))
    return out, changed


def export_ready(stack: LiveStack, repo: str, version: str, token: str) -> None:
    """Have the upstream produce the version's export now, so the sync does not wait for it."""
    url = stack.url(f"{repo}{version}/export/")
    requests.post(url, headers={"Authorization": f"Token {token}"}, timeout=30)
    wait_until(
        lambda: requests.get(url, allow_redirects=False, timeout=30).status_code in (302, 303),
        timeout=600,
        step=0.5,
        what=f"the upstream's export of {version}",
    )


def sync_report(mirror: LiveStack) -> dict[str, Any]:
    started = time.monotonic()
    mirror.manage("sync", "--all", "--quiet", timeout=3600)
    wall = time.monotonic() - started
    out = mirror.shell(
        "import json\nfrom mirror.models import Subscription\nprint(json.dumps(Subscription.objects.get().last_report))"
    )
    report = json.loads(out.strip().splitlines()[-1])
    report["wall"] = wall
    return report


def describe(label: str, report: dict[str, Any]) -> None:
    for step in report["steps"]:
        name = "version " + step["version"] if step["version"] != "HEAD" else "HEAD diff"
        print(
            f"  {label:12} {name:24} {step['items']:>8,} items {step['applied']:>8,} applied "
            f"{step['bytes']:>12,} bytes {step['seconds']:>7.2f} s"
        )
    print(
        f"  {label:12} {'whole run':24} {report['seconds']:.2f} s in the run, {report['wall']:.2f} s with the command's start"
    )


def scenario(name: str, source: Path, repo: str, share: float, moto: str, scratch: Path) -> None:
    print(f"{name}: {source.name}, {share:.0%} of the items changed for the diff")
    with (
        LiveStack("benchup", s3_endpoint=moto) as upstream,
        LiveStack("benchmirror", s3_endpoint=moto) as mirror,
        LiveStack("benchhead", s3_endpoint=moto) as head_mirror,
    ):
        upstream.manage("import_ocl", str(source), "--quiet", "--version", "v0", timeout=3600)
        upstream.manage("create_version", repo, "v1", "--released")
        token = upstream.make_user("benchmirror", admin_of=repo.split("/")[2])
        export_ready(upstream, repo, "v1", token)
        # One mirror follows released versions and HEAD; the other HEAD only (its first sync is a
        # diff from nothing: the whole of HEAD as one zipped read, applied by the partial import).
        for stack, options in ((mirror, ()), (head_mirror, ("--no-released",))):
            stack.extra_env["UPSTREAM_TOKEN"] = token
            stack.manage("subscribe", upstream.url(repo), "--token-env", "UPSTREAM_TOKEN", "--no-schedule", *options)
        describe("first sync", sync_report(mirror))
        describe("HEAD only", sync_report(head_mirror))

        changed_file, changed = changed_copy(source, share, scratch / f"{name}-changed.json")
        upstream.manage("import_ocl", str(changed_file), "--quiet", "--version", "v1-changed", timeout=3600)
        upstream.manage("create_version", repo, "v2", "--released")
        export_ready(upstream, repo, "v2", token)
        print(f"  ({changed:,} items changed upstream)")
        describe("later sync", sync_report(mirror))
        describe("HEAD only", sync_report(head_mirror))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000, help="synthetic source size (0: skip it)")
    parser.add_argument("--changed", type=float, default=0.01, help="share of items changed for the diff")
    parser.add_argument("--skip-cieltest", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ocl_bench_mirror")
    moto, endpoint = start_moto()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-mirror-") as scratch:
            if not args.skip_cieltest:
                scenario(
                    "CIELTEST",
                    CIELTEST,
                    "/orgs/CIELTEST/sources/CIELTEST/",
                    args.changed if args.changed >= 0.05 else 0.05,
                    endpoint,
                    Path(scratch),
                )
            if args.items:
                synthetic = generate(Path(scratch) / "CIEL_v-bench.20240101000000.tgz", args.items)
                scenario(
                    f"synthetic {args.items:,}",
                    synthetic,
                    "/orgs/CIEL/sources/CIEL/",
                    args.changed,
                    endpoint,
                    Path(scratch),
                )
    finally:
        moto.terminate()
        moto.wait(timeout=10)


if __name__ == "__main__":
    main()
