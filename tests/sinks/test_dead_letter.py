"""dead_letter: refused records appended whole, or not at all."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from sidecar.record import CleanRecord, as_batch
from sidecar.sinks.dead_letter import MESSAGE_CHARS, DeadLetters
from tests.sinks import numbered, numbers


def test_refused_records_are_appended_one_line_each_with_reason_and_message(
    tmp_path: Path,
) -> None:
    letters = DeadLetters(tmp_path / "dl" / "sink.jsonl")  # the folder is made when needed
    letters.write(as_batch(numbered(2)), "data", "refused")
    letters.write(as_batch(numbered(1, start=2)), "schema", "x" * 5000)
    lines = [orjson.loads(x) for x in letters.path.read_bytes().splitlines()]
    assert [(x["reason"], len(x["message"])) for x in lines] == [
        ("data", 7), ("data", 7), ("schema", MESSAGE_CHARS),
    ]  # fmt: skip
    assert numbers([CleanRecord(x["record"]) for x in lines]) == [0, 1, 2]


@pytest.mark.parametrize("where", ["below_a_file", "proc"])
def test_a_folder_that_cannot_be_made_raises_and_leaves_nothing(tmp_path: Path, where: str) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    path = tmp_path / "a-file" / "dl.jsonl" if where == "below_a_file" else Path("/proc/x/dl")
    with pytest.raises(OSError):
        DeadLetters(path).write(as_batch(numbered(2)), "data", "refused")
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


def test_a_write_that_fails_midway_leaves_no_half_line(tmp_path: Path) -> None:
    """A full disk after part of a batch: what was appended is cut off again."""
    letters = DeadLetters(tmp_path / "dl.jsonl")
    letters.write(as_batch(numbered(2)), "data", "refused")
    before = letters.path.read_bytes()
    # /dev/full takes the open and refuses every write with ENOSPC
    with pytest.raises(OSError, match="No space"):
        DeadLetters("/dev/full").write(as_batch(numbered(2)), "data", "refused")
    assert letters.path.read_bytes() == before and before.endswith(b"\n")
