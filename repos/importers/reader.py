"""Opening OCL export files and reading them as a stream of JSON values.

An export is ``export.json`` on its own, or inside a gzip-compressed tar (.tgz/.tar.gz) or a zip.
Nothing here reads a whole file into memory: the archive member is decompressed as it is read and
:mod:`repos.importers.scanner` builds one value at a time, none larger than its bounds.

Reading happens in two passes over the file. The first collects the top-level metadata and stops
at the first items array when the file says what it is before its items (every OCL export does);
otherwise it reads on to the end, dropping the items. The second builds the concepts and mappings
one at a time, and picks up the metadata that comes after them: this service's own export (and
every read of a collection version) writes ``references`` after ``concepts`` and ``mappings``, and
a mirror that stopped at the first array lost them. Reading on in the first pass would parse
every item twice; the second pass reads them anyway.
"""

from __future__ import annotations

import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from isal import igzip

from repos.importers.errors import ImportFileError
from repos.importers.scanner import ARRAY, VALUE, ScanLimitError, iter_items

ITEM_ARRAYS = ("concepts", "mappings")
# Metadata the second pass keeps when it follows the item arrays; anything else there is dropped.
TRAILING_KEYS = frozenset({"references"})
MEMBER_NAME = "export.json"

# Decompression and parse errors that mean "this file is damaged", as opposed to our own bugs.
DAMAGED = (EOFError, OSError, zlib.error, tarfile.TarError, zipfile.BadZipFile, ValueError)


def file_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".tgz", ".tar.gz")):
        return "tgz"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(".json"):
        return "json"
    raise ImportFileError(f"{path}: unknown file type (expected .tgz, .tar.gz, .zip or .json)")


@contextmanager
def open_export(path: Path) -> Iterator[IO[bytes]]:
    """The bytes of ``export.json``, decompressed while they are read."""
    kind = file_kind(path)
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file")
    try:
        if kind == "json":
            with open(path, "rb") as stream:
                yield stream
        elif kind == "zip":
            with zipfile.ZipFile(path) as archive, archive.open(_zip_member(path, archive)) as stream:
                yield stream
        else:
            # isal's gzip is several times faster than zlib's. The tar is opened on the decompressed
            # stream in plain "r:" mode: "r|" stream mode reassembles reads by repeated bytes
            # concatenation, which costs far more than the decompression itself.
            with igzip.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r:") as archive:
                yield _tar_member(path, archive)
    except ImportFileError:
        raise
    except DAMAGED as exc:
        raise ImportFileError(f"{path}: damaged or truncated {kind} file ({describe(exc)})") from exc


def _zip_member(path: Path, archive: zipfile.ZipFile) -> str:
    names = archive.namelist()
    if MEMBER_NAME in names:
        return MEMBER_NAME
    json_names = [name for name in names if name.endswith(".json")]
    if len(json_names) == 1:
        return json_names[0]
    raise ImportFileError(f"{path}: the zip holds no {MEMBER_NAME} member (found: {', '.join(names) or 'nothing'})")


def _tar_member(path: Path, archive: tarfile.TarFile) -> IO[bytes]:
    seen = []
    while (member := archive.next()) is not None:
        seen.append(member.name)
        if member.isfile() and Path(member.name).name == MEMBER_NAME:
            stream = archive.extractfile(member)
            if stream is not None:
                return stream
    raise ImportFileError(f"{path}: the archive holds no {MEMBER_NAME} member (found: {', '.join(seen) or 'nothing'})")


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."


def read_metadata(stream: IO[bytes]) -> dict[str, Any]:
    """Top-level keys other than the item arrays.

    Stops at the first item array once ``type`` is known (exporters write the metadata first);
    otherwise reads on to the end, dropping the items, to find the keys that follow them.
    """
    metadata: dict[str, Any] = {}
    for key, index, value in iter_items(stream, ITEM_ARRAYS, values=True):
        if index == VALUE:
            metadata[key] = value
        elif index == ARRAY and "type" in metadata:
            break
    return metadata


def read_file_metadata(path: Path, damaged: str) -> dict[str, Any]:
    """A file's metadata (:func:`read_metadata`), or an :class:`ImportFileError` that names the file
    and says it was refused or, in ``damaged``'s words, where it broke."""
    with open_export(path) as stream:
        try:
            return read_metadata(stream)
        except ScanLimitError as exc:
            raise ImportFileError(f"{path}: refused: {exc}") from exc
        except DAMAGED as exc:
            raise ImportFileError(f"{path}: {damaged} ({describe(exc)})") from exc
