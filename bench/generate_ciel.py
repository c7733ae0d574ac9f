"""Write a CIEL-like synthetic OCL v2 "Source Version" export, streaming, deterministic for a seed.

    python bench/generate_ciel.py --items 1000000 --out bench/out/CIEL_v-bench.20240101000000.tgz

Each concept has 2-5 names in several locales, a description, extras; about five mappings per
concept, most to external codes (SNOMED CT, ICD-10, LOINC...) with ``to_concept_url`` null, some
to other CIEL concepts. ``--items`` counts concepts plus mappings.
"""

from __future__ import annotations

import argparse
import os
import random
import tarfile
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

OWNER, SOURCE = "CIEL", "CIEL"
SOURCE_URL = f"/orgs/{OWNER}/sources/{SOURCE}/"
VERSION = "v-bench"
MAPPINGS_PER_CONCEPT = 5
LOCALES = ("en", "fr", "es", "sw", "pt", "ht")
NAME_TYPES = ("FULLY_SPECIFIED", "SHORT", None, "INDEX_TERM")
CLASSES = ("Diagnosis", "Symptom", "Test", "Drug", "Procedure", "Finding", "Question", "Misc")
DATATYPES = ("N/A", "Coded", "Numeric", "Text", "Boolean", "Date")
WORDS = (
    "acute chronic fever pain blood serum plasma renal hepatic cardiac pulmonary infection viral bacterial "
    "fracture lesion syndrome disorder deficiency anemia diabetes malaria tuberculosis cough rash nausea "
    "dose tablet injection oral left right upper lower severe mild history family screening test result"
).split()
EXTERNAL = (  # (map type, target source, code shape)
    ("SAME-AS", "SNOMED-CT", "{:09d}"),
    ("NARROWER-THAN", "ICD-10-WHO", "A{:02d}.{:d}"),
    ("SAME-AS", "LOINC", "{:05d}-{:d}"),
    ("BROADER-THAN", "IMO-ProblemIT", "{:07d}"),
)
EPOCH = datetime(2016, 1, 1, tzinfo=UTC)


def stamp(rng: random.Random) -> str:
    return (EPOCH + timedelta(seconds=rng.randrange(0, 5 * 365 * 86400))).isoformat().replace("+00:00", "Z")


