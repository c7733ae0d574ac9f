"""Delta benchmark: a release taken whole or as a delta, on a synthetic CIEL-like source.

    .venv/bin/python bench/bench_delta.py                      # 100k items, 1% changed, 0.1% removed
    .venv/bin/python bench/bench_delta.py --items 20000 --changed 0.05

Upstream (database ``ocl_bench_delta_up``): the generated source imported as version A, then B
made from A's file with ``--changed`` of its items changed (as ``bench_mirror.py`` changes them)
and ``--removed`` of them left out. It times B's full export and the delta A -> B (both tgz).
Two subscribers holding A (each its own database, A imported from the same file): one imports
B's whole archive, the other applies the delta; the second then exports B and must get the
upstream's sha256. Prints the bytes and seconds of both steps and their ratios. Each step runs
in a child process with its own database; downloads are not timed (see ``bench_mirror.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_mirror import changed_copy  # noqa: E402
from bench.generate_ciel import generate  # noqa: E402

OUT = ROOT / "bench" / "out"
SERVER_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")

# Runs in a child: one role's work against its own database, one JSON line of figures.
CHILD = """
import json, sys, time, django
django.setup()
from foundation.archive import spooled, write_archive
from repos.deltas import stream_delta
from repos.importers import import_file
from repos.importers.delta import apply_delta
from repos.models import RepositoryVersion
from repos.representation.body import stream_version
from repos.representation.rendering import render_all_pending

def export(version, path):
    render_all_pending()
    started = time.monotonic()
    with spooled(stream_version(version)) as spool, open(path, "wb") as sink:
        result = write_archive(spool, sink, "tgz", version.get_last_updated())
    return {"seconds": time.monotonic() - started, "size": result.size, "sha256": result.sha256}

role, out = sys.argv[1], sys.argv[2]
figures = {}
older = import_file(sys.argv[3], quiet=True)
if role == "upstream":
    newer = import_file(sys.argv[4], quiet=True)
    a = RepositoryVersion.objects.get(version=older.version)
    b = RepositoryVersion.objects.get(version=newer.version)
    figures["export"] = export(b, out + ".tgz")
    started = time.monotonic()
    facts = {"format": "tgz", "size": figures["export"]["size"], "sha256": figures["export"]["sha256"]}
    with spooled(stream_delta(a, b, facts)) as spool, open(out + ".delta.tgz", "wb") as sink:
        result = write_archive(spool, sink, "tgz", b.get_last_updated())
    figures["delta"] = {"seconds": time.monotonic() - started, "size": result.size}
elif role == "whole":
    started = time.monotonic()
    status = import_file(sys.argv[4], quiet=True).status
    figures["import"] = {"seconds": time.monotonic() - started, "status": status}
else:
    started = time.monotonic()
    summary = apply_delta(sys.argv[4])
    figures["apply"] = {"seconds": time.monotonic() - started, "status": summary.status, "phases": summary.phases}
    figures["export"] = export(RepositoryVersion.objects.get(version=summary.version), out + ".mirror.tgz")
print(json.dumps(figures))
"""


def database_url(name: str) -> str:
    return urlunsplit(urlsplit(SERVER_URL)._replace(path=f"/{name}"))


def run_child(role: str, out: str, *files: Path) -> dict:
    name = f"ocl_bench_delta_{role}"
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="ocl_export.settings", DATABASE_URL=database_url(name))
    env.update(EXPORT_ON_VERSION_CREATE="False", READ_CACHE="False", PYTHONPATH=str(ROOT))
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        done = subprocess.run(
            [sys.executable, "-c", CHILD, role, out, *map(str, files)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def next_release(source: Path, changed: float, removed: float, out: Path) -> tuple[Path, int, int]:
    """B: ``source`` with ``changed`` of its items changed and ``removed`` of them left out."""
    path, count = changed_copy(source, changed, out)
    data = orjson.loads(path.read_bytes())
    step = max(1, round(1 / removed)) if removed else 0
    gone = 0
    for kind in ("concepts", "mappings"):
        if step:
            kept = [item for index, item in enumerate(data[kind]) if (index + step // 2) % step]
            gone += len(data[kind]) - len(kept)
            data[kind] = kept
    data["id"] = data["version"] = "v-bench-next"
    out.write_bytes(orjson.dumps(data))
    return out, count, gone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.01, help="share of items changed in B")
    parser.add_argument("--removed", type=float, default=0.001, help="share of items B leaves out")
    args = parser.parse_args()
    source = OUT / f"CIEL_v-bench.{args.items}.tgz"
    if not source.exists():
        generate(source, args.items)
    with tempfile.TemporaryDirectory(prefix="bench-delta-") as scratch:
        newer, changed, gone = next_release(source, args.changed, args.removed, Path(scratch) / "next.json")
        print(f"{args.items:,} items; B: {changed:,} changed, {gone:,} removed")
        out = str(Path(scratch) / "b")
        upstream = run_child("upstream", out, source, newer)
        whole = run_child("whole", out, source, Path(out + ".tgz"))
        delta = run_child("apply", out, source, Path(out + ".delta.tgz"))
    export, made = upstream["export"], upstream["delta"]
    print(
        f"upstream: B's export {export['size']:,} B in {export['seconds']:.2f} s; delta {made['size']:,} B in {made['seconds']:.2f} s"
    )
    print(f"whole archive: {export['size']:,} B, import {whole['import']['seconds']:.2f} s")
    phases = ", ".join(f"{name} {seconds:.2f}" for name, seconds in delta["apply"]["phases"].items())
    print(f"delta:         {made['size']:,} B, apply {delta['apply']['seconds']:.2f} s ({phases})")
    print(
        f"ratios: bytes {made['size'] / export['size']:.1%}, "
        f"seconds {delta['apply']['seconds'] / whole['import']['seconds']:.1%}"
    )
    same = delta["export"]["sha256"] == export["sha256"]
    print(f"the subscriber's export of B has the upstream's sha256: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
