"""A bounded on-disk spool of batches of clean records, first in, first out.

Each batch is one file, `<sequence>-<records>.jsonl`, written to a temporary name, fsynced and
renamed, so a crash leaves whole batches or none: `kill -9` loses nothing already spooled, and
the next start replays it. Files hold clean records only (JSON lines of the schema).
When a batch would not fit in `max_bytes`, the policy decides: `drop_oldest` evicts the oldest
batches, `drop_newest` refuses the new one. Every dropped record is counted and reported.
A push the disk refuses (read-only, full, a folder that cannot be made) raises OSError and
changes nothing: no temporary file is left and no older batch is evicted for it.
Sizes and record counts are kept as running totals: replaying a long spool stays linear.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from sidecar.record import CleanBatch, CleanRecord, as_batch

_NAME = re.compile(r"^(\d{16})-(\d+)\.jsonl$")


class Spool:
    def __init__(self, directory: str | os.PathLike[str], max_bytes: int, policy: str) -> None:
        self.dir = Path(directory)  # made on the first push: an idle spool leaves no trace
        self.max_bytes = max_bytes
        self.policy = policy
        self._lock = threading.Lock()
        self._files: deque[tuple[Path, int, int]] = deque()  # (path, records, bytes)
        self._records = 0
        self._bytes = 0
        for tmp in self.dir.glob("*.tmp"):  # a write cut short by a crash: never acknowledged
            with contextlib.suppress(OSError):  # a read-only spool still replays
                tmp.unlink()
        for path in sorted(self.dir.iterdir()) if self.dir.is_dir() else ():
            m = _NAME.match(path.name)
            if m:
                self._append(path, int(m.group(2)), path.stat().st_size)
        self._next = int(_NAME.match(self._files[-1][0].name).group(1)) + 1 if self._files else 1  # type: ignore[union-attr]

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def records(self) -> int:
        return self._records

    def __len__(self) -> int:
        return len(self._files)

    def push(self, batch: CleanBatch | Sequence[CleanRecord]) -> tuple[bool, int]:
        """Store a batch durably: (stored, records dropped to keep the bound, old or new).
        Raises OSError, having changed nothing, when the disk does not take it."""
        batch = as_batch(batch)
        data = batch.data
        with self._lock:
            if len(data) > self.max_bytes or (
                self.policy == "drop_newest" and self._bytes + len(data) > self.max_bytes
            ):
                return False, batch.count
            final = self.dir / f"{self._next:016d}-{batch.count}.jsonl"
            self._write(final, data)
            self._next += 1
            dropped = 0  # evicted only once the new batch is safe: a failed push evicts nothing
            while self._files and self._bytes + len(data) > self.max_bytes:
                path, n, _ = self._popleft()
                with contextlib.suppress(OSError):  # left behind: replayed again, never lost
                    path.unlink(missing_ok=True)
                dropped += n
            self._append(final, batch.count, len(data))
        return True, dropped

    def _write(self, final: Path, data: bytes) -> None:
        """`data` in `final`, fsynced, through a temporary name; on any failure neither file
        is left behind and the OSError goes up."""
        tmp = final.with_suffix(".tmp")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
            _fsync_dir(self.dir)
        except BaseException:
            for path in (tmp, final):
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            raise

    def _append(self, path: Path, records: int, size: int) -> None:
        self._files.append((path, records, size))
        self._records += records
        self._bytes += size

    def _popleft(self) -> tuple[Path, int, int]:
        path, records, size = self._files.popleft()
        self._records -= records
        self._bytes -= size
        return path, records, size

    def peek(self) -> tuple[Path, CleanBatch] | None:
        """The oldest batch, left in place until `pop`."""
        with self._lock:
            if not self._files:
                return None
            path, count, _ = self._files[0]
        return path, CleanBatch(path.read_bytes(), count)

    def pop(self, path: Path) -> None:
        """Forget a batch once the store has confirmed it. Raises OSError when its file cannot
        be removed; the batch is forgotten all the same (the next start may send it again)."""
        with self._lock:
            if self._files and self._files[0][0] == path:
                self._popleft()
        path.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def adopt(old: Path, new: Path) -> int:
    """Move the batches of a spool folder under a former name (`old`) into `new`, so an upgrade
    or a renamed sink replays them; the number of batches moved. When `new` does not exist yet
    the folder is renamed whole (order kept); else the old batches are queued after the new."""
    if not old.is_dir() or old == new:
        return 0
    batches = sorted(p for p in old.iterdir() if _NAME.match(p.name))
    if not new.exists():
        os.rename(old, new)
        return len(batches)
    taken = sorted(int(m.group(1)) for p in new.iterdir() if (m := _NAME.match(p.name)))
    seq = taken[-1] + 1 if taken else 1
    for path in batches:
        records = _NAME.match(path.name).group(2)  # type: ignore[union-attr]
        os.rename(path, new / f"{seq:016d}-{records}.jsonl")
        seq += 1
    _fsync_dir(new)
    with contextlib.suppress(OSError):
        old.rmdir()
    return len(batches)
