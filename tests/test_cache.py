"""sidecar.cache: caches bounded in bytes as well as entries (long keys are never kept)."""

from __future__ import annotations

from sidecar.cache import bounded


def test_short_keys_are_cached_long_ones_never() -> None:
    calls: list[str] = []

    def f(key: str) -> int:
        calls.append(key)
        return len(key)

    cached = bounded(f, entries=100, max_key_chars=16)
    assert cached("short") == cached("short") == 5
    assert calls == ["short"]
    long_key = "x" * 17
    assert cached(long_key) == cached(long_key) == 17
    assert calls == ["short", long_key, long_key]
    assert cached.cache_info().currsize == 1


def test_memory_is_bounded_by_entries_times_key_length() -> None:
    cached = bounded(len, entries=64, max_key_chars=32)
    for i in range(10_000):
        cached(f"{i:08d}" + "y" * (i % 50))
    info = cached.cache_info()
    assert info.currsize <= 64


def test_no_entries_means_no_cache() -> None:
    assert bounded(len, entries=0) is len
