"""Export benchmark: produce_archive of a synthetic CIEL-like version into S3, against a floor.

    .venv/bin/python bench/bench_export.py                 # 1,000,000 items, then 100,000
    .venv/bin/python bench/bench_export.py --items 200000 --small 0 --profile /tmp/export.prof

The version lives in its own PostgreSQL database (created here), built with set-based SQL
(generate_series), so building 1 M items takes seconds, not the hours of the ORM path. The S3
side is a moto server on a loopback port. Each export runs in a child process, so its peak RSS
is the export's own. The floor is what the database and gzip alone cost: COPY of the same
columns of the same rows in the same order, through the same ISA-L gzip at the same level.
Both are timed twice and the faster run counts (the peak RSS is the larger of the two).

Targets: >= 100,000 items/s, <= 2x the floor, peak RSS <= 250 MB and flat in the version's size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/ocl_bench_export"
MAPPINGS_PER_CONCEPT = 5


def configure(database_url: str, env: dict[str, str] | None = None) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("EXPORT_ON_VERSION_CREATE", "False")
    os.environ.update(env or {})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocl_export.settings")
    import django

    django.setup()


def ensure_database(database_url: str) -> None:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


# --- the synthetic version ------------------------------------------------------------------

NAME = (
    '{"uuid":"%s","name":"%s","external_id":"%s","type":"ConceptName","locale":"%s",'
    '"locale_preferred":%s,"name_type":%s}'
)
NAME_SQL = NAME.replace("%", "%%")  # psycopg placeholders: a literal % is %%
CONCEPT_SQL = f"""
INSERT INTO repos_conceptversion (
    source_id, mnemonic, uuid, external_id, concept_class, datatype, display_name, display_locale,
    names, descriptions, extras, retired, retire_reason, created_on, updated_on, version_created_on,
    version_created_by, update_comment, is_latest_version, previous_version_uuid, checksum)
SELECT %(source)s, g::text, md5('c' || g), md5('x' || g) || 'AAAAAAAAAAAA',
    (ARRAY['Diagnosis','Symptom','Test','Drug','Question','Finding'])[1 + g %% 6],
    (ARRAY['N/A','Coded','Numeric','Text'])[1 + g %% 4],
    'Concept number ' || g || ' fully specified', 'en',
    '[' || format('{NAME_SQL}', md5('n1' || g), 'Concept number ' || g || ' fully specified', md5('e1' || g), 'en', 'true', '"FULLY_SPECIFIED"')
    || ',' || format('{NAME_SQL}', md5('n2' || g), 'Concept ' || g, md5('e2' || g), 'en', 'false', '"SHORT"')
    || ',' || format('{NAME_SQL}', md5('n3' || g), 'Concept numéro ' || g, md5('e3' || g), 'fr', 'true', '"FULLY_SPECIFIED"')
    || ',' || format('{NAME_SQL}', md5('n4' || g), 'Concepto número ' || g, md5('e4' || g), 'es', 'true', 'null')
    || ',' || format('{NAME_SQL}', md5('n5' || g), 'Dhana ' || g, md5('e5' || g), 'sw', 'false', 'null') || ']',
    '[{{"uuid":"' || md5('d' || g) || '","description":"A description of concept ' || g
        || ' as clinicians use it.","external_id":null,"type":"ConceptDescription","locale":"en",'
        || '"locale_preferred":true,"description_type":"Definition"}}]',
    '{{"hi_absolute":' || (g %% 500) || ',"low_absolute":0,"units":"mg/dL","precise":false}}',
    g %% 50 = 0, CASE WHEN g %% 50 = 0 THEN 'duplicate' END,
    timestamptz '2014-01-01 00:00:00+00' + g * interval '1 second',
    timestamptz '2016-01-01 00:00:00.218+00' + g * interval '1 second',
    timestamptz '2016-01-01 00:00:00.218+00' + g * interval '1 second',
    'admin', 'imported', true, CASE WHEN g %% 3 = 0 THEN md5('p' || g) END, ''
FROM generate_series(1, %(count)s) AS g
"""

MAPPING_SQL = """
INSERT INTO repos_mappingversion (
    source_id, mnemonic, uuid, external_id, retired, retire_reason, map_type,
    from_concept_code, from_concept_name, from_concept_url, to_concept_code, to_concept_name,
    to_concept_url, from_source_owner, from_source_owner_type, from_source_url, from_source_name,
    to_source_owner, to_source_owner_type, to_source_url, to_source_name, sort_weight, extras,
    update_comment, created_on, updated_on, created_by, updated_by, is_latest_version, checksum)
