"""A one-pass reader of the item arrays of export.json, one item in memory at a time.

Measured on a 110 MB CIEL-like export (100k items): ijson's push coroutines (needed to read two
arrays in one pass) cost ~5 s, two ijson ``items`` passes ~3.6 s, this scanner ~1.5 s. It walks the
top-level object itself and hands each item to the C scanner of the standard ``json`` module
(``raw_decode``), which builds it straight from a text buffer refilled chunk by chunk.

What one value may cost is bounded, so memory stays flat on any input, a gzip bomb included: a
value (an item, or a top-level value other than the item arrays) longer than ``MAX_VALUE``
characters is refused, and so is one nested deeper than the ``json`` parser's recursion allows
(about a thousand levels). Both raise :class:`ScanLimitError`, which says which limit it was.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import IO, Any

CHUNK_SIZE = 1 << 20
# The largest item (or metadata value) an import takes, in characters of JSON text. A CIEL concept
# is a few kB. An item this large is parsed, normalised, rendered and sent in several copies: an
# import holding one peaks at about 126 MB (ASCII text) to 280 MB (all 4-byte characters), where
# ordinary items keep it near 100 MB. Past it the file is refused, naming the item.
MAX_VALUE = 4 << 20
WHITESPACE = re.compile(r"[ \t\n\r]*")
DECODER = json.JSONDecoder()
# Index markers of iter_items(values=True): a top-level value, the start of an item array.
VALUE = -1
ARRAY = -2


class ScanError(ValueError):
    """The JSON is malformed or ends early."""


class ScanLimitError(ScanError):
    """A value is larger or deeper than an import takes (the file may be valid JSON)."""


TOO_LARGE = f"larger than {MAX_VALUE >> 20} MiB of JSON, the most an import takes for one value"
TOO_DEEP = "nested too deeply (about a thousand levels; no export nests more than a few)"


class Scanner:
    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.text = ""
        self.pos = 0
        self.eof = False
        self.utf8 = codecs.getincrementaldecoder("utf-8")()

    def _more(self) -> bool:
        """Append the next chunk to the unread text; False at the end of the file."""
        if self.eof:
            return False
        chunk = self.stream.read(CHUNK_SIZE)
        if not chunk:
            self.eof = True
        added = self.utf8.decode(chunk, final=self.eof)
        self.text = self.text[self.pos :] + added
        self.pos = 0
        return bool(chunk)

    def peek(self) -> str:
        """The next character that is not whitespace, not consumed ("" at the end)."""
        while True:
            self.pos = WHITESPACE.match(self.text, self.pos).end()
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self._more():
                return ""

    def expect(self, char: str) -> None:
        found = self.peek()
        if found != char:
            raise ScanError(f"expected {char!r}, found {found!r}" if found else f"the file ends where {char!r} belongs")
        self.pos += 1

    def value(self) -> Any:
        if not self.peek():
            raise ScanError("the file ends where a value belongs")
        while True:
            try:
                value, end = DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                # The value may simply continue in the next chunk: read on and try again.
                if len(self.text) - self.pos > MAX_VALUE:
                    raise ScanLimitError(TOO_LARGE) from exc
                if not self._more():
                    raise ScanError(exc.msg if not self.eof else f"the file ends inside a value ({exc.msg})") from exc
                continue
            except RecursionError as exc:
                raise ScanLimitError(TOO_DEEP) from exc
            # A number (or a literal) that touches the end of the text may go on in the next chunk.
            if end == len(self.text) and not self.eof:
                if end - self.pos > MAX_VALUE:
                    raise ScanLimitError(TOO_LARGE)
                if self._more():
                    continue
            self.pos = end
            return value


def iter_items(stream: IO[bytes], arrays: tuple[str, ...], *, values: bool = False) -> Iterator[tuple[str, int, Any]]:
    """(array name, index, item) for every item of the named top-level arrays, in file order.

    Other top-level values are read and dropped (the metadata pass has them); with ``values``
    they come too, as (key, VALUE, value), and each named array announces itself with
    (name, ARRAY, None) before its first item, so a reader may stop there.
    """
    scanner = Scanner(stream)
    scanner.expect("{")
    if scanner.peek() == "}":
        return
    key: Any = None
    index = VALUE
    try:
        while True:
            key, index = None, VALUE
            key = scanner.value()
            if not isinstance(key, str):
                raise ScanError(f"expected a key, found {key!r}")
            scanner.expect(":")
            if key in arrays and scanner.peek() == "[":
                scanner.pos += 1
                if values:
                    yield key, ARRAY, None
                index = 0
                if scanner.peek() == "]":
                    scanner.pos += 1
                else:
                    while True:
                        yield key, index, scanner.value()
                        index += 1
                        found = scanner.peek()
                        scanner.pos += 1
                        if found == "]":
                            break
                        if found != ",":
                            raise ScanError(f"expected ',' or ']' after {key} item #{index - 1}, found {found!r}")
                index = VALUE
            elif values:
                yield key, VALUE, scanner.value()
            else:
                scanner.value()
            found = scanner.peek()
            scanner.pos += 1
            if found == "}":
                break
            if found != ",":
                raise ScanError(f"expected ',' or '}}' after the value of {key!r}, found {found!r}")
    except ScanLimitError as exc:
        if key is None:
            raise ScanLimitError(f"a key is {exc}") from exc
        place = f"{key} item #{index}" if index >= 0 else f"the value of {key!r}"
        raise ScanLimitError(f"{place} is {exc}") from exc
    if scanner.peek():
        raise ScanError("unexpected data after the top-level object")
