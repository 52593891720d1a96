"""Checks, at start, that the places `sidecar pipe` will write to later can be written.

A spool folder on a read-only disk or under /proc would only fail once a store is down, and a
metrics file path naming a device would be replaced by a regular file (prometheus_client writes
a temporary file and renames it over the path). Both are caught before any input is read.

Each check returns an error text (the caller names the key or flag) or None. The checks leave
nothing behind: a folder that does not exist yet is not made (the spool makes its folder when
first needed); instead a temporary file is made and removed in its nearest existing ancestor,
which works for root too (permission bits do not stop root; a read-only mount or /proc does).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def _nearest_existing(path: Path) -> Path:
    """`path` or its nearest ancestor that exists (lstat: a dangling link counts as existing)."""
    for candidate in (path, *path.parents):
        try:
            candidate.lstat()
        except (FileNotFoundError, NotADirectoryError):  # missing, or below a file
            continue
        except OSError:
            return candidate  # unreadable: let the write probe report it
        return candidate
    return Path(".")


def _probe(folder: Path) -> str | None:
    """Why no file can be made in this existing folder (None: one was made and removed)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".sidecar-probe-", dir=folder)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    os.close(fd)
    os.unlink(name)
    return None


def folder_error(path: str) -> str | None:
    """Why files cannot be written in the folder `path` (made later if missing), or None."""
    p = Path(path)
    found = _nearest_existing(p)
    if not found.is_dir():
        what = (
            "is not a folder" if found == p else f"cannot be made: {str(found)!r} is not a folder"
        )
        return f"{path!r} {what}"
    error = _probe(found)
    made = "written" if found == p else f"made (in {str(found)!r})"
    return None if error is None else f"{path!r} cannot be {made}: {error}"


def replaceable_file_error(path: str) -> str | None:
    """Why `path` cannot be (re)written by write-and-rename, or None: it must be a regular file
    or not exist yet, in a folder that exists and can be written."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        return f"cannot use {path!r}: {exc.strerror}"
    if mode is not None and stat.S_ISDIR(mode):
        return f"{path!r} is a folder, not a file"
    if mode is not None and not stat.S_ISREG(mode):
        return f"{path!r} exists and is not a regular file (it would be replaced by one)"
    parent = Path(path).parent
    if not parent.is_dir():
        return f"the folder of {path!r} does not exist"
    error = _probe(parent)
    return None if error is None else f"{path!r} cannot be written: {error}"