def phrase(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize()


def concept(rng: random.Random, number: int, seq: int) -> dict[str, Any]:
    code = str(number)
    names = []
    for index in range(rng.randint(2, 5)):
        names.append(
            {
                "uuid": f"{seq:08x}{index:02x}{rng.getrandbits(88):022x}",
                "name": phrase(rng, rng.randint(1, 5)),
                "external_id": f"{number}{index}BBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
                "type": "ConceptName",
                "locale": LOCALES[0] if index == 0 else rng.choice(LOCALES),
                "locale_preferred": index == 0,
                "name_type": NAME_TYPES[0] if index == 0 else rng.choice(NAME_TYPES),
            }
        )
    created, updated = stamp(rng), stamp(rng)
    created, updated = min(created, updated), max(created, updated)
    url = f"{SOURCE_URL}concepts/{code}/"
    return {
        "type": "Concept",
        "uuid": str(seq),
        "id": code,
        "external_id": f"{number}AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"[:36],
        "concept_class": rng.choice(CLASSES),
        "datatype": rng.choice(DATATYPES),
        "display_name": names[0]["name"],
        "display_locale": "en",
        "names": names,
        "descriptions": [
            {
                "uuid": f"d{seq:031x}",
                "description": phrase(rng, rng.randint(4, 14)),
                "external_id": None,
                "type": "ConceptDescription",
                "locale": "en",
                "locale_preferred": True,
                "description_type": "Definition",
            }
        ],
        "extras": {"hi_normal": rng.randint(1, 500), "units": "mg/dl"} if rng.random() < 0.3 else {},
        "retired": rng.random() < 0.05,
        "source": SOURCE,
        "source_url": SOURCE_URL,
        "owner": OWNER,
        "owner_type": "Organization",
        "owner_url": f"/orgs/{OWNER}/",
        "version": str(seq),
        "created_on": created,
        "updated_on": updated,
        "version_created_on": updated,
        "version_created_by": "admin",
        "update_comment": None,
        "is_latest_version": True,
        "url": url,
        "version_url": f"{url}{seq}/",
        "previous_version_url": None,
    }


def mapping(rng: random.Random, number: int, seq: int, mapping_id: int, concepts: int) -> dict[str, Any]:
    internal = rng.random() < 0.2
    if internal:
        target = rng.randint(1, concepts)
        map_type, to_source, to_code = "Q-AND-A", SOURCE, str(target)
        to_url: str | None = f"{SOURCE_URL}concepts/{target}/"
        to_source_url = SOURCE_URL
    else:
        map_type, to_source, shape = rng.choice(EXTERNAL)
        to_code = shape.format(rng.randint(1, 999_999_99 % 10**5), rng.randint(0, 9))
        to_url, to_source_url = None, f"/orgs/IHTSDO/sources/{to_source}/"
    created = stamp(rng)
    url = f"{SOURCE_URL}mappings/{mapping_id}/"
    return {
        "type": "Mapping",
        "uuid": str(seq),
        "id": str(mapping_id),
        "external_id": f"{rng.getrandbits(128):032x}",
        "retired": False,
        "map_type": map_type,
        "source": SOURCE,
        "owner": OWNER,
        "owner_type": "Organization",
        "from_concept_code": str(number),
        "from_concept_name": None,
        "from_concept_url": f"{SOURCE_URL}concepts/{number}/",
        "to_concept_code": to_code,
        "to_concept_name": None,
        "to_concept_url": to_url,
        "from_source_owner": OWNER,
        "from_source_owner_type": "Organization",
        "from_source_url": SOURCE_URL,
        "from_source_name": SOURCE,
        "to_source_owner": OWNER if internal else "IHTSDO",
        "to_source_owner_type": "Organization",
        "to_source_url": to_source_url,
        "to_source_name": to_source,
        "url": url,
        "version": str(seq),
        "version_url": f"{url}{seq}/",
        "is_latest_version": True,
        "sort_weight": None,
        "extras": {},
        "update_comment": None,
        "created_on": created,
        "updated_on": created,
        "created_by": "admin",
        "updated_by": "admin",
    }


def header() -> dict[str, Any]:
    return {
        "type": "Source Version",
        "uuid": "90001",
        "id": VERSION,
        "short_code": SOURCE,
        "name": SOURCE,
        "full_name": "Columbia International eHealth Laboratory (synthetic)",
        "description": "Synthetic CIEL-like export for benchmarks",
        "source_type": "Dictionary",
        "custom_validation_schema": "OpenMRS",
        "public_access": "View",
        "default_locale": "en",
        "supported_locales": list(LOCALES),
        "website": None,
        "url": SOURCE_URL,
        "owner": OWNER,
        "owner_type": "Organization",
        "owner_url": f"/orgs/{OWNER}/",
        "retired": False,
        "version_url": f"{SOURCE_URL}{VERSION}/",
        "previous_version_url": None,
        "created_on": "2021-01-01T00:00:00Z",
        "updated_on": "2021-01-01T00:00:00Z",
        "created_by": "admin",
        "updated_by": "admin",
        "extras": {},
        "external_id": None,
        "version": VERSION,
        "released": True,
        "source": {"type": "Source", "id": SOURCE, "short_code": SOURCE, "uuid": "90000", "url": SOURCE_URL},
    }


def chunks(items: int, seed: int) -> Iterator[bytes]:
    """The export.json bytes, a few items at a time; concepts first, then mappings."""
    rng = random.Random(seed)
    concepts = max(1, items // (MAPPINGS_PER_CONCEPT + 1))
    mappings = items - concepts
    yield orjson.dumps(header())[:-1] + b',"concepts":['
    for number in range(1, concepts + 1):
        yield (b"," if number > 1 else b"") + orjson.dumps(concept(rng, number, number))
    yield b'],"mappings":['
    # A second generator keeps mapping content independent of how concepts were drawn.
    rng = random.Random(seed + 1)
    for index in range(mappings):
        number = index % concepts + 1
        seq = concepts + index + 1
        yield (b"," if index else b"") + orjson.dumps(mapping(rng, number, seq, index + 1, concepts))
    yield b"]}"


def write_json(stream: IO[bytes], items: int, seed: int) -> None:
    buffer: list[bytes] = []
    size = 0
    for chunk in chunks(items, seed):
        buffer.append(chunk)
        size += len(chunk)
        if size > 1 << 20:
            stream.write(b"".join(buffer))
            buffer, size = [], 0
    stream.write(b"".join(buffer))


def generate(out: Path, items: int, seed: int = 42) -> Path:
    """Write ``out`` (.json, or .tgz holding export.json); returns it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".json":
        with open(out, "wb") as stream:
            write_json(stream, items, seed)
        return out
    # A tar header needs the member's size first: write the JSON to a scratch file, then pack it.
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".json", delete=False) as scratch:
        write_json(scratch, items, seed)
    try:
        partial = out.with_suffix(".partial")
        with tarfile.open(partial, "w:gz", compresslevel=1) as archive:
            info = archive.gettarinfo(scratch.name, arcname="export.json")
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with open(scratch.name, "rb") as source:
                archive.addfile(info, source)
        partial.rename(out)
    finally:
        os.unlink(scratch.name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000, help="concepts + mappings")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True, help=".json or .tgz")
    args = parser.parse_args()
    path = generate(args.out, args.items, args.seed)
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
