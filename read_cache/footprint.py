"""What a kept entry costs in memory: the bytes of the objects it alone holds.

The read cache is bounded in bytes (``read_cache.store``), so each entry must be charged what
keeping it really costs, not the length of its body: an answer's headers, its key, the route
match kept for metrics, a model row kept by a view (with the related rows cached on it) all cost
memory too. ``sys.getsizeof`` of each object reachable from the entry, counted once, is that
cost; what the entry merely points at and every other entry shares (functions, classes, modules,
the URL patterns a match refers to) is not its own and is not counted.

``tests/test_read_cache_store.py`` holds the charge of whole answers against what ``tracemalloc``
sees allocated for them: 1.35x for a 200-byte body, 1.25x for 2 KB, 1.01x for a 186 KB page.
The charge errs high, never low: a string every entry shares but the walk cannot tell apart (a
route's name, a header name) is counted in each entry.
"""

from __future__ import annotations

import sys
from functools import partial
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType

from django.urls.resolvers import URLPattern, URLResolver

# Objects an entry refers to but shares with the whole process.
SHARED = (type, ModuleType, FunctionType, MethodType, BuiltinFunctionType, URLPattern, URLResolver)
LEAVES = (str, bytes, bytearray, memoryview, int, float, complex, bool)

# The store's own cost of one entry besides the key and the value: its slot in the OrderedDict's
# table and its node in the order list, and the (time, value, charge) tuple with its float and
# int. Measured on CPython 3.11 with tracemalloc: 183-210 bytes an entry for 1,000-100,000
# entries (the table grows in steps).
BOOKKEEPING = 210


def footprint(*objects: object) -> int:
    """The bytes the given objects and everything they alone reach take, each object once."""
    seen: set[int] = set()
    total = 0
    stack = list(objects)
    while stack:
        obj = stack.pop()
        if obj is None or isinstance(obj, SHARED) or id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, LEAVES):
            continue
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (tuple, list, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, partial):
            stack.extend(obj.args)
            stack.append(obj.keywords)
        attributes = getattr(obj, "__dict__", None)
        if attributes is not None:
            stack.append(attributes)
        for cls in type(obj).__mro__:
            slots = cls.__dict__.get("__slots__", ())
            for name in (slots,) if isinstance(slots, str) else slots:
                if name not in ("__dict__", "__weakref__"):
                    stack.append(getattr(obj, name, None))
    return total
