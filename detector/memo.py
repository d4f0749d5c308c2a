"""Bounded memos of the hot path.

A stream repeats a few hundred user names, action texts and field values, so what is
worked out for one is remembered. Each memo holds at most a limit of entries; when full
it starts over instead of evicting one, which keeps every store a dict assignment and
is refilled by the stream's working set within a few records.
"""

from __future__ import annotations

from typing import Final, TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: the longest text `remember_text` keeps as a key: a long one seldom repeats, and
#: 4,096 of them would hold much memory
LONGEST_TEXT: Final = 256


def remember(memo: dict[K, V], key: K, value: V, limit: int) -> V:
    """`value`, stored in `memo` under `key`; `memo` is emptied first when it holds
    `limit` entries."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value
    return value


def remember_text(memo: dict[str, V], text: str, value: V, limit: int) -> V:
    """`value`, stored in `memo` under `text` as `remember` does when `text` is at most
    `LONGEST_TEXT` characters long, and not stored otherwise."""
    if len(text) <= LONGEST_TEXT:
        remember(memo, text, value, limit)
    return value
