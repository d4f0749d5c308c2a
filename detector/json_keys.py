"""Field names as orjson's own key objects.

orjson keeps the keys it parses (up to 64 bytes) in a cache and gives every record the
same string object for the same key. A dict look-up compares keys by identity first and
only then by value, and in the general-kind dicts orjson makes for objects of more than
five keys the comparison by value goes through `PyObject_RichCompare`: a name looked up
as orjson's object is found by identity. Where the cache has since replaced that entry
(it holds one key per slot), the look-up compares by value as before: the same answer,
at the old cost.
"""

from __future__ import annotations

import orjson


def parsed_key(name: str) -> str:
    """`name` as the string object orjson gives records for that key (equal to it)."""
    (key,) = orjson.loads(orjson.dumps({name: None}))
    assert key == name
    return str(key)
