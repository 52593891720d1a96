"""sources.files: inputs as newline-aligned chunks, gzip and bzip2 found by their magic bytes."""

from __future__ import annotations

import bz2
import gzip
import io
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.errors import UsageError
from sidecar.sources.files import CHUNK_BYTES, Chunks, check_inputs, open_input, open_inputs
from tests.conftest import MATOMO_LOGS

LINES = b"".join(b"192.0.2.%d - - line %05d\n" % (i % 256, i) for i in range(3000))


def _chunks(data: bytes, max_line_bytes: int = 100, chunk_bytes: int = CHUNK_BYTES) -> Chunks:
    return Chunks([io.BytesIO(data)], max_line_bytes, chunk_bytes)


# --- compression by magic bytes -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name, compress",
    [
        ("plain.log", lambda b: b),
        ("plain.gz", lambda b: b),  # a .gz name on plain text: read as it is
        ("plain.bz2", lambda b: b),
        ("packed.log", gzip.compress),  # gzip whatever the name
        ("packed", gzip.compress),
        ("packed.bz2", gzip.compress),
        ("packed.txt", bz2.compress),  # bzip2 whatever the name
        ("packed.gz", bz2.compress),
    ],
)
def test_compression_is_found_by_magic_bytes(tmp_path: Path, name: str, compress) -> None:
    path = tmp_path / name
    path.write_bytes(compress(LINES))
    with open_input(str(path)) as stream:
        assert stream.read() == LINES


