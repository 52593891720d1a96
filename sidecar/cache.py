"""Caches bounded in bytes, not only in entries: long keys are never cached.

`functools.lru_cache` bounds the number of entries; a cache keyed by input text (user agents,
referrers, paths) then grows with the length of what an attacker sends: 65,536 user agents of
30 KB each are 2 GiB. `bounded(fn, entries, max_key_chars)` caches only keys of at most
`max_key_chars` characters (a key longer than that is computed every time, which costs no more
than the cache miss it would have been), so a cache holds at most about
`entries * max_key_chars` characters of keys, plus values of the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

R = TypeVar("R")

#: the default longest key cached: a long user agent or referrer is ~300 characters
MAX_KEY_CHARS = 1024


def bounded(
    fn: Callable[[str], R], entries: int, max_key_chars: int = MAX_KEY_CHARS
) -> Callable[[str], R]:
    """`fn` with an LRU cache of `entries` entries for keys of at most `max_key_chars`."""
    if entries <= 0:
        return fn
    cached = lru_cache(maxsize=entries)(fn)

    def call(key: str) -> R:
        return cached(key) if len(key) <= max_key_chars else fn(key)

    call.cache_info = cached.cache_info  # type: ignore[attr-defined]
    call.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    call.__wrapped__ = fn  # type: ignore[attr-defined]
    return call
