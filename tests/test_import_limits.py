"""What one import may cost is bounded: a hostile file is refused with a clear error, in flat memory.

A gzip bomb is cheap to make: gzip members concatenate, so one compressed MiB of ``[`` repeated
3,072 times is a 3 MB ``.tgz`` holding 3 GiB. ``import_ocl`` runs as an operator runs it, in a
child process whose peak RSS is measured, and must end with exit code 1 and a message naming the
limit, having written nothing.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest
from django.db import connection

from repos.importers import ImportFileError, import_file
from repos.importers.scanner import MAX_VALUE
from repos.models import Repository

ROOT = Path(__file__).resolve().parent.parent
HEAD = b'{"type": "Source", "id": "BOMB", "owner": "O", "owner_type": "Organization", "concepts": ['
MIB = 1 << 20
# Far above anything the import may hold; a bomb that were read whole would pass it in a second.
RSS_LIMIT_MB = 400

# The child reports its own exit code and its import's peak RSS: a wrapper process whose only
# child is manage.py, so no other process of the test session counts.
MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(done.stdout)
sys.stderr.write(done.stderr)
print(f"PEAK_RSS_KB={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
sys.exit(done.returncode)
"""


def gzip_member(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def bomb(path: Path, head: bytes, filler: bytes, mib: int) -> Path:
    """A .tgz whose export.json is ``head`` then ``mib`` MiB of ``filler``, never decompressed here."""
    member = gzip_member(filler * (MIB // len(filler)))
    with open(path, "wb") as out:
        out.write(gzip_member(tar_header("export.json", len(head) + mib * MIB) + head))
        for _ in range(mib):
            out.write(member)
    return path


def import_ocl(path: Path) -> tuple[int, str, float]:
    """Exit code, output and peak RSS (MB) of ``manage.py import_ocl PATH`` against the test database."""
    settings = connection.settings_dict
    url = f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "ocl_export.settings"}
    command = [sys.executable, "-c", MEASURE, sys.executable, "manage.py", "import_ocl", "--quiet", str(path)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    peak_kb = int(output.rsplit("PEAK_RSS_KB=", 1)[1].split()[0])
    return done.returncode, output, peak_kb / 1024


@pytest.mark.django_db(transaction=True)
def test_a_gzip_bomb_of_brackets_is_refused_in_flat_memory(tmp_path: Path) -> None:
    path = bomb(tmp_path / "bomb.tgz", HEAD, b"[", 3072)
    assert path.stat().st_size < 4 * MIB
    code, output, peak_mb = import_ocl(path)
    assert code == 1, output
    assert "bomb.tgz: refused: concepts item #0 is nested too deeply" in output
    assert "Traceback" not in output
    assert peak_mb < RSS_LIMIT_MB
    assert not Repository.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_item_larger_than_the_limit_is_refused_in_flat_memory(tmp_path: Path) -> None:
    head = HEAD + b'{"id": "1", "concept_class": "Misc", "datatype": "N/A", "names": [], "extras": {"x": "'
    path = bomb(tmp_path / "big.tgz", head, b"a", 64)
    code, output, peak_mb = import_ocl(path)
    assert code == 1, output
    assert f"big.tgz: refused: concepts item #0 is larger than {MAX_VALUE >> 20} MiB of JSON" in output
    assert peak_mb < RSS_LIMIT_MB
    assert not Repository.objects.exists()


def plain_json(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "export.json"
    path.write_text(text)
    return path


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"type": "Source", "extras": ' + "[" * 5000 + "]" * 5000 + "}", "the value of 'extras' is nested too deeply"),
        (HEAD.decode() + '{"a": ' * 3000, "concepts item #0 is nested too deeply"),
        ('{"type": "Source", "notes": "' + "n" * (MAX_VALUE + 2 * MIB) + '"}', "the value of 'notes' is larger than"),
        ('{"type": "Source", "count": 0.' + "9" * (MAX_VALUE + 2 * MIB) + "}", "the value of 'count' is larger than"),
    ],
    ids=["deep-metadata", "deep-item", "large-metadata", "long-number"],
)
def test_values_past_the_limits_are_refused_naming_where(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ImportFileError, match=f"export.json: refused: {message}"):
        import_file(plain_json(tmp_path, text))


@pytest.mark.django_db
def test_an_item_just_under_the_size_limit_is_imported(tmp_path: Path) -> None:
    item = io.StringIO()
    item.write('{"id": "1", "concept_class": "Misc", "datatype": "N/A", "names": [], "extras": {"x": "')
    item.write("a" * (MAX_VALUE - 4 * 1024))
    item.write('"}}')
    text = '{"type": "Source", "id": "BIG", "owner": "O", "owner_type": "Organization", "concepts": ['
    summary = import_file(plain_json(tmp_path, text + item.getvalue() + "]}"), version="v1")
    assert summary.concepts == 1
