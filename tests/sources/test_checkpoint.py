"""sources.checkpoint: fingerprints of first bytes, and checkpoints saved whole or not at all."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.errors import UsageError
from sidecar.sources.checkpoint import (
    FILE_NAME,
    FINGERPRINT_BYTES,
    Checkpoint,
    CheckpointStore,
    Fingerprint,
    read_head,
)


def test_fingerprint_of_a_short_file_matches_it_as_it_grows() -> None:
    fp = Fingerprint.of(b"first line\n")
    assert fp.length == 11 and not fp.complete
    assert fp.matches(b"first line\n")
    assert fp.matches(b"first line\nsecond line\n")
    assert not fp.matches(b"first")  # shorter than what it covered: truncated
    assert not fp.matches(b"other line\nsecond line\n")  # rewritten


def test_fingerprint_covers_at_most_its_length() -> None:
    big = bytes(range(256)) * 8
    fp = Fingerprint.of(big)
    assert fp.length == FINGERPRINT_BYTES and fp.complete
    assert fp.matches(big[:FINGERPRINT_BYTES])
    assert fp.matches(big + b"more")


def test_empty_fingerprint_matches_anything() -> None:
    assert Fingerprint.of(b"").matches(b"")
    assert Fingerprint.of(b"").matches(b"whatever\n")


@given(st.binary(max_size=2048), st.binary(max_size=64), st.binary(min_size=1, max_size=64))
def test_fingerprint_property(head: bytes, more: bytes, change: bytes) -> None:
    """A fingerprint matches every extension of what it was taken of, and no file whose
    covered bytes differ."""
    fp = Fingerprint.of(head)
    assert fp.matches((head + more)[:FINGERPRINT_BYTES])
    covered = head[: fp.length]
    if covered:
        other = bytes(b ^ change[i % len(change)] | 1 for i, b in enumerate(covered))
        if other != covered:
            assert not fp.matches(other)


def test_read_head_reads_at_most_the_fingerprint_length(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 5000)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert len(read_head(fd)) == FINGERPRINT_BYTES
        assert read_head(fd, 10) == b"x" * 10
        assert read_head(fd, 0) == b""
    finally:
        os.close(fd)


def _cp(offset: int, path: str = "/var/log/nginx/access.log") -> Checkpoint:
    return Checkpoint(path, 64769, 1234, Fingerprint.of(b"head\n"), offset)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path / "state"))
    store.prepare()
    assert store.load() is None  # a first start
    odd = os.fsdecode(b"/logs/\xff.log")  # a path that is not UTF-8 survives
    store.save([_cp(10), _cp(20, odd)])
    assert store.load() == [_cp(10), _cp(20, odd)]
    store.save([_cp(30)])
    assert store.load() == [_cp(30)]
    assert sorted(os.listdir(tmp_path / "state")) == [FILE_NAME]  # no temporary file left
    store.save([])
    assert store.load() == []  # a file with no checkpoints is not a first start


def test_damaged_file_is_set_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = CheckpointStore(str(tmp_path))
    (tmp_path / FILE_NAME).write_text('{"version": 1, "files": [{"path": 3}]')
    assert store.load() is None
    assert (tmp_path / (FILE_NAME + ".damaged")).exists()
    assert "damaged" in caplog.text
    (tmp_path / FILE_NAME).write_text(json.dumps({"version": 99, "files": []}))
    assert store.load() is None
    bad = _cp(1).to_json() | {"offset": -1}
    (tmp_path / FILE_NAME).write_text(json.dumps({"version": 1, "files": [bad]}))
    assert store.load() is None


def test_prepare_makes_the_folder(tmp_path: Path) -> None:
    CheckpointStore(str(tmp_path / "a" / "b")).prepare()
    assert (tmp_path / "a" / "b").is_dir()
    assert os.listdir(tmp_path / "a" / "b") == []  # the probe leaves nothing behind


def test_prepare_names_the_key_when_the_folder_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match=r"serve\.state_dir \(--state-dir\).*file/state"):
        CheckpointStore(str(tmp_path / "file" / "state")).prepare()


def test_save_failure_leaves_the_old_file(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path / "state"))
    store.prepare()
    store.save([_cp(5)])
    os.rename(tmp_path / "state", tmp_path / "moved")
    (tmp_path / "state").write_text("not a folder")
    with pytest.raises(OSError):
        store.save([_cp(6)])
    assert CheckpointStore(str(tmp_path / "moved")).load() == [_cp(5)]
