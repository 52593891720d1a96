"""writable: the folders and files `sidecar pipe` writes later are checked at start, leaving
nothing behind. Tests run as root, where permission bits stop nothing: /proc, a path below a
regular file and a device stand in for a read-only disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sidecar.writable import folder_error, replaceable_file_error


def test_a_folder_that_can_be_written_or_made(tmp_path: Path) -> None:
    assert folder_error(str(tmp_path)) is None
    assert folder_error(str(tmp_path / "a" / "b" / "spool")) is None
    assert list(tmp_path.iterdir()) == []  # nothing made, no probe left


@pytest.mark.parametrize(
    "path, says",
    [
        ("/proc/sidecar-spool", "'/proc/sidecar-spool' cannot be made (in '/proc'): "),
        ("/proc/self", "'/proc/self' cannot be written: "),
        ("{tmp}/file/spool", "cannot be made: '{tmp}/file' is not a folder"),
        ("{tmp}/file/a/b", "cannot be made: '{tmp}/file' is not a folder"),
        ("{tmp}/file", "'{tmp}/file' is not a folder"),
        ("/dev/null/spool", "cannot be made: '/dev/null' is not a folder"),
    ],
)
def test_a_folder_that_cannot(tmp_path: Path, path: str, says: str) -> None:
    (tmp_path / "file").write_text("")
    error = folder_error(path.format(tmp=tmp_path))
    assert error is not None and says.format(tmp=tmp_path) in error


def test_a_replaceable_file(tmp_path: Path) -> None:
    assert replaceable_file_error(str(tmp_path / "new.prom")) is None
    (tmp_path / "old.prom").write_text("")
    assert replaceable_file_error(str(tmp_path / "old.prom")) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.prom"]


@pytest.mark.parametrize(
    "path, says",
    [
        ("/dev/full", "exists and is not a regular file"),
        ("{tmp}/fifo", "exists and is not a regular file"),
        ("{tmp}", "is a folder, not a file"),
        ("{tmp}/missing/x.prom", "the folder of '{tmp}/missing/x.prom' does not exist"),
        ("/proc/x.prom", "'/proc/x.prom' cannot be written: "),
    ],
)
def test_not_a_replaceable_file(tmp_path: Path, path: str, says: str) -> None:
    os.mkfifo(tmp_path / "fifo")
    error = replaceable_file_error(path.format(tmp=tmp_path))
    assert error is not None and says.format(tmp=tmp_path) in error