SELECT %(source)s, 'M' || g, md5('m' || g), md5('mx' || g), g %% 97 = 0, NULL,
    (ARRAY['SAME-AS','NARROWER-THAN','BROADER-THAN','Q-AND-A','CONCEPT-SET'])[1 + g %% 5],
    c::text, NULL, %(url)s || 'concepts/' || c || '/',
    CASE WHEN g %% 5 < 3 THEN (100000 + g)::text ELSE ((g * 7) %% %(concepts)s + 1)::text END,
    CASE WHEN g %% 5 < 3 THEN 'External term ' || g END,
    CASE WHEN g %% 5 < 3 THEN NULL ELSE %(url)s || 'concepts/' || ((g * 7) %% %(concepts)s + 1) || '/' END,
    'CIEL', 'Organization', %(url)s, 'CIEL',
    CASE WHEN g %% 5 < 3 THEN 'IHTSDO' ELSE 'CIEL' END, 'Organization',
    CASE WHEN g %% 5 < 3 THEN '/orgs/IHTSDO/sources/SNOMED-CT/' ELSE %(url)s END,
    CASE WHEN g %% 5 < 3 THEN 'SNOMED-CT' ELSE 'CIEL' END,
    CASE WHEN g %% 5 = 4 THEN (g %% 10)::float END, '{}', NULL,
    timestamptz '2014-01-01 00:00:00+00' + g * interval '1 second',
    timestamptz '2016-02-01 00:00:00.5+00' + g * interval '1 second',
    'admin', 'admin', true, ''
FROM generate_series(1, %(count)s) AS g, LATERAL (SELECT (g - 1) / %(per)s + 1 AS c) AS concept
"""


def build_version(items: int) -> int:
    """The id of a released version of ``items`` items (built once, reused by later runs)."""
    from django.core.management import call_command
    from django.db import connection, transaction

    from repos.models import Organization, Repository, RepositoryVersion

    call_command("migrate", verbosity=0)
    org, _ = Organization.objects.get_or_create(mnemonic="CIEL")
    mnemonic = f"CIEL{items}"
    existing = RepositoryVersion.objects.filter(repository__mnemonic=mnemonic, version="v1").first()
    if existing is not None:
        render(existing.pk)
        return existing.pk
    concepts = max(1, items // (1 + MAPPINGS_PER_CONCEPT))
    mappings = items - concepts
    started = time.perf_counter()
    with transaction.atomic():
        source = Repository.objects.create(
            repo_type=Repository.SOURCES, owner_org=org, mnemonic=mnemonic, name="CIEL", supported_locales=["en", "fr"]
        )
        version = RepositoryVersion.objects.create(repository=source, version="v1", released=True)
        with connection.cursor() as cursor:
            cursor.execute(CONCEPT_SQL, {"source": source.pk, "count": concepts})
            params = {"source": source.pk, "count": mappings, "url": source.url, "concepts": concepts}
            cursor.execute(MAPPING_SQL, {**params, "per": MAPPINGS_PER_CONCEPT})
            for table, member, items_table in (
                ("repos_version_concepts", "conceptversion_id", "repos_conceptversion"),
                ("repos_version_mappings", "mappingversion_id", "repos_mappingversion"),
            ):
                cursor.execute(
                    f"INSERT INTO {table} (repositoryversion_id, {member}) "
                    f"SELECT %s, id FROM {items_table} WHERE source_id = %s ORDER BY id",
                    [version.pk, source.pk],
                )
        version.last_updated = version.compute_last_updated()
        version.save(update_fields=["last_updated"])
    print(f"built {items:,} items ({concepts:,} concepts) in {time.perf_counter() - started:.1f}s", flush=True)
    render(version.pk)
    return version.pk


def render(version_id: int) -> None:
    """Store the items' renderings, as the importer does at write time (timed apart: not export cost)."""
    from django.db import connection

    from repos.representation.rendering import render_all_pending

    started = time.perf_counter()
    rendered = render_all_pending()
    if rendered:
        print(f"rendered {rendered:,} items at write time in {time.perf_counter() - started:.1f}s", flush=True)
    with connection.cursor() as cursor:
        # Outside any transaction: sets hint bits and the visibility map now, so the first export
        # does not pay for rewriting every freshly written page.
        cursor.execute("VACUUM ANALYZE")


# --- the export, in a child process ---------------------------------------------------------


