"""Request benchmark: the hot requests of the API through gunicorn, against a 404 floor.

    .venv/bin/python bench/bench_requests.py                    # 12 s per request, 32 connections
    .venv/bin/python bench/bench_requests.py --duration 5 --rounds 3 --only export-get

What every OpenMRS server, sync script and terminology browser starts with: the export's 303,
item lookups, the versions list. The service runs as an operator runs it (gunicorn with
``deploy/gunicorn.conf.py``) on a PostgreSQL database of its own, created here, holding the CIEL
subset fixture and a completed export of its version. ``wrk`` (a C load generator, Debian's
package: installed with apt-get when missing and run as root) drives each request at 32 keep-alive
connections, in four slices on new connections (:func:`measure` says why). The floor is a JSON 404 through the same stack: Django, the URL resolver, the error
handler, no database. It is measured first and last and its mean is the reference, so each
ratio compares figures taken minutes apart on the same machine.

Each web process keeps answers until PostgreSQL notifies a change (``read_cache``), so under
load a hot request is answered from memory after its first time in each worker: that is what
an operator's service does. ``--read-cache off`` measures every request going to the database
instead (what the first request after a change costs).

The machine is shared, so absolute req/s move from run to run; the ratios to the floor of the
same run move much less. Each request is also made once in this process, its answer not kept,
under Django's CaptureQueriesContext, which gives the queries (and writes) it costs.

Targets: every request >= 0.7x the floor's req/s, p99 <= 50 ms, no errors.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/ocl_bench_requests"
FIXTURE = ROOT / "tests" / "fixtures" / "ocl-v1-CIEL-subset-2015.tgz"
TARGET_RATIO = 0.7
TARGET_P99_MS = 50.0
HEAD_SCRIPT = 'wrk.method = "HEAD"\n'

PREPARE = """
import json
from django.core.management import call_command
from ocl_export.jobs import run_export
from ocl_export.models import Export
from repos.models import ConceptVersion, MappingVersion, RepositoryVersion, HEAD

call_command("import_ocl", {fixture!r}, quiet=True, verbosity=0)
version = RepositoryVersion.objects.exclude(version=HEAD).select_related("repository").get()
if not version.released:
    RepositoryVersion.objects.filter(pk=version.pk).update(released=True)
export = Export.create_pending(version, "tgz", None)
run_export(export.pk)
export.refresh_from_db()
assert export.state == "completed", export.error
concept = ConceptVersion.objects.filter(repo_versions=version).order_by("id").values_list("mnemonic", flat=True)[100]
mapping = MappingVersion.objects.filter(repo_versions=version).order_by("id").values_list("mnemonic", flat=True)[100]
print("PREPARED " + json.dumps({{
    "repo": version.repository.url, "version": version.version, "export": export.pk,
    "concept": concept, "mapping": mapping,
}}))
"""


@dataclass(frozen=True)
class Target:
    name: str
    label: str
    path: str
    status: int
    method: str = "GET"


@dataclass(frozen=True)
class Result:
    target: Target
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_wrk() -> str:
    """wrk from PATH, else Debian's package (as root), else a clear refusal."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: installing Debian's package", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, stdout=subprocess.DEVNULL)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-q"], check=False, stdout=subprocess.DEVNULL)
            subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
    if not found:
        sys.exit("bench_requests needs wrk: apt-get install wrk (Debian/Ubuntu), or put it on PATH")
    return found


def recreate_database(database_url: str) -> None:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def service_env(args: argparse.Namespace, storage_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="ocl_export.settings",
        DATABASE_URL=args.database,
        REDIS_URL=args.redis,
        EXPORT_STORAGE="filesystem",
        EXPORT_STORAGE_DIR=storage_dir,
        EXPORT_ON_VERSION_CREATE="False",
        SECRET_KEY="bench-requests-secret-key",
        PYTHONPATH=str(ROOT),
    )
    return env


