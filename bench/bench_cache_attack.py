"""The read cache attack of issue #19, measured: what one anonymous client costs each web process.

    .venv/bin/python bench/bench_cache_attack.py                       # this checkout, 60 s a mode
    .venv/bin/python bench/bench_cache_attack.py --root /work/main     # another checkout (before)
    .venv/bin/python bench/bench_cache_attack.py --duration 20 --mode ignored

The service runs as an operator runs it (gunicorn with ``deploy/gunicorn.conf.py``, two workers
of four threads) on a PostgreSQL database of its own holding the CIEL subset fixture, as
``bench/bench_requests.py`` sets it up. ``--threads`` client threads (8), each on a keep-alive
connection, GET one concept-list page of the version (``--limit`` concepts, 186 KB at 100) for
``--duration`` seconds, each request with something new in its query string:

- ``ignored``: a parameter the view does not read (``&cachebuster=N``), the issue's attack;
- ``read``: a new value of one it reads (``&updatedSince=`` a day before every concept, so the same
  page under a key of its own each time).

Each mode runs on a fresh gunicorn. Every 5 s, and at the end, each worker's resident memory is
read from ``/proc`` (psutil); /metrics gives what the fullest worker's store holds. ``--root``
runs another checkout's code (its own ``bench/bench_requests.py`` sets up the database), so a
before/after compares two trees on one machine within minutes.

Measured 2026-12-06 (2 shared cores, 60 s a mode, README "Kept answers" has the table): with the
store bounded by count, 93/94 MB workers grew to 365/486 MB (ignored) and 602/282 MB (read);
bounded at 64 MiB and not keeping ignored parameters, to 117/105 and 163/169 MB.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

HERE = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/ocl_bench_cache_attack"
METRICS_TOKEN = "bench-cache-attack"
SAMPLE_SECONDS = 5.0
MB = 2**20

PREPARE = """
import json
from django.core.management import call_command
from repos.models import RepositoryVersion, HEAD
call_command("import_ocl", {fixture!r}, quiet=True, verbosity=0)
version = RepositoryVersion.objects.exclude(version=HEAD).select_related("repository").get()
print("PREPARED " + json.dumps({{"repo": version.repository.url, "version": version.version}}))
"""


def worker_rss(server: psutil.Process) -> dict[int, float]:
    """Each gunicorn worker's RSS in MB."""
    rss = {}
    for child in server.children():
        try:
            rss[child.pid] = child.memory_info().rss / MB
        except psutil.NoSuchProcess:
            pass
    return rss


def held_mb(base: str) -> str:
    try:
        text = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10).text
    except requests.RequestException:
        return "n/a"
    for line in text.splitlines():
        if line.startswith('ocl_read_cache_held{measure="bytes"}'):
            return f"{float(line.rsplit(' ', 1)[1]) / MB:.1f} MB"
    return "n/a (no such metric)"


def query(mode: str, n: int) -> str:
    if mode == "ignored":
        return f"&cachebuster={n}"
    return f"&updatedSince={datetime.datetime(1900, 1, 1) + datetime.timedelta(seconds=n):%Y-%m-%dT%H:%M:%S}"


