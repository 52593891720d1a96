"""spool: a bounded, durable, first-in-first-out queue of batches on disk."""

from __future__ import annotations

import os
import re
from collections import deque
from pathlib import Path

import orjson
import pytest

from sidecar.record import FIELDS, CleanRecord
from sidecar.sinks.spool import Spool
from tests.sinks import numbered, numbers, record

NAME = re.compile(r"^(\d{16})-(\d+)\.jsonl$")


def encoded(records: list[CleanRecord]) -> int:
    """The bytes a batch takes in the spool (JSON lines)."""
    return sum(len(orjson.dumps(r)) + 1 for r in records)


def batches(n: int, size: int) -> list[list[CleanRecord]]:
    """`n` batches of `size` numbered records: batch i holds numbers i*size .. i*size+size-1."""
    return [numbered(size, start=i * size) for i in range(n)]


def drain(spool: Spool) -> list[list[int]]:
    out = []
    while (head := spool.peek()) is not None:
        path, records = head
        out.append(numbers(records))
        spool.pop(path)
    return out


def test_push_peek_pop_is_first_in_first_out(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20, "drop_oldest")
    assert spool.peek() is None and len(spool) == 0 and spool.records == 0 and spool.bytes == 0
    bs = batches(3, 4)
    for b in bs:
        assert spool.push(b) == (True, 0)
    assert len(spool) == 3 and spool.records == 12 and spool.bytes == sum(map(encoded, bs))
    # peek leaves the batch in place until pop
    first = spool.peek()
    assert first is not None and spool.peek() == first and len(spool) == 3
    assert drain(spool) == [numbers(b) for b in bs]
    assert spool.peek() is None and len(spool) == 0 and list(tmp_path.iterdir()) == []


def test_interleaved_push_and_pop_keep_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20, "drop_oldest")
    bs = batches(5, 2)
    spool.push(bs[0])
    spool.push(bs[1])
    path, got = spool.peek()  # type: ignore[misc]
    assert numbers(got) == numbers(bs[0])
    spool.pop(path)
    spool.push(bs[2])
    spool.push(bs[3])
    assert drain(spool)[:1] == [numbers(bs[1])]
    spool.push(bs[4])
    assert drain(spool) == [numbers(bs[4])]


def test_a_new_spool_on_the_same_directory_sees_the_batches_in_order(tmp_path: Path) -> None:
    first = Spool(tmp_path, 1 << 20, "drop_oldest")
    bs = batches(4, 3)
    for b in bs[:3]:
        first.push(b)
    path, _ = first.peek()  # type: ignore[misc]
    first.pop(path)  # batch 0 delivered before the "crash"

    again = Spool(tmp_path, 1 << 20, "drop_oldest")
    assert len(again) == 2 and again.records == 6 and again.bytes == encoded(bs[1]) + encoded(bs[2])
    again.push(bs[3])  # continues the sequence after the highest one on disk
    seqs = sorted(int(NAME.match(p.name).group(1)) for p in tmp_path.iterdir())  # type: ignore[union-attr]
    assert seqs == [2, 3, 4]
    assert drain(again) == [numbers(b) for b in bs[1:]]


def test_sequence_numbers_sort_past_ten(tmp_path: Path) -> None:
    """Zero-padded names: batch 10 comes after batch 9 on reopening, not after batch 1."""
    spool = Spool(tmp_path, 1 << 20, "drop_oldest")
    bs = batches(12, 1)
    for b in bs:
        spool.push(b)
    assert drain(Spool(tmp_path, 1 << 20, "drop_oldest")) == [numbers(b) for b in bs]


