"""Import benchmark: items/s, wall time and peak RSS of ``import_file`` at two file sizes.

    .venv/bin/python bench/bench_import.py                  # 100k and 1M items
    .venv/bin/python bench/bench_import.py --sizes 20000 200000
    .venv/bin/python bench/bench_import.py --runs 3         # the large size three times: its range

For each size it generates (or reuses) a synthetic CIEL-like .tgz under bench/out/, recreates the
PostgreSQL database ``ocl_bench_import`` (BENCH_DATABASE_URL names the server, BENCH_DATABASE
the database, for runs side by side), migrates it, and
imports the file in a child process that reports its own peak RSS. Then it prints the ratio of the
two sizes: the target is >= 20,000 items/s and a peak RSS that does not grow with the file. With
``--runs N`` the large size is imported N times and the target is judged on the slowest run, since
this machine's speed moves between runs.

After each import, a floor measured in the same run: the rows the import wrote (items and
memberships) are copied out to a prepared binary file, the tables emptied, and the same rows
COPYed back into the same tables (same indexes, same triggers) in one transaction, in a second
child process. That is what PostgreSQL alone costs for those rows, with no parsing, normalising,
rendering or checksums; ``import / floor`` is the import's figure as a ratio, like the export's.

Then, in a third child, the job that stores the OCL checksums the import deferred
(``CHECKSUMS_AT_IMPORT=deferred``, the default; ``repos.checksum_jobs``), run in-process and timed:
the import's figure leaves that work out, so the bench prints what it costs afterwards. With
``CHECKSUMS_AT_IMPORT=inline`` the import computes them itself and the job finds 0 rows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate_ciel import generate  # noqa: E402

OUT = ROOT / "bench" / "out"
SERVER_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE = os.environ.get("BENCH_DATABASE", "ocl_bench_import")  # one per concurrent run

# Runs in the child: import, then report the child's own figures as one JSON line.
CHILD = """
import json, resource, sys, time, django
django.setup()
from repos.importers import import_file
started = time.monotonic()
summary = import_file(sys.argv[1], quiet=True)
print(json.dumps({
    "seconds": time.monotonic() - started, "items": summary.items, "status": summary.status,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "phases": summary.phases,
}))
"""


# Runs in a second child: the import's rows out to a file, the tables emptied, then timed: the same
# rows COPYed back from the file, committed. session_replication_role as the import sets it.
FLOOR = """
import json, sys, time, django
django.setup()
from django.db import connection, transaction
tables = sys.argv[2:]
with open(sys.argv[1], "wb") as out, connection.cursor() as cursor:
    for table in tables:
        with cursor.cursor.copy(f"COPY {table} TO STDOUT (FORMAT binary)") as copy:
            data = b"".join(copy)
        out.write(len(data).to_bytes(8, "big") + data)
with connection.cursor() as cursor:
    cursor.execute(f"TRUNCATE {', '.join(tables)}")
    cursor.execute("VACUUM ANALYZE")
started = time.monotonic()
with open(sys.argv[1], "rb") as prepared, transaction.atomic(), connection.cursor() as cursor:
    cursor.execute("SELECT current_setting('is_superuser') = 'on'")
    if cursor.fetchone()[0]:
        cursor.execute("SET LOCAL session_replication_role = replica")
    for table in tables:
        size = int.from_bytes(prepared.read(8), "big")
        with cursor.cursor.copy(f"COPY {table} FROM STDIN (FORMAT binary)") as copy:
            left = size
            while left:
                block = prepared.read(min(left, 1 << 20))
                copy.write(block)
                left -= len(block)