def attack(base: str, page: str, mode: str, threads: int, duration: float, server: psutil.Process) -> dict:
    counter = itertools.count()
    done = [0] * threads
    errors = [0] * threads
    stop_at = time.monotonic() + duration

    def client(slot: int) -> None:
        with requests.Session() as session:
            while time.monotonic() < stop_at:
                try:
                    response = session.get(base + page + query(mode, next(counter)), timeout=60)
                    response.content  # noqa: B018 (read the whole answer)
                    if response.status_code != 200:
                        errors[slot] += 1
                except requests.RequestException:
                    errors[slot] += 1
                done[slot] += 1

    before = worker_rss(server)
    peak = dict(before)
    started = time.monotonic()
    pool = [threading.Thread(target=client, args=(slot,), daemon=True) for slot in range(threads)]
    for thread in pool:
        thread.start()
    next_sample = started
    while any(thread.is_alive() for thread in pool):
        next_sample += SAMPLE_SECONDS
        for thread in pool:  # until the next sample is due, or every client is done
            thread.join(timeout=max(0.0, next_sample - time.monotonic()))
        now = worker_rss(server)
        rss = " ".join(f"{value:.0f}" for value in now.values())
        print(f"    {time.monotonic() - started:5.0f} s  {sum(done):6d} requests  worker RSS MB {rss}", flush=True)
        for pid, value in now.items():
            peak[pid] = max(peak.get(pid, 0.0), value)
    elapsed = time.monotonic() - started
    return {
        "requests": sum(done),
        "errors": sum(errors),
        "seconds": elapsed,
        "before": before,
        "after": worker_rss(server),
        "peak": peak,
        "held": held_mb(base),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=HERE, help="the checkout whose code runs (default: this one)")
    parser.add_argument("--database", default=os.environ.get("BENCH_CACHE_ATTACK_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--duration", type=float, default=60, help="seconds of attack per mode")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--limit", type=int, default=100, help="concepts on the page (100: 186 KB)")
    parser.add_argument("--mode", action="append", choices=("ignored", "read"), help="default: both")
    parser.add_argument("--cache-bytes", help="READ_CACHE_BYTES for the service (default: its own default)")
    args = parser.parse_args()

    root = args.root.resolve()
    sys.path.insert(0, str(root))
    from bench import bench_requests as setup  # the checkout's own: its ROOT is where gunicorn runs

    setup.recreate_database(args.database)
    with tempfile.TemporaryDirectory(prefix="bench-cache-attack-") as tmp:
        env = setup.service_env(
            argparse.Namespace(database=args.database, redis=args.redis), str(Path(tmp) / "exports")
        )
        metrics_dir = Path(tmp) / "metrics"
        metrics_dir.mkdir()
        env.update(
            PYTHONPATH=str(root),
            READ_CACHE="True",
            METRICS_TOKEN=METRICS_TOKEN,
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
            WEB_CONCURRENCY="2",
            GUNICORN_THREADS="4",
        )
        if args.cache_bytes:
            env["READ_CACHE_BYTES"] = args.cache_bytes
        print(f"code: {root} ({os.popen(f'git -C {root} log -1 --format=%h').read().strip()})", flush=True)
        print("preparing: migrate, import the CIEL subset", flush=True)
        setup.PREPARE = PREPARE
        found = setup.prepare(env, setup.FIXTURE)
        page = f"{found['repo']}{found['version']}/concepts/?limit={args.limit}"
        results = {}
        for mode in args.mode or ["ignored", "read"]:
            for path in metrics_dir.iterdir():
                path.unlink()
            port = setup.free_port()
            base = f"http://127.0.0.1:{port}"
            process = setup.start_gunicorn(env, port, Path(tmp) / f"gunicorn-{mode}.log")
            try:
                server = psutil.Process(process.pid)
                first = requests.get(base + page, timeout=60)
                assert first.status_code == 200, first.status_code
                for _ in range(20):  # every worker and thread warm, on new connections
                    requests.get(base + page, timeout=60)
                time.sleep(1)
                print(f"  {mode}: GET {page}&... ({len(first.content) / 1000:.0f} KB a page)", flush=True)
                results[mode] = attack(base, page, mode, args.threads, args.duration, server)
            finally:
                setup.stop(process)
        print()
        print("| mode | requests | errors | req/s | worker RSS before (MB) | peak | after | fullest store |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for mode, r in results.items():
            fmt = lambda d: ", ".join(f"{v:.0f}" for v in d.values())  # noqa: E731
            print(
                f"| {mode} | {r['requests']} | {r['errors']} | {r['requests'] / r['seconds']:.0f} | {fmt(r['before'])} "
                f"| {fmt(r['peak'])} | {fmt(r['after'])} | {r['held']} |"
            )


if __name__ == "__main__":
    main()
