"""output: stdout, --rejects and --stats written unbuffered; a failed write names its output."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from sidecar.errors import OutputError, UsageError
from sidecar.output import Output


def test_a_full_disk_is_an_output_error_naming_the_output() -> None:
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(OutputError) as exc:
            Output.stdout(fd).write(b"x" * 10)
    finally:
        os.close(fd)
    assert str(exc.value) == "stdout: No space left on device" and exc.value.exit_code == 1


def test_a_closed_pipe_stays_a_broken_pipe() -> None:
    read, write = os.pipe()
    os.close(read)
    try:
        with pytest.raises(BrokenPipeError):
            Output.stdout(write).write(b"x")
    finally:
        os.close(write)


def test_everything_is_written_through_partial_writes() -> None:
    read, write = os.pipe()
    data = os.urandom(1 << 20)  # far more than a pipe holds: writes come back short
    got = bytearray()

    def drain() -> None:
        while chunk := os.read(read, 65536):
            got.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    Output.stdout(write).write(data)
    os.close(write)
    reader.join(timeout=10)
    os.close(read)
    assert bytes(got) == data


def test_files(tmp_path: Path) -> None:
    out = Output.open(str(tmp_path / "r.txt"), "--rejects")
    out.write(b"a\n")
    out.close()
    assert (tmp_path / "r.txt").read_bytes() == b"a\n"
    with pytest.raises(UsageError, match=r"^--stats: cannot write '.*': Is a directory$"):
        Output.open(str(tmp_path), "--stats")


def test_write_json_document_writes_one_line_and_never_raises(tmp_path, caplog) -> None:
    from sidecar.output import write_json_document

    write_json_document(str(tmp_path / "s.json"), {"lines_in": 2})
    assert (tmp_path / "s.json").read_text() == '{"lines_in":2}\n'
    write_json_document(str(tmp_path / "no" / "such" / "s.json"), {"x": 1})  # logged, no raise
    assert (tmp_path / "no").exists() is False