print(json.dumps({"seconds": time.monotonic() - started}))
"""
# Runs in a third child, after the floor (which put back the rows as the import wrote them): the job
# that stores the OCL checksums the import deferred (repos.checksum_jobs), in-process and timed.
CHECKSUMS_JOB = """
import json, time, django
django.setup()
from repos.checksum_jobs import fill_checksums
from repos.models import Repository
started = time.monotonic()
rows = sum(fill_checksums(pk)["rows"] for pk in Repository.objects.values_list("pk", flat=True))
print(json.dumps({"seconds": time.monotonic() - started, "rows": rows}))
"""
# Parents before children, so the copy back meets the same foreign keys the import met.
FLOOR_TABLES = ("repos_conceptversion", "repos_mappingversion", "repos_version_concepts", "repos_version_mappings")


def database_url() -> str:
    parts = urlsplit(SERVER_URL)
    return urlunsplit(parts._replace(path=f"/{DATABASE}"))


def recreate_database() -> None:
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")


def drop_database() -> None:
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="ocl_export.settings",
        DATABASE_URL=database_url(),
        EXPORT_ON_VERSION_CREATE="False",  # measure the import, not an export job
        PYTHONPATH=str(ROOT),
    )
    return env


def run_once(path: Path) -> dict:
    recreate_database()
    env = child_env()
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    prepared = OUT / "floor-rows.bin"
    try:
        floor = subprocess.run(
            [sys.executable, "-c", FLOOR, str(prepared), *FLOOR_TABLES],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        prepared.unlink(missing_ok=True)
    result["floor_seconds"] = json.loads(floor.stdout.strip().splitlines()[-1])["seconds"]
    job = subprocess.run(
        [sys.executable, "-c", CHECKSUMS_JOB], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    result["checksums_job"] = json.loads(job.stdout.strip().splitlines()[-1])
    return result


def sample_file(items: int, seed: int) -> Path:
    path = OUT / f"CIEL_v-bench.20240101000000.{items}.tgz"
    if not path.exists():
        print(f"generating {path.name} ...", flush=True)
        generate(path, items, seed)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs=2, default=[100_000, 1_000_000], help="items (concepts+mappings)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--runs", type=int, default=1, help="imports of the large size (the slowest counts)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    args = parser.parse_args()
    small, large = args.sizes
    results: dict[int, list[tuple[float, dict]]] = {small: [], large: []}
    try:
        for items in [small] + [large] * max(args.runs, 1):
            path = sample_file(items, args.seed)
            result = run_once(path)
            rate = result["items"] / result["seconds"]
            results[items].append((rate, result))
            phases = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in result["phases"].items())
            print(
                f"{items:>9,} items  {path.stat().st_size / 1e6:7.1f} MB tgz  wall {result['seconds']:7.1f} s  "
                f"{rate:9,.0f} items/s  floor {result['floor_seconds']:5.1f} s  "
                f"import/floor {result['seconds'] / result['floor_seconds']:5.2f}x  "
                f"peak RSS {result['peak_rss_mb']:6.0f} MB  ({phases})",
                flush=True,
            )
            job = result["checksums_job"]
            print(
                f"{'':>9}  checksums job afterwards: {job['rows']:,} rows in {job['seconds']:.1f} s "
                f"({job['rows'] / job['seconds'] if job['seconds'] else 0:,.0f} rows/s; 0 rows when CHECKSUMS_AT_IMPORT=inline)",
                flush=True,
            )
    finally:
        if not args.keep:
            drop_database()
    small_rate, small_result = results[small][0]
    large_rate, large_result = min(results[large], key=lambda run: run[0])
    if len(results[large]) > 1:
        rates = [rate for rate, _ in results[large]]
        print(f"{large:,} items over {len(rates)} runs: {min(rates):,.0f}-{max(rates):,.0f} items/s")
    print(
        f"ratio {large // small}x items (slowest large run): items/s x{large_rate / small_rate:.2f}, "
        f"wall x{large_result['seconds'] / small_result['seconds']:.1f}, "
        f"peak RSS x{max(r['peak_rss_mb'] for _, r in results[large]) / small_result['peak_rss_mb']:.2f}"
    )
    print(
        f"import / floor (same run): {small:,} items {small_result['seconds'] / small_result['floor_seconds']:.2f}x, "
        f"{large:,} items {large_result['seconds'] / large_result['floor_seconds']:.2f}x (slowest run)"
    )
    target = "met" if large_rate >= 20_000 else "NOT met"
    print(f"target >= 20,000 items/s at {large:,} items (slowest run): {target}")


if __name__ == "__main__":
    main()
