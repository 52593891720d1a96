"""Where the file follower resumes: one checkpoint per followed file, saved atomically.

A checkpoint names a file by its device and inode and by a fingerprint of its first bytes, and
says up to which offset every line was delivered or spooled (never further: the follower only
moves it on an acknowledgement). The inode says which file it is while it is followed and after a
rename; the fingerprint tells a truncated-and-rewritten file, or an inode reused by a new file,
from the file the offset belongs to (as Vector's checksum fingerprint does).

The fingerprint covers the first `min(size, FINGERPRINT_BYTES)` bytes the file had when it was
taken, and records that length. A file shorter than `FINGERPRINT_BYTES` is fingerprinted on what
it has; the follower takes the fingerprint again as the file grows (checking that the bytes it
already covered are unchanged) until it covers the full length. A file is the same file when it is
at least as long as the fingerprint and its first bytes hash the same: the start of an append-only
log never changes, a rewrite changes it (short of the new lines repeating the old ones byte for
byte, which log lines with a time in them do not). An empty file's fingerprint covers nothing and
matches any file: its offset is 0 anyway.

The file (`follow-checkpoints.json` in the state folder) is written whole each time: a temporary
file in the same folder, fsync, rename over the old one, fsync of the folder. A crash leaves the
old or the new one, never a torn one. It holds paths, inodes and offsets, never log content.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from sidecar.errors import UsageError

log = logging.getLogger(__name__)

FINGERPRINT_BYTES = 1024
FILE_NAME = "follow-checkpoints.json"
VERSION = 1


@dataclass(frozen=True)
class Fingerprint:
    """A hash of a file's first `length` bytes."""

    length: int
    digest: str

    @classmethod
    def of(cls, head: bytes) -> Fingerprint:
        head = head[:FINGERPRINT_BYTES]
        return cls(len(head), hashlib.blake2b(head, digest_size=8).hexdigest())

    def matches(self, head: bytes) -> bool:
        """Whether a file whose first bytes are `head` (up to FINGERPRINT_BYTES of them) is the
        file this fingerprint was taken of."""
        return len(head) >= self.length and Fingerprint.of(head[: self.length]) == self

    @property
    def complete(self) -> bool:
        return self.length >= FINGERPRINT_BYTES


EMPTY = Fingerprint.of(b"")


def read_head(fd: int, size: int | None = None) -> bytes:
    """The first bytes of an open file, up to FINGERPRINT_BYTES (fewer when it is shorter)."""
    want = FINGERPRINT_BYTES if size is None else min(size, FINGERPRINT_BYTES)
    return os.pread(fd, want, 0) if want > 0 else b""


@dataclass(frozen=True)
class Checkpoint:
    """Every line of the file (dev, ino) before `offset` was delivered or spooled. `path` is
    where the file was last followed (a name, for finding it again after a rename while down)."""

    path: str
    dev: int
    ino: int
    fingerprint: Fingerprint
    offset: int

    @property
    def key(self) -> tuple[int, int]:
        return (self.dev, self.ino)

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "dev": self.dev,
            "ino": self.ino,
            "fp_len": self.fingerprint.length,
            "fp": self.fingerprint.digest,
            "offset": self.offset,
        }

    @classmethod
    def from_json(cls, obj: dict[str, object]) -> Checkpoint:
        ints = [obj["dev"], obj["ino"], obj["fp_len"], obj["offset"]]
        if not all(isinstance(v, int) and v >= 0 for v in ints):
            raise ValueError("bad checkpoint numbers")
        if not isinstance(obj["path"], str) or not isinstance(obj["fp"], str):
            raise ValueError("bad checkpoint strings")
        return cls(
            obj["path"],
            obj["dev"],  # type: ignore[arg-type]
            obj["ino"],  # type: ignore[arg-type]
            Fingerprint(obj["fp_len"], obj["fp"]),  # type: ignore[arg-type]
            obj["offset"],  # type: ignore[arg-type]
        )


class CheckpointStore:
    """The checkpoint file of one follower in `state_dir`."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, FILE_NAME)

    def prepare(self) -> None:
        """Make the state folder if missing and prove a file can be written in it; a UsageError
        naming serve.state_dir (--state-dir) when not."""
        try:
            os.makedirs(self.state_dir, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".probe-", dir=self.state_dir)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise UsageError(
                f"serve.state_dir (--state-dir) {self.state_dir!r} cannot be made or written: "
                f"{reason}"
            ) from None

    def load(self) -> list[Checkpoint] | None:
        """The saved checkpoints; None when there is no checkpoint file (a first start). An
        unreadable or damaged file is logged, set aside (`.damaged`) and read as none."""
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning(
                "follow: cannot read checkpoints %s (%s); starting without them",
                self.path,
                exc.strerror,
            )
            return None
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("version") != VERSION:
                raise ValueError("unknown version")
            return [Checkpoint.from_json(item) for item in doc["files"]]
        except (ValueError, KeyError, TypeError):
            log.warning(
                "follow: checkpoint file %s is damaged; set aside as .damaged, "
                "starting without checkpoints",
                self.path,
            )
            with contextlib.suppress(OSError):
                os.replace(self.path, self.path + ".damaged")
            return None

    def save(self, checkpoints: Iterable[Checkpoint]) -> None:
        """Replace the checkpoint file atomically (OSError when the disk refuses)."""
        doc = {"version": VERSION, "files": [c.to_json() for c in checkpoints]}
        data = json.dumps(doc, separators=(",", ":")).encode()
        fd, tmp = tempfile.mkstemp(prefix=".follow-", suffix=".tmp", dir=self.state_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.state_dir)


def _fsync_dir(directory: str) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