@pytest.mark.parametrize(
    "data",
    [
        b"",  # empty file
        b"B",  # shorter than any magic
        b"BZ not bzip2\n",  # "BZ" without the "h"
        b"\x1f not gzip\n",
    ],
)
def test_short_and_look_alike_inputs_are_plain(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(data)
    with open_input(str(path)) as stream:
        assert stream.read() == data


def test_concatenated_gzip_members(tmp_path: Path) -> None:
    path = tmp_path / "rotated.gz"
    path.write_bytes(gzip.compress(LINES[:1000]) + gzip.compress(LINES[1000:]))
    assert b"".join(Chunks([open_input(str(path))], 100, 512)) == LINES


def test_stdin_is_decompressed_too(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = io.TextIOWrapper(io.BufferedReader(io.BytesIO(gzip.compress(LINES))))
    monkeypatch.setattr(sys, "stdin", fake)
    assert open_input("-").read() == LINES


@pytest.mark.parametrize(
    "name, first",
    [
        ("common.log", b"1.2.3.4 - theuser [10/Feb/2012:16:42:07 -0500]"),
        ("common.log.gz", b"1.2.3.5 - admin [10/Feb/2012:16:42:07 -0700]"),
        ("common.log.bz2", b"1.2.3.7 - theboss [19/Feb/2012:16:42:07 -0700]"),
    ],
)
def test_matomo_compressed_samples(name: str, first: bytes) -> None:
    c = Chunks([open_input(str(MATOMO_LOGS / name))], 65536)
    out = b"".join(c)
    assert out.startswith(first) and out.endswith(b"\n") and out.count(b"\n") == 1
    assert c.warnings == []


# --- missing inputs ------------------------------------------------------------------------------


def test_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.log")
    with pytest.raises(UsageError, match="not found") as exc:
        open_input(missing)
    assert exc.value.exit_code == 2
    with pytest.raises(UsageError, match="not found"):
        check_inputs(["-", missing])


def test_directory_input_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory"):
        open_input(str(tmp_path))


def test_check_inputs_passes_readable_files(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"x\n")
    check_inputs([str(path), "-"])  # stdin is not opened


# --- chunks --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, chunk_bytes, chunks",
    [
        (b"a\nbb\nccc\n", 2, [b"a\n", b"bb\n", b"ccc\n"]),
        (b"a\nbb\nccc\n", 4, [b"a\n", b"bb\n", b"ccc\n"]),
        (b"a\nbb\nccc\n", 100, [b"a\nbb\nccc\n"]),
        (b"a\nbb\nccc", 2, [b"a\n", b"bb\n", b"ccc\n"]),  # final line without newline: kept
        (b"a\nbb\nccc", 100, [b"a\nbb\n", b"ccc\n"]),
        (b"\n\n", 4, [b"\n\n"]),  # empty lines are lines (the pipeline counts them)
        (b"", 4, []),
    ],
)
def test_chunks_are_newline_aligned(data: bytes, chunk_bytes: int, chunks: list[bytes]) -> None:
    c = _chunks(data, chunk_bytes=chunk_bytes)
    assert list(c) == chunks
    assert c.too_long == 0


@given(
    st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    st.integers(1, 64),
    st.booleans(),
)
def test_chunks_keep_every_short_line(lines: list[bytes], chunk_bytes: int, final_nl: bool) -> None:
    data = b"\n".join(lines) + (b"\n" if final_nl and lines else b"")
    c = _chunks(data, max_line_bytes=30, chunk_bytes=chunk_bytes)
    out = list(c)
    assert all(chunk.endswith(b"\n") for chunk in out)
    expected = data + (b"\n" if data and not data.endswith(b"\n") else b"")
    assert b"".join(out) == expected
    assert c.too_long == 0


@pytest.mark.parametrize("chunk_bytes", [1, 3, 7, 10, 64, CHUNK_BYTES])
def test_long_lines_are_skipped_and_counted(chunk_bytes: int) -> None:
    """A line over max_line_bytes never comes out whole; the lines around it do."""
    data = b"first\n" + b"x" * 50 + b"\nmiddle\n" + b"y" * 200 + b"\nlast\n"
    c = _chunks(data, max_line_bytes=20, chunk_bytes=chunk_bytes)
    lines = b"".join(c).split(b"\n")[:-1]
    long_lines = [ln for ln in lines if len(ln) > 20]
    # either Chunks skipped a long line while it streamed past (counted here), or it came in
    # whole inside one read and goes on to the pipeline (which counts it as too_long)
    assert c.too_long + len(long_lines) == 2
    assert [ln for ln in lines if len(ln) <= 20] == [b"first", b"middle", b"last"]


@pytest.mark.parametrize("chunk_bytes", [1, 3, 7])
def test_long_lines_across_chunk_boundaries(chunk_bytes: int) -> None:
    """No line longer than max_line_bytes + chunk_bytes is ever held or handed on."""
    data = b"a\n" + b"x" * 50 + b"\nb\n" + b"y" * 21 + b"\n" + b"z" * 40
    c = _chunks(data, max_line_bytes=20, chunk_bytes=chunk_bytes)
    lines = b"".join(c).split(b"\n")[:-1]
    assert [ln for ln in lines if len(ln) <= 20] == [b"a", b"b"]
    long_lines = [ln for ln in lines if len(ln) > 20]
    assert all(len(ln) <= 20 + chunk_bytes for ln in long_lines)  # the 21-byte one, maybe
    assert c.too_long + len(long_lines) == 3  # the last one has no newline and is counted too


def test_a_line_longer_than_a_whole_read_is_never_handed_on() -> None:
    c = _chunks(b"a\n" + b"x" * 50 + b"\nb\n", max_line_bytes=20, chunk_bytes=1)
    assert b"".join(c) == b"a\nb\n"
    assert c.too_long == 1


@pytest.mark.parametrize(
    "data, too_long",
    [
        (b"x" * 20 + b"\n", 0),  # exactly max_line_bytes: kept
        (b"x" * 21 + b"\n", 1),
        (b"x" * 21, 1),  # no final newline
        (b"x" * 20, 0),
    ],
)
def test_the_limit_is_inclusive(data: bytes, too_long: int) -> None:
    c = _chunks(data, max_line_bytes=20, chunk_bytes=1)
    assert (list(c) == []) == bool(too_long)
    assert c.too_long == too_long


def test_several_streams_in_order() -> None:
    c = Chunks([io.BytesIO(b"a\nb"), io.BytesIO(b"c\n"), io.BytesIO(b"")], 100, 2)
    assert b"".join(c) == b"a\nb\nc\n"  # the first stream's last line is closed on its own


# --- damaged compressed input ---------------------------------------------------------------------


def _truncated_gz(tmp_path: Path) -> Path:
    data = gzip.compress(LINES)
    path = tmp_path / "cut.log.gz"
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_bz2(tmp_path: Path) -> Path:
    data = bz2.compress(LINES)
    path = tmp_path / "cut.bz2"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("chunk_bytes", [512, 4096])
def test_truncated_gzip_warns_and_keeps_what_was_read(tmp_path: Path, chunk_bytes: int) -> None:
    path = _truncated_gz(tmp_path)
    c = Chunks([open_input(str(path))], 100, chunk_bytes)
    out = b"".join(c)
    assert len(c.warnings) == 1
    assert str(path) in c.warnings[0] and "ends early or is corrupt" in c.warnings[0]
    assert LINES.startswith(out.rpartition(b"\n")[0].rpartition(b"\n")[0])
    assert out.count(b"\n") > 500


def test_truncated_gzip_keeps_lines_with_the_default_chunk(tmp_path: Path) -> None:
    c = Chunks([open_input(str(_truncated_gz(tmp_path)))], 100)
    assert b"".join(c).count(b"\n") > 500


def test_truncated_bzip2_warns(tmp_path: Path) -> None:
    path = _truncated_bz2(tmp_path)
    c = Chunks([open_input(str(path))], 100, 512)
    out = b"".join(c)
    assert len(c.warnings) == 1 and "ends early or is corrupt" in c.warnings[0]
    assert LINES.startswith(out.rpartition(b"\n")[0].rpartition(b"\n")[0])


def test_truncated_bzip2_warning_names_the_file(tmp_path: Path) -> None:
    path = _truncated_bz2(tmp_path)
    c = Chunks(open_inputs([str(path)]), 100, 512)
    list(c)
    assert str(path) in c.warnings[0]


def test_corrupt_bzip2_warns(tmp_path: Path) -> None:
    data = bz2.compress(LINES)
    path = tmp_path / "bad.bz2"
    path.write_bytes(data[:100] + b"\0" * 100 + data[200:])
    c = Chunks([open_input(str(path))], 100, 512)
    list(c)
    assert len(c.warnings) == 1


def test_corrupt_gzip_warns_not_crashes(tmp_path: Path) -> None:
    data = gzip.compress(LINES)
    path = tmp_path / "bad.gz"
    path.write_bytes(data[:10] + b"\0" * 50 + data[60:])
    c = Chunks([open_input(str(path))], 100, 512)
    list(c)
    assert len(c.warnings) == 1


def test_damaged_stream_does_not_stop_the_next_one(tmp_path: Path) -> None:
    path = _truncated_gz(tmp_path)
    c = Chunks([open_input(str(path)), io.BytesIO(b"after\n")], 100, 512)
    out = b"".join(c)
    assert out.endswith(b"\nafter\n")
    assert len(c.warnings) == 1