def test_leftover_tmp_files_from_a_crash_are_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20, "drop_oldest")
    spool.push(numbered(2))
    # a write cut short: half a line under the temporary name the spool uses
    (tmp_path / "0000000000000002-2.tmp").write_bytes(b'{"ts":"2026-11-24T09:0')
    (tmp_path / "notes.txt").write_text("not a batch")  # foreign files are ignored, not deleted
    again = Spool(tmp_path, 1 << 20, "drop_oldest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0000000000000001-2.jsonl", "notes.txt"]
    assert len(again) == 1 and drain(again) == [[0, 1]]


# --- the bound ---------------------------------------------------------------------------------
def test_drop_oldest_evicts_whole_oldest_batches_and_counts_their_records(tmp_path: Path) -> None:
    # two-digit numbers throughout: every record encodes to the same size
    bs = [
        numbered(2, start=10),
        numbered(3, start=20),
        numbered(2, start=30),
        numbered(5, start=40),
    ]
    room = encoded(bs[0]) + encoded(bs[1]) + encoded(bs[2])  # exactly the first three
    spool = Spool(tmp_path, room, "drop_oldest")
    for b in bs[:3]:
        assert spool.push(b) == (True, 0)
    assert spool.bytes == room  # a batch that fills the bound exactly is taken
    # the fourth batch needs the room of the two oldest (2 + 3 records): both go, whole
    assert spool.push(bs[3]) == (True, 5)
    assert spool.bytes <= room
    assert drain(spool) == [numbers(bs[2]), numbers(bs[3])]


def test_drop_newest_refuses_the_new_batch_and_keeps_the_old(tmp_path: Path) -> None:
    bs = batches(3, 4)
    spool = Spool(tmp_path, encoded(bs[0]) + encoded(bs[1]), "drop_newest")
    assert spool.push(bs[0]) == (True, 0)
    assert spool.push(bs[1]) == (True, 0)
    assert spool.push(bs[2]) == (False, 4)  # refused: its 4 records are the ones dropped
    assert len(list(tmp_path.iterdir())) == 2
    assert drain(spool) == [numbers(bs[0]), numbers(bs[1])]


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_a_batch_larger_than_the_whole_bound_is_dropped_and_counted(
    tmp_path: Path, policy: str
) -> None:
    small = numbered(1)
    big = numbered(10, start=100)
    # bigger than the bound on its own: dropped whole, all 10 records counted
    alone = Spool(tmp_path / "alone", encoded(big) - 1, policy)
    assert alone.push(big) == (False, 10)
    assert len(alone) == 0 and not list((tmp_path / "alone").glob("*"))  # nothing written
    # and nothing older is evicted for a batch that could never fit
    tiny = Spool(tmp_path / "tiny", encoded(small), policy)
    assert tiny.push(small) == (True, 0)
    assert tiny.push(big) == (False, 10)
    assert drain(tiny) == [[0]]


@pytest.mark.parametrize(
    ("policy", "pushes", "expect_results", "expect_left"),
    [
        # bound = 2 batches of 2 records; every batch is 2 records
        ("drop_oldest", 3, [(True, 0), (True, 0), (True, 2)], [[2, 3], [4, 5]]),
        (
            "drop_oldest",
            5,
            [(True, 0), (True, 0), (True, 2), (True, 2), (True, 2)],
            [[6, 7], [8, 9]],
        ),
        ("drop_newest", 3, [(True, 0), (True, 0), (False, 2)], [[0, 1], [2, 3]]),
        (
            "drop_newest",
            5,
            [(True, 0), (True, 0), (False, 2), (False, 2), (False, 2)],
            [[0, 1], [2, 3]],
        ),
    ],
)
def test_policy_table(
    tmp_path: Path, policy: str, pushes: int, expect_results: list, expect_left: list
) -> None:
    bs = batches(pushes, 2)
    spool = Spool(tmp_path, encoded(bs[0]) + encoded(bs[1]), policy)
    assert [spool.push(b) for b in bs] == expect_results
    dropped = sum(n for _, n in expect_results)
    assert spool.records + dropped == 2 * pushes  # every record is either kept or counted
    assert drain(spool) == expect_left


