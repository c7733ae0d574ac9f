"""OCL's checksums of concepts, mappings and versions, with OCL's own code (``ocldev.checksum``).

A client that holds an item's JSON can check it against the server's figure with nothing but
``ocldev``: ``Checksum("concept", item, "standard").generate()``. That only holds if the figure
is computed from exactly the JSON served, so it is: the item's stored rendering, parsed back
(the importer computes both checksums when it renders a row, :func:`item_checksums`), never the
file it was imported from. ``ocldev`` reads only its own fields (names, extras, codes...), so the
keys this service adds or orders differently do not matter; what it sees is what a client sees.

A version's checksums combine its items' the way oclapi2 combines a listing page's into its
``X-OCL-API-STANDARD-CHECKSUM`` header (:func:`combined`): equal checksums, equal content.
oclapi2's own version ``checksums`` digest only the version's metadata fields; ours say whether
two versions hold the same items, which is what a mirror needs to know.

The cost is ``ocldev``'s Python: about 230 us for a CIEL concept's two checksums and 60 us for
a mapping's, more than parsing and rendering the item. That is why each row's are computed once,
when it is written, and why a re-import that reuses unchanged rows computes none for them.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from ocldev.checksum import Checksum

STANDARD = "standard"
SMART = "smart"
# ocldev's resource names for the item lists of a version
RESOURCES = {"concepts": "concept", "mappings": "mapping"}


def item_checksums(kind_key: str, text: bytes | str) -> tuple[str, str]:
    """``(standard, smart)`` of one item from its JSON text as served (``kind_key``: concepts or mappings)."""
    item = orjson.loads(text)
    resource = RESOURCES[kind_key]
    return Checksum(resource, item, STANDARD).generate(), Checksum(resource, item, SMART).generate()


def combined(values: Iterable[str | None]) -> str | None:
    """One checksum for many, as oclapi2 combines a page of items: none gives None, one is itself,
    more go through ocldev (which sorts them, so the order of the items does not matter)."""
    present = [value for value in values if value]
    if len(present) > 1:
        return Checksum(None, present).generate()
    return present[0] if present else None


def as_dict(standard: str | None, smart: str | None) -> dict[str, str | None]:
    """The one JSON shape of checksums, as OCL writes it."""
    return {STANDARD: standard, SMART: smart}
