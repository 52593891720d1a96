"""jsonl: clean records appended as JSON lines, the file rotated by size, nine old files kept."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from sidecar.config import SinkConfig
from sidecar.record import FIELDS, CleanRecord
from sidecar.sinks.base import SinkUnavailable
from sidecar.sinks.jsonl import KEEP_ROTATED, JsonlSink
from tests.sinks import numbered, numbers, record


def sink_at(path: Path, **config: object) -> JsonlSink:
    return JsonlSink(SinkConfig(url=f"jsonl:{path}", **config))  # type: ignore[arg-type]


def read(path: Path) -> list[CleanRecord]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n")  # whole lines only
    return [CleanRecord(orjson.loads(line)) for line in data.splitlines()]


def size(records: list[CleanRecord]) -> int:
    return sum(len(orjson.dumps(r)) + 1 for r in records)


def test_batches_are_appended_as_json_lines_that_parse_back(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "out.jsonl"  # missing directories are made
    sink = sink_at(path)
    odd = record(
        path='/ü/"q"\\x', country=None, request_time=None, user_agent="a\nb\u2028c", bytes=2**64 - 1
    )
    sink.write(numbered(3))
    sink.write([odd])
    # no close needed: each batch is on disk when write returns
    got = read(path)
    assert got == [*numbered(3), odd]
    assert all(list(r) == list(FIELDS) for r in got)
    assert path.read_bytes().count(b"\n") == 4  # a newline inside a value is escaped
    sink.close()
    sink_at(path).write(numbered(1, start=3))  # a new sink appends, never truncates
    assert numbers(read(path)) == [0, 1, 2, 2**64 - 1, 3]


def test_rotation_keeps_at_most_nine_old_files_and_loses_nothing_in_them(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    recs = numbered(45, start=1000)  # four-digit numbers: equal sizes
    per_file = 3
    sink = sink_at(path, max_file_bytes=size(recs[:per_file]))
    for r in recs:
        sink.write([r])
    rotated = sorted(p.name for p in tmp_path.iterdir() if p.name != "out.jsonl")
    assert rotated == [f"out.jsonl.{n}" for n in range(1, KEEP_ROTATED + 1)]
    assert KEEP_ROTATED == 9
    # oldest to newest: out.jsonl.9 ... out.jsonl.1, out.jsonl; together the last records, in order
    files = [tmp_path / f"out.jsonl.{n}" for n in range(KEEP_ROTATED, 0, -1)] + [path]
    kept = [r for f in files for r in read(f)]
    assert kept == recs[-len(kept) :]
    assert len(kept) > KEEP_ROTATED * per_file  # nine full files plus the current one
    for f in files:
        assert f.stat().st_size <= size(recs[:per_file])


@pytest.mark.parametrize(
    ("existing", "batch", "rotates"),
    [
        (0, 10, False),  # an empty file takes a batch larger than the limit whole
        (2, 1, False),  # fits exactly
        (3, 1, True),  # would pass the limit: the file is rotated first
        (1, 5, True),
    ],
)
def test_rotation_happens_before_a_batch_that_would_pass_the_limit(
    tmp_path: Path, existing: int, batch: int, rotates: bool
) -> None:
    path = tmp_path / "out.jsonl"
    recs = numbered(existing + batch, start=100)
    sink = sink_at(path, max_file_bytes=size(recs[:3]))  # room for exactly three records
    if existing:
        sink.write(recs[:existing])
    sink.write(recs[existing:])
    assert (tmp_path / "out.jsonl.1").exists() == rotates
    if rotates:
        assert read(tmp_path / "out.jsonl.1") == recs[:existing]
        assert read(path) == recs[existing:]
    else:
        assert read(path) == recs


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (
            lambda d: (d / "file").write_text("x") and d / "file" / "out.jsonl",
            "the parent is a file",
        ),
        (lambda d: (d / "dir.jsonl").mkdir() or d / "dir.jsonl", "the path is a directory"),
        (lambda d: Path("/proc/sidecar-test/out.jsonl"), "the parent cannot be made"),
    ],
)
def test_an_unwritable_path_is_unavailable(tmp_path: Path, make, what: str) -> None:
    sink = sink_at(make(tmp_path))
    with pytest.raises(SinkUnavailable, match=r"^jsonl: "):
        sink.write([record()])