# --- what the files hold ------------------------------------------------------------------------
def test_files_hold_only_the_clean_records_as_json_lines(tmp_path: Path) -> None:
    odd = record(
        path="/v/ü ber/\"quoted\"\\seg.ts", query="a=1&b=2", request_time=None, country=None,
        user_agent="Mozilla/5.0 (X11; Linux x86_64)\u2028", status=599, bytes=2**63 - 1,
    )  # fmt: skip
    batch = [*numbered(3), odd]
    spool = Spool(tmp_path, 1 << 20, "drop_oldest")
    spool.push(batch)
    [path] = list(tmp_path.iterdir())
    assert NAME.match(path.name) and path.name.endswith(
        "-4.jsonl"
    )  # the record count is in the name
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 5  # one line per record, each ending in "\n"
    parsed = [CleanRecord(orjson.loads(line)) for line in lines[:-1]]
    assert parsed == batch
    assert all(list(r) == list(FIELDS) for r in parsed)  # the schema's keys, in order, nothing else
    _, peeked = spool.peek()  # type: ignore[misc]
    assert peeked.records() == batch and all(type(r) is CleanRecord for r in peeked)


# --- a disk that refuses ------------------------------------------------------------------------
def unusable(tmp_path: Path, kind: str) -> Path:
    """A folder no file can be made in, even by root: under /proc, or below a regular file."""
    if kind == "proc":
        return Path(f"/proc/sidecar-test-{os.getpid()}")
    (tmp_path / "a-file").write_bytes(b"")
    return tmp_path / "a-file" / "spool"


@pytest.mark.parametrize("kind", ["proc", "below_a_file"])
def test_a_push_the_disk_refuses_raises_and_changes_nothing(tmp_path: Path, kind: str) -> None:
    spool = Spool(unusable(tmp_path, kind), 1 << 20, "drop_oldest")
    with pytest.raises(OSError):
        spool.push(numbered(3))
    assert len(spool) == 0 and spool.records == 0 and spool.bytes == 0
    if kind == "below_a_file":
        assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


def test_a_failed_push_evicts_nothing_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    bs = batches(3, 2)
    spool = Spool(tmp_path / "s", encoded(bs[0]) + encoded(bs[1]), "drop_oldest")
    spool.push(bs[0])
    spool.push(bs[1])  # full: the next push would evict the oldest
    (tmp_path / "s").rename(tmp_path / "moved")
    (tmp_path / "s").write_bytes(b"")  # the folder is gone, a file in its place
    with pytest.raises(OSError):
        spool.push(bs[2])
    # before: the oldest batch was evicted first, then the write failed - two batches gone
    assert len(spool) == 2 and spool.records == 4
    assert sorted(p.suffix for p in (tmp_path / "moved").iterdir()) == [".jsonl", ".jsonl"]


def test_records_and_bytes_are_running_totals(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20, "drop_oldest")
    bs = batches(50, 2)
    for b in bs:
        spool.push(b)
    spool._files = Unwalkable(spool._files)  # type: ignore[assignment]
    # before: every call summed all files: replaying a long spool was quadratic
    assert spool.records == 100 and spool.bytes == sum(map(encoded, bs))


class Unwalkable(deque):
    def __iter__(self):  # type: ignore[override]
        raise AssertionError("walked the whole spool")


def test_a_write_that_fails_midway_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A full disk once the temporary file is open (ENOSPC at the write or the fsync)."""
    spool = Spool(tmp_path, 1 << 20, "drop_oldest")
    (tmp_path / "0000000000000001-3.tmp").symlink_to("/dev/full")  # the next push's temp name
    with pytest.raises(OSError, match="No space"):
        spool.push(numbered(3))
    assert list(tmp_path.iterdir()) == [] and len(spool) == 0  # before: the .tmp was left
    assert spool.push(numbered(3)) == (True, 0) and drain(spool) == [[0, 1, 2]]