def child(version_id: int, key: str, profile: str | None) -> None:
    """Run one export and print its figures as JSON on the last line."""
    from ocl_export.produce import produce_archive
    from repos.models import RepositoryVersion

    version = RepositoryVersion.objects.select_related("repository__owner_org").get(pk=version_id)
    progress = {"items": 0, "at": 0.0, "rss": 0.0}

    def on_progress(done: int) -> None:
        progress["items"] = done
        progress["at"] = time.perf_counter()
        progress["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    started = time.perf_counter()
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        result = profiler.runcall(produce_archive, version, "tgz", key, on_progress)
        profiler.dump_stats(profile)
    else:
        result = produce_archive(version, "tgz", key, on_progress)
    elapsed = time.perf_counter() - started
    figures = {
        "seconds": elapsed,
        "read_seconds": progress["at"] - started,  # database -> JSON, to the last batch
        "items": progress["items"],
        "archive_bytes": result.size,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_read_mb": progress["rss"],  # the peak up to the end of the database read
    }
    print(json.dumps(figures), flush=True)


def run_child(database_url: str, env: dict[str, str], version_id: int, key: str, profile: str | None) -> dict:
    command = [sys.executable, __file__, "--child", str(version_id), "--key", key, "--database", database_url]
    if profile:
        command += ["--profile", profile]
    output = subprocess.run(command, env={**os.environ, **env}, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


# --- the floor ------------------------------------------------------------------------------


def floor(version_id: int, whole_rows: bool = False) -> float:
    """Seconds to COPY the same rows, in order, through the same gzip, output dropped.

    By default only the item content columns (what the JSON is made of): the stricter floor.
    ``whole_rows`` copies every column as stored, the stored renderings included."""
    from django.db import connection
    from isal import isal_zlib

    from foundation.archive import gzip_level
    from repos.representation.items import CONCEPTS, MAPPINGS

    connection.ensure_connection()
    started = time.perf_counter()
    compressor = isal_zlib.compressobj(gzip_level(), isal_zlib.DEFLATED, 31)
    with connection.connection.cursor() as cursor:
        for kind in (CONCEPTS, MAPPINGS):
            columns = "i.*" if whole_rows else ", ".join(f"i.{column}" for column in kind.columns)
            sql = (
                f"COPY (SELECT {columns} FROM {kind.membership} m JOIN {kind.table} i "
                f"ON i.id = m.{kind.member_column} WHERE m.repositoryversion_id = {int(version_id)} "
                f"ORDER BY m.{kind.member_column}) TO STDOUT"
            )
            with cursor.copy(sql) as copy:
                for data in copy:
                    compressor.compress(data)
    compressor.flush()
    return time.perf_counter() - started


# --- the S3 server --------------------------------------------------------------------------


def measure(database_url: str, env: dict[str, str], items: int, profile: str | None) -> dict:
    version_id = build_version(items)
    # Export and floor alike: the best of two runs, so that neither pays alone for a cold cache.
    runs = [
        run_child(database_url, env, version_id, f"bench/CIEL{items}_v1.{int(time.time())}.{run}.tgz", profile)
        for run in range(2)
    ]
    export = min(runs, key=lambda run: run["seconds"])
    export["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs)
    export["all_seconds"] = [round(run["seconds"], 2) for run in runs]
    floor_seconds = min(floor(version_id) for _ in range(2))
    whole_rows_seconds = min(floor(version_id, whole_rows=True) for _ in range(2))
    rate = export["items"] / export["seconds"]
    figures = {
        **export,
        "items_per_s": rate,
        "floor_seconds": floor_seconds,
        "floor_items_per_s": export["items"] / floor_seconds,
        "ratio_to_floor": export["seconds"] / floor_seconds,
        "whole_rows_floor_seconds": whole_rows_seconds,
        "ratio_to_whole_rows_floor": export["seconds"] / whole_rows_seconds,
    }
    print(
        f"{items:>9,} items: export {export['seconds']:6.2f}s (runs: {export['all_seconds']}) = {rate:9,.0f} items/s "
        f"(read {export['read_seconds']:.2f}s, archive+upload {export['seconds'] - export['read_seconds']:.2f}s); "
        f"floor {floor_seconds:5.2f}s = {figures['floor_items_per_s']:9,.0f} items/s; "
        f"ratio {figures['ratio_to_floor']:.2f}x (to the whole stored rows' floor of "
        f"{whole_rows_seconds:.2f}s: {figures['ratio_to_whole_rows_floor']:.2f}x); peak RSS {export['peak_rss_mb']:.0f} MB "
        f"({export['peak_rss_read_mb']:.0f} MB by the end of the read); "
        f"archive {export['archive_bytes'] / 2**20:.0f} MiB",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000, help="a second, smaller size (0: none)")
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--profile", help="write a cProfile of the (large) export here")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        configure(args.database)
        child(args.child, args.key, args.profile)
        return

    ensure_database(args.database)
    from tests.s3server import start_moto

    moto, endpoint = start_moto()
    env = {
        "EXPORT_STORAGE": "s3",
        "AWS_STORAGE_BUCKET_NAME": "bench-exports",
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_S3_REGION_NAME": "us-east-1",
    }
    try:
        configure(args.database, env)
        import boto3

        boto3.client("s3", endpoint_url=endpoint, **{k: v for k, v in (
            ("aws_access_key_id", "testing"), ("aws_secret_access_key", "testing"), ("region_name", "us-east-1"))}
        ).create_bucket(Bucket="bench-exports")  # fmt: skip
        results = [measure(args.database, env, args.items, args.profile)]
        if args.small:
            results.append(measure(args.database, env, args.small, None))
        large = results[0]
        print(
            f"targets: >= 100,000 items/s: {'OK' if large['items_per_s'] >= 100_000 else 'MISSED'}; "
            f"<= 2x floor: {'OK' if large['ratio_to_floor'] <= 2 else 'MISSED'}; "
            f"peak RSS <= 250 MB: {'OK' if max(r['peak_rss_mb'] for r in results) <= 250 else 'MISSED'}"
        )
    finally:
        moto.terminate()
        moto.wait(timeout=10)


if __name__ == "__main__":
    main()