def prepare(env: dict[str, str], fixture: Path) -> dict[str, object]:
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    code = PREPARE.format(fixture=str(fixture))
    out = subprocess.run(
        [python, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("PREPARED "))
    return json.loads(line.removeprefix("PREPARED "))


def targets(found: dict[str, object]) -> list[Target]:
    repo = str(found["repo"])
    version = f"{repo}{found['version']}/"
    return [
        Target("floor", "GET `/nothing-here/` (JSON 404: the floor)", "/nothing-here/", 404),
        Target("export-get", "GET `.../:version/export/` (303)", f"{version}export/", 303),
        Target("export-head", "HEAD `.../:version/export/` (303)", f"{version}export/", 303, "HEAD"),
        Target("concept", "GET `.../:version/concepts/:id/`", f"{version}concepts/{found['concept']}/", 200),
        Target("mapping", "GET `.../:version/mappings/:id/`", f"{version}mappings/{found['mapping']}/", 200),
        Target("versions", "GET `.../versions/`", f"{repo}versions/", 200),
        Target("repository", "GET `:owner/sources/:repo/`", repo, 200),
        Target("latest", "GET `.../latest/`", f"{repo}latest/", 200),
        Target("job", "GET `/exports/jobs/:id/`", f"/exports/jobs/{found['export']}/", 200),
    ]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def status_of(base: str, target: Target) -> int:
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(base + target.path, method=target.method)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def start_gunicorn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}"}
    handle = log.open("wb")
    process = subprocess.Popen(
        [gunicorn, "--config", "deploy/gunicorn.conf.py", "ocl_export.wsgi:application"],
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"gunicorn exited at start:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    sys.exit("gunicorn did not listen within 60 s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(wrk: str, base: str, target: Target, duration: float, connections: int, script: Path) -> Result:
    command = [wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", "--timeout", "10s"]
    if target.method == "HEAD":
        command += ["-s", str(script)]
    out = subprocess.run([*command, base + target.path], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    percentiles = {p: _ms(v, u) for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx and target.status < 400:
        errors += int(non_2xx.group(1))
    return Result(target, rps, percentiles.get("50", float("nan")), percentiles.get("99", float("nan")), errors)


def measure(wrk: str, base: str, target: Target, args: argparse.Namespace, script: Path) -> Result:
    """``--slices`` wrk runs of ``duration / slices`` seconds each, each on new connections; the
    medians of their req/s, p50 and p99.

    wrk opens its connections at once and keeps them; gunicorn's workers race to accept them, so
    one run can land all 32 on one worker (one process: one core) and measure half the machine.
    The next run draws again. A median over several draws is what a long run with clients that
    come and go would see, for the floor and every request alike.
    """
    runs = [
        run_wrk(wrk, base, target, args.duration / args.slices, args.connections, script) for _ in range(args.slices)
    ]
    return Result(
        target,
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.errors for r in runs),
    )


def count_queries(env: dict[str, str], all_targets: list[Target]) -> dict[str, tuple[int, int]]:
    """Queries and writes of one request of each target, in-process through Django's test client."""
    os.environ.update(env)
    os.environ["READ_CACHE"] = "False"  # what a request costs when its answer is not kept
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    setup_test_environment()
    client = Client()
    counts: dict[str, tuple[int, int]] = {}
    for target in all_targets:
        client.generic(target.method, target.path)  # warm: first-use queries (content types...)
        with CaptureQueriesContext(connection) as captured:
            response = client.generic(target.method, target.path)
            if hasattr(response, "streaming_content"):
                b"".join(response.streaming_content)
        sqls = [query["sql"].lstrip().upper() for query in captured.captured_queries]
        writes = sum(sql.startswith(("INSERT", "UPDATE", "DELETE")) for sql in sqls)
        counts[target.name] = (len(sqls), writes)
    return counts


def report(results: list[Result], floor_rps: float, queries: dict[str, tuple[int, int]]) -> bool:
    print()
    print("| request | req/s | p50 | p99 | vs floor | queries (not kept) | writes | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    ok = True
    for result in results:
        ratio = result.rps / floor_rps if floor_rps else float("nan")
        n, w = queries.get(result.target.name, (-1, -1))
        print(
            f"| {result.target.label} | {result.rps:.0f} | {result.p50_ms:.1f} ms | {result.p99_ms:.1f} ms "
            f"| {ratio:.2f} | {n} | {w} | {result.errors} |"
        )
        if result.target.name.startswith("floor"):
            continue
        ok &= ratio >= TARGET_RATIO and result.p99_ms <= TARGET_P99_MS and result.errors == 0
    print()
    print(
        f"targets (each >= {TARGET_RATIO}x the floor, p99 <= {TARGET_P99_MS:g} ms, no errors):",
        "met" if ok else "NOT met",
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default=os.environ.get("BENCH_REQUESTS_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--fixture", type=Path, default=FIXTURE)
    parser.add_argument("--duration", type=float, default=12, help="seconds of load per request")
    parser.add_argument("--slices", type=int, default=4, help="wrk runs (new connections) per measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1, help="measure every request this many times; best counts")
    parser.add_argument("--only", action="append", default=[], help="measure only these targets (and the floor)")
    parser.add_argument("--keep-log", type=Path, help="copy gunicorn's log here")
    parser.add_argument(
        "--read-cache", choices=("on", "off"), default="on", help="off: every request reads the database"
    )
    args = parser.parse_args()

    wrk = find_wrk()
    recreate_database(args.database)
    with tempfile.TemporaryDirectory(prefix="bench-requests-") as tmp:
        env = service_env(args, str(Path(tmp) / "exports"))
        env["READ_CACHE"] = "True" if args.read_cache == "on" else "False"
        print("preparing: migrate, import the CIEL subset, export its version", flush=True)
        found = prepare(env, args.fixture)
        all_targets = targets(found)
        queries = count_queries(env, all_targets)
        chosen = [t for t in all_targets[1:] if not args.only or t.name in args.only]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = Path(tmp) / "gunicorn.log"
        script = Path(tmp) / "head.lua"
        script.write_text(HEAD_SCRIPT)
        process = start_gunicorn(env, port, log)
        try:
            for target in all_targets:
                status = status_of(base, target)
                if status != target.status:
                    sys.exit(f"{target.name}: {target.method} {target.path} answered {status}, not {target.status}")
            run_wrk(wrk, base, all_targets[0], 2, args.connections, script)  # warm every worker and thread
            floors: list[Result] = []
            best: dict[str, Result] = {}
            for _ in range(args.rounds):
                floors.append(measure(wrk, base, all_targets[0], args, script))
                for target in chosen:
                    result = measure(wrk, base, target, args, script)
                    print(f"  {target.name}: {result.rps:.0f} req/s, p99 {result.p99_ms:.1f} ms", flush=True)
                    if target.name not in best or result.rps > best[target.name].rps:
                        best[target.name] = result
            floors.append(measure(wrk, base, all_targets[0], args, script))
        finally:
            stop(process)
            if args.keep_log:
                shutil.copy(log, args.keep_log)
        floor_rps = sum(f.rps for f in floors) / len(floors)
        print(f"floor runs: {', '.join(f'{f.rps:.0f}' for f in floors)} req/s (mean {floor_rps:.0f})")
        print(f"read cache: {args.read_cache}")
        floor = Result(all_targets[0], floor_rps, min(f.p50_ms for f in floors), max(f.p99_ms for f in floors), 0)
        ok = report([floor, *[best[t.name] for t in chosen]], floor_rps, queries)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
