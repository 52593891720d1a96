"""`sidecar serve --follow`: tail log files through rotation, resuming from acknowledged offsets.

Polling, like Vector's file source (no inotify): a glob task every `glob_interval_secs` finds the
files, one task per file reads what was appended since its last step (at most `flush_max_bytes`
a step, yielding to the loop between steps, sleeping `poll_interval_secs` when there is nothing),
and a checkpoint task saves every `checkpoint_interval_secs` (see `checkpoint.py`).

What a file is: its device and inode while it is open (reads go on through the open descriptor
after a rename), and a fingerprint of its first bytes plus its size to see a truncation. The
fingerprint is looked at whenever the size or mtime changes: a file shorter than the offset, or
whose first bytes changed (a truncate followed by quick writes past the old offset), is read again
from 0 (copytruncate rotation).

Where reading starts:
- a file found by the first glob at start: at its checkpoint when one names its inode and the
  fingerprint still matches (from 0 when the inode matches but the content does not: truncated
  while we were down); with no checkpoint, `read_from` ("end": after the last whole line; or
  "beginning"), except a file at a path a checkpoint names, which replaced the file we followed
  while we were down (a rotation) and is read from 0;
- a file with a checkpoint whose inode the glob no longer finds (renamed while we were down) is
  looked for by inode in the folder it was in and, when found, read on from its checkpoint and
  treated as rotated;
- every file that appears later (the new file after a rotation, a file that was missing or
  unreadable at start) from 0, unless it is a file we followed before (same inode and fingerprint,
  moved away and back), which goes on from where it was.

Rotation by rename: when the glob no longer finds a followed inode, it is read for
`rotate_wait_secs` more (nginx writes to it until it reopens its logs), then, once read to its end,
a held partial last line is handed on with a newline added and the file is closed.

Lines are handed to `emit(lines, ack)` whole (a partial last line waits for its newline); a line
longer than `max_line_bytes` is skipped while it streams past and counted in `too_long`. The
checkpoint offset moves only over lines whose `ack` came (in file order, whatever order the acks
come in), and never into the middle of a line. At most `serve.handoff_max_bytes` (and at least
`8 * flush_max_bytes`) may wait for acks per file: past that the file is not read until acks
come (backpressure). The lines themselves are not kept here: what waits is bounded by the
hand-off to the sinks, which spools past its bound.

Nothing here logs a line's content: messages name a path and a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Sequence

from sidecar.config import ServeConfig
from sidecar.sinks.throttle import ThrottledLog
from sidecar.sources import Emit
from sidecar.sources.checkpoint import Checkpoint, CheckpointStore, Fingerprint, read_head

log = logging.getLogger(__name__)

#: files waiting for acks may hold at least this many times `flush_max_bytes` before reading pauses
UNACKED_FLUSHES = 8
#: a closed file's last offset is kept this long, to go on if the same file comes back
RETIRED_SECS = 3600.0
RETIRED_MAX = 10_000


class _Batch:
    """Lines handed on (or skipped) that end at file offset `end`."""

    __slots__ = ("done", "end", "size")

    def __init__(self, end: int, size: int, done: bool) -> None:
        self.end = end
        self.size = size
        self.done = done


class _Reader:
    """One followed file (one inode), open until it is rotated away and read to its end."""

    def __init__(
        self, path: str, fd: int, st: os.stat_result, offset: int, fp: Fingerprint, skip: bool
    ) -> None:
        self.path = path  # where the glob last found it
        self.fd = fd
        self.key = (st.st_dev, st.st_ino)
        self.fp = fp
        self.gen = 0  # +1 on each truncation; acks of an older generation move nothing
        self.offset = offset  # read up to here
        self.boundary = offset  # just after the last newline read (or where reading started)
        self.acked = offset  # every line before this is acknowledged (or skipped)
        self.pending = b""  # a partial last line, waiting for its newline
        self.skipping = skip  # inside an over-long line, until its newline
        self.batches: deque[_Batch] = deque()
        self.unacked = 0  # bytes handed on, ack not yet come (every generation)
        self.sig = (st.st_size, st.st_mtime_ns)  # when it changes, look at the fingerprint
        self.gone_at: float | None = None  # when the glob stopped finding it
        self.closed = False
        self.wake = asyncio.Event()

    def advance(self) -> None:
        while self.batches and self.batches[0].done:
            self.acked = self.batches.popleft().end

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.path, self.key[0], self.key[1], self.fp, self.acked)


class FileFollower:
    """Follows the files matching `patterns`, handing whole lines to `emit` (see the module)."""

    name = "follow"  # sidecar.metrics.SOURCES label

    def __init__(
        self, patterns: Sequence[str], serve: ServeConfig, max_line_bytes: int, emit: Emit
    ) -> None:
        self.patterns = tuple(patterns)
        self.serve = serve
        self.max_line_bytes = max_line_bytes
        self.emit = emit
        self.too_long = 0
        self.store = CheckpointStore(serve.state_dir)
        # what may wait for acks: as much as the hand-off to the sinks holds (the sinks cut
        # their batches by size or age: a bound below a batch would wait for its timeout)
        self._max_unacked = max(UNACKED_FLUSHES * serve.flush_max_bytes, serve.handoff_max_bytes)
        self._clock: Callable[[], float] = time.monotonic
        self._throttle = ThrottledLog(log)
        self._readers: dict[tuple[int, int], _Reader] = {}
        self._retired: dict[tuple[int, int], tuple[Checkpoint, float]] = {}
        self._saved: dict[tuple[int, int], Checkpoint] = {}  # loaded, not yet matched
        self._saved_paths: set[str] = set()
        self._unacked = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_saved: list[Checkpoint] | None = None
        self._save_ok = True
        self._started = False
        self._stopped = False

    # --- the interface the daemon uses ----------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Started, not stopped, and the last checkpoint save worked."""
        return self._started and not self._stopped and self._save_ok

    @property
    def unacked_bytes(self) -> int:
        return self._unacked

    async def start(self) -> None:
        """Make the state folder (UsageError naming serve.state_dir when it cannot be made or
        written), load the checkpoints, glob once and start following (tasks on this loop)."""
        self.store.prepare()
        saved = self.store.load()
        if saved is not None:
            self._saved = {c.key: c for c in saved}
            self._saved_paths = {c.path for c in saved}
        self._scan(first=True, had_state=saved is not None)
        self._find_renamed()
        now = self._clock()  # the rest may be unreadable or missing for now: kept a while
        self._retired.update((key, (cp, now)) for key, cp in self._saved.items())
        self._saved = {}
        self._started = True
        self.save()
        self._spawn(self._glob_loop())
        self._spawn(self._checkpoint_loop())

    async def stop(self) -> None:
        """Stop reading and save the acknowledged offsets; idempotent. Acks that come after it
        (the daemon's last flush) still count: call `save()` once they are in."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.save()
        for r in self._readers.values():
            self._close(r)

    def save(self) -> None:
        """Write the acknowledged offsets of every file followed (or still waiting for acks)."""
        checkpoints = [r.checkpoint() for r in self._readers.values()]
        try:
            self.store.save(checkpoints)
        except OSError as exc:
            self._save_ok = False
            self._throttle.error(
                "save",
                "follow: cannot save checkpoints in %s (%s)",
                self.store.state_dir,
                exc.strerror,
            )
            return
        if not self._save_ok:
            log.info("follow: checkpoints saved again in %s", self.store.state_dir)
        self._save_ok = True
        self._last_saved = checkpoints

    # --- tasks ----------------------------------------------------------------------------------

    def _spawn(self, coro: object) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _glob_loop(self) -> None:
        while True:
            await asyncio.sleep(self.serve.glob_interval_secs)
            self._scan()
            self._retire()

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(self.serve.checkpoint_interval_secs)
            if [r.checkpoint() for r in self._readers.values()] != self._last_saved:
                self.save()

    async def _follow(self, r: _Reader) -> None:
        poll = self.serve.poll_interval_secs
        while not r.closed:
            if r.unacked >= self._max_unacked:  # backpressure: wait for acks
                r.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(r.wake.wait(), poll)
                continue
            try:
                progressed = self._step(r)
            except OSError as exc:
                self._throttle.warning(
                    "read:" + r.path,
                    "follow: cannot read %s (%s); will retry",
                    r.path,
                    exc.strerror,
                )
                progressed = False
            except Exception as exc:  # a failing emit must not end the follower
                self._throttle.error(
                    "step:" + r.path,
                    "follow: handing on lines of %s failed (%s); will retry",
                    r.path,
                    type(exc).__name__,
                )
                progressed = False
            await asyncio.sleep(0 if progressed else poll)

    # --- finding files --------------------------------------------------------------------------

    def _paths(self) -> list[str]:
        found: list[str] = []
        for pattern in self.patterns:
            if glob.has_magic(pattern):
                found.extend(sorted(glob.glob(pattern, recursive=True)))
            elif os.path.lexists(pattern):
                found.append(pattern)
            else:
                self._throttle.warning(
                    "missing:" + pattern, "follow: %s does not exist; waiting for it", pattern
                )
        return found

    def _scan(self, first: bool = False, had_state: bool = False) -> None:
        """One glob: open the files not followed yet, mark the followed ones it no longer finds
        as rotated (read for rotate_wait_secs more)."""
        seen: set[tuple[int, int]] = set()
        for path in self._paths():
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                self._throttle.warning(
                    "stat:" + path, "follow: cannot look at %s (%s); will retry", path, exc.strerror
                )
                seen.update(r.key for r in self._readers.values() if r.path == path)
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue  # the same file under a second name
            r = self._readers.get(key)
            if r is None:
                r = self._open(path, first, had_state)
                if r is None:
                    continue
            seen.add(r.key)
            if not r.closed:
                r.path = path
                if r.gone_at is not None:
                    r.gone_at = None
                    log.info("follow: %s is back under a followed name", path)
        now = self._clock()
        for r in self._readers.values():
            if r.key not in seen and r.gone_at is None and not r.closed:
                r.gone_at = now
                log.info(
                    "follow: %s was renamed or removed; reading it for %.3g s more",
                    r.path,
                    self.serve.rotate_wait_secs,
                )

    def _open_fd(self, path: str) -> tuple[int, os.stat_result] | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            self._throttle.warning(
                "open:" + path, "follow: cannot open %s (%s); will retry", path, exc.strerror
            )
            return None
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            return None
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            self._throttle.warning(
                "open:" + path, "follow: %s is not a regular file; will retry", path
            )
            return None
        return fd, st

    def _open(self, path: str, first: bool, had_state: bool) -> _Reader | None:
        opened = self._open_fd(path)
        if opened is None:
            return None
        fd, st = opened
        key = (st.st_dev, st.st_ino)
        if key in self._readers:  # renamed between the stat and the open
            os.close(fd)
            return self._readers[key]
        try:
            head = read_head(fd, st.st_size)
            offset, skip = self._start_at(path, key, fd, st.st_size, head, first, had_state)
        except OSError as exc:
            os.close(fd)
            self._throttle.warning(
                "read:" + path, "follow: cannot read %s (%s); will retry", path, exc.strerror
            )
            return None
        return self._add(path, fd, st, offset, Fingerprint.of(head), skip)

    def _add(
        self, path: str, fd: int, st: os.stat_result, offset: int, fp: Fingerprint, skip: bool
    ) -> _Reader:
        r = _Reader(path, fd, st, offset, fp, skip)
        self._readers[r.key] = r
        log.info("follow: following %s from offset %d", path, offset)
        self._spawn(self._follow(r))
        return r

    def _start_at(
        self,
        path: str,
        key: tuple[int, int],
        fd: int,
        size: int,
        head: bytes,
        first: bool,
        had_state: bool,
    ) -> tuple[int, bool]:
        """Where to start reading a file just opened, and whether inside an over-long line."""
        known = self._saved.pop(key, None)
        retired = self._retired.pop(key, None)
        if known is None and retired is not None:
            known = retired[0]
        if known is not None:
            if known.fingerprint.matches(head) and size >= known.offset:
                return known.offset, False
            return 0, False  # rewritten, or a reused inode: a new file
        if not first or (had_state and path in self._saved_paths):
            return 0, False
        if self.serve.read_from == "beginning" or size == 0:
            return 0, False
        back = min(size, self.max_line_bytes + 1)
        tail = os.pread(fd, back, size - back)
        nl = tail.rfind(b"\n")
        if nl >= 0:
            return size - back + nl + 1, False
        if back == size:
            return 0, False  # one partial line so far: it is the line being written
        return size, True  # inside a line longer than max_line_bytes

    def _find_renamed(self) -> None:
        """At start: look for checkpointed files the glob did not find (renamed while we were
        down) by inode in the folder they were in; follow them on as rotated."""
        by_dir: dict[str, list[Checkpoint]] = {}
        for cp in self._saved.values():
            by_dir.setdefault(os.path.dirname(cp.path) or ".", []).append(cp)
        for folder, cps in by_dir.items():
            wanted = {cp.ino: cp for cp in cps}
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                cp = wanted.get(entry.inode())
                if cp is None or not entry.is_file(follow_symlinks=False):
                    continue
                opened = self._open_fd(entry.path)
                if opened is None:
                    continue
                fd, st = opened
                try:
                    head = read_head(fd, st.st_size)
                except OSError:
                    head = b""
                if (
                    (st.st_dev, st.st_ino) != cp.key
                    or cp.key in self._readers
                    or not cp.fingerprint.matches(head)
                    or st.st_size < cp.offset
                ):
                    os.close(fd)
                    continue
                r = self._add(cp.path, fd, st, cp.offset, Fingerprint.of(head), False)
                r.gone_at = self._clock()
                log.info(
                    "follow: %s was rotated while stopped; reading it on as %s", cp.path, entry.path
                )

    def _retire(self) -> None:
        """Forget closed files whose lines are all acknowledged (keeping their offset a while,
        should the same file come back), and retired offsets past their time."""
        now = self._clock()
        for key in [k for k, r in self._readers.items() if r.closed and not r.batches]:
            r = self._readers.pop(key)
            self._retired[key] = (r.checkpoint(), now)
        for key in [k for k, (_, t) in self._retired.items() if now - t > RETIRED_SECS]:
            del self._retired[key]
        while len(self._retired) > RETIRED_MAX:
            del self._retired[next(iter(self._retired))]

    # --- reading --------------------------------------------------------------------------------

    def _close(self, r: _Reader) -> None:
        if not r.closed:
            r.closed = True
            os.close(r.fd)

    def _step(self, r: _Reader) -> bool:
        """Read and hand on what one file has; whether anything was read."""
        st = os.fstat(r.fd)
        sig = (st.st_size, st.st_mtime_ns)
        if sig != r.sig:
            head = read_head(r.fd, st.st_size)
            if st.st_size < r.offset or not r.fp.matches(head):
                self._truncated(r, head)
            elif len(head) > r.fp.length:
                r.fp = Fingerprint.of(head)
            r.sig = sig
        if st.st_size <= r.offset:
            gone = r.gone_at is not None
            if gone and self._clock() - r.gone_at >= self.serve.rotate_wait_secs:  # type: ignore[operator]
                self._finish(r)
            return False
        data = os.pread(r.fd, min(self.serve.flush_max_bytes, st.st_size - r.offset), r.offset)
        if not data:
            return False
        self._take(r, data)
        return True

    def _truncated(self, r: _Reader, head: bytes) -> None:
        log.info("follow: %s was truncated or rewritten; reading it from its start", r.path)
        r.gen += 1
        r.offset = r.boundary = r.acked = 0
        r.pending, r.skipping = b"", False
        r.batches = deque()
        r.fp = Fingerprint.of(head)

    def _take(self, r: _Reader, data: bytes) -> None:
        """Cut `data` (read at r.offset) into whole lines and hand them on."""
        saved = (r.offset, r.boundary, r.pending, r.skipping, self.too_long)
        base = r.offset
        r.offset += len(data)
        boundary: int | None = None
        if r.skipping:
            nl = data.find(b"\n")
            if nl < 0:
                return
            r.skipping = False
            boundary = base + nl + 1
            data = data[nl + 1 :]
            base = boundary
        cut = data.rfind(b"\n")
        if cut < 0:
            r.pending += data
            lines = b""
        else:
            lines = r.pending + data[: cut + 1]
            r.pending = data[cut + 1 :]
            boundary = base + cut + 1
        if len(r.pending) > self.max_line_bytes:
            self.too_long += 1
            r.pending, r.skipping = b"", True
        if len(lines) > self.max_line_bytes + 1:
            lines = self._drop_long(lines)
        if boundary is None:
            return
        r.boundary = boundary
        try:
            self._hand_on(r, lines, boundary)
        except BaseException:
            r.offset, r.boundary, r.pending, r.skipping, self.too_long = saved
            raise

    def _drop_long(self, lines: bytes) -> bytes:
        parts = lines.split(b"\n")[:-1]
        if max(map(len, parts)) <= self.max_line_bytes:
            return lines
        kept = [p for p in parts if len(p) <= self.max_line_bytes]
        self.too_long += len(parts) - len(kept)
        return b"\n".join(kept) + b"\n" if kept else b""

    def _hand_on(self, r: _Reader, lines: bytes, end: int) -> None:
        """Emit `lines` (ending at file offset `end`; none: a skipped stretch) with its ack."""
        batch = _Batch(end, len(lines), not lines)
        if not lines:
            r.batches.append(batch)
            r.advance()
            return
        gen = r.gen

        def ack() -> None:
            if batch.done:
                return
            batch.done = True
            r.unacked -= batch.size
            self._unacked -= batch.size
            if gen == r.gen:
                r.advance()
            r.wake.set()

        r.batches.append(batch)
        r.unacked += batch.size
        self._unacked += batch.size
        try:
            self.emit(lines, ack)
        except BaseException:
            r.batches.pop()
            r.unacked -= batch.size
            self._unacked -= batch.size
            raise

    def _finish(self, r: _Reader) -> None:
        """A rotated file read to its end after rotate_wait_secs: hand on a held partial last
        line with a newline added, and close it."""
        if r.pending:
            lines, r.pending = r.pending + b"\n", b""
            self._hand_on(r, lines, r.offset)
        elif r.skipping:
            self._hand_on(r, b"", r.offset)
        self._close(r)
        log.info("follow: done with rotated %s", r.path)
