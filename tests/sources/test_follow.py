"""sources.follow: real files in tmp_path, a real asyncio loop, real renames and truncations.

Every test waits for a condition with a deadline loop; intervals are made short so each test
takes a fraction of a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.config import ServeConfig
from sidecar.errors import UsageError
from sidecar.sources.checkpoint import FILE_NAME
from sidecar.sources.follow import FileFollower
from tests.conftest import make_config

FAST = {
    "poll_interval_secs": 0.005,
    "glob_interval_secs": 0.01,
    "rotate_wait_secs": 0.1,
    "checkpoint_interval_secs": 0.02,
    "flush_max_bytes": 1024,
}


def serve(tmp_path: Path, **keys: Any) -> ServeConfig:
    return make_config(serve={**FAST, "state_dir": str(tmp_path / "state"), **keys}).serve


class Sink:
    """The daemon's side: collects lines; acks soon on the loop, or holds them."""

    def __init__(self, ack: bool = True) -> None:
        self.ack = ack
        self.lines: list[bytes] = []
        self.held: list[Callable[[], None]] = []
        self.emits: list[bytes] = []

    def emit(self, lines: bytes, ack: Callable[[], None]) -> None:
        assert lines.endswith(b"\n")
        self.emits.append(lines)
        self.lines.extend(lines.splitlines(keepends=True))
        if self.ack:
            asyncio.get_running_loop().call_soon(ack)
        else:
            self.held.append(ack)

    def ack_all(self) -> None:
        held, self.held = self.held, []
        for ack in held:
            ack()


async def until(cond: Callable[[], bool], what: str = "condition", secs: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + secs
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def lines(tag: str, n: int, start: int = 0) -> list[bytes]:
    return [b"%s %06d 192.0.2.7 GET /v.mp4\n" % (tag.encode(), i) for i in range(start, start + n)]


def append(path: Path, data: list[bytes] | bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data if isinstance(data, bytes) else b"".join(data))


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())  # type: ignore[arg-type]


def saved_offsets(tmp_path: Path) -> list[int]:
    doc = json.loads((tmp_path / "state" / FILE_NAME).read_bytes())
    return [f["offset"] for f in doc["files"]]


# --- where reading starts -----------------------------------------------------------------------


def test_read_from_end_skips_what_is_there_and_reads_what_comes(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    append(log, [*lines("old", 5), b"being wri"])  # the last line is being written
    sink = Sink()

    async def main() -> None:
        f = FileFollower([str(log)], serve(tmp_path), 4096, sink.emit)
        await f.start()
        assert f.ready
        append(log, b"tten\n")
        append(log, lines("new", 3))
        await until(lambda: len(sink.lines) == 4, "new lines")
        await f.stop()
        assert not f.ready

    run(main)
    assert sink.lines == [b"being written\n", *lines("new", 3)]


def test_read_from_beginning_reads_everything(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    append(log, lines("old", 50))
    sink = Sink()

    async def main() -> None:
        f = FileFollower([str(log)], serve(tmp_path, read_from="beginning"), 4096, sink.emit)
        await f.start()
        await until(lambda: len(sink.lines) == 50)
        append(log, lines("new", 2))
        await until(lambda: len(sink.lines) == 52)
        await f.stop()
        await f.stop()  # idempotent

    run(main)
    assert sink.lines == lines("old", 50) + lines("new", 2)
    assert max(map(len, sink.emits)) <= 1024  # at most flush_max_bytes read per emit


def test_a_file_that_appears_after_start_is_read_whole(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    sink = Sink()

    async def main() -> None:
        f = FileFollower([str(log)], serve(tmp_path), 4096, sink.emit)
        await f.start()
        await asyncio.sleep(0.03)
        append(log, lines("a", 7))
        await until(lambda: len(sink.lines) == 7)
        await f.stop()

    run(main)
    assert sink.lines == lines("a", 7)


def test_glob_picks_up_new_files(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    first = tmp_path / "logs" / "one.log"
    append(first, lines("one-old", 3))
    sink = Sink()

    async def main() -> None:
        f = FileFollower([str(tmp_path / "logs" / "*.log")], serve(tmp_path), 4096, sink.emit)
        await f.start()
        append(tmp_path / "logs" / "two.log", lines("two", 4))
        append(tmp_path / "logs" / "ignored.txt", lines("txt", 4))
        append(first, lines("one", 2))
        await until(lambda: len(sink.lines) == 6)
        await asyncio.sleep(0.05)
        await f.stop()

    run(main)
    assert sorted(sink.lines) == sorted(lines("two", 4) + lines("one", 2))


# --- rotation -----------------------------------------------------------------------------------


def test_rotation_by_rename_loses_and_repeats_nothing(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    append(log, lines("before", 20))
    sink = Sink()

    async def main() -> None:
        cfg = serve(tmp_path, read_from="beginning", rotate_wait_secs=0.3)
        f = FileFollower([str(log)], cfg, 4096, sink.emit)
        await f.start()
        await until(lambda: len(sink.lines) == 20)
        old = open(log, "ab", buffering=0)  # noqa: SIM115 - nginx's, kept across the rename
        os.rename(log, tmp_path / "access.log.1")
        append(log, lines("new", 5))  # the new file, before nginx reopens
        await asyncio.sleep(0.05)  # the glob has seen the rename
        old.write(b"".join(lines("late", 4)) + b"partial without newline")  # within rotate_wait
        old.close()
        await until(lambda: len(sink.lines) == 30, "late lines and the held partial line")
        append(log, lines("new", 3, start=5))
        await until(lambda: len(sink.lines) == 33)
        await f.stop()

    run(main)
    got = sink.lines
    assert sorted(got) == sorted(
        lines("before", 20) + lines("late", 4) + [b"partial without newline\n"] + lines("new", 8)
    )
    old_order = [x for x in got if not x.startswith(b"new")]
    assert old_order == lines("before", 20) + lines("late", 4) + [b"partial without newline\n"]
    assert [x for x in got if x.startswith(b"new")] == lines("new", 8)


def test_copytruncate_loses_and_repeats_nothing(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    sink = Sink()

    async def main() -> None:
        f = FileFollower([str(log)], serve(tmp_path), 4096, sink.emit)
        await f.start()
        append(log, lines("a", 30))
        await until(lambda: len(sink.lines) == 30)
        shutil.copy(log, tmp_path / "access.log.1")
        os.truncate(log, 0)
        append(log, lines("b", 2))  # fewer bytes than the offset: seen by the size
        await until(lambda: len(sink.lines) == 32)
        # a truncate followed at once by more bytes than the old offset: seen by the fingerprint
        # (no await in between, so the follower cannot look in the middle)
        os.truncate(log, 0)
        append(log, lines("c", 40))
        await until(lambda: len(sink.lines) == 72)
        await f.stop()

    run(main)
    assert sink.lines == lines("a", 30) + lines("b", 2) + lines("c", 40)


def test_late_acks_of_lines_before_a_truncation_move_nothing(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    sink = Sink(ack=False)

    async def main() -> None:
        f = FileFollower([str(log)], serve(tmp_path), 4096, sink.emit)
        await f.start()
        append(log, lines("a", 30))
        await until(lambda: len(sink.lines) == 30)
        os.truncate(log, 0)
        append(log, lines("b", 2))
        await until(lambda: len(sink.lines) == 32)
        old, new = sink.held[:-1], sink.held[-1]
        for ack in old:
            ack()
        f.save()
        assert saved_offsets(tmp_path) == [0]  # the new content is not acknowledged yet
        new()
        f.save()
        assert saved_offsets(tmp_path) == [log.stat().st_size]
        assert f.unacked_bytes == 0
        await f.stop()

    run(main)
    assert sink.lines == lines("a", 30) + lines("b", 2)


# --- checkpoints and restarts -------------------------------------------------------------------


def test_restart_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    append(log, lines("x", 10))
    cfg = serve(tmp_path, read_from="beginning")
    first, second = Sink(), Sink()

    async def one() -> None:
        f = FileFollower([str(log)], cfg, 4096, first.emit)
        await f.start()
        await until(lambda: len(first.lines) == 10)
        await until(lambda: f.unacked_bytes == 0)
        await f.stop()

    async def two() -> None:
        f = FileFollower([str(log)], cfg, 4096, second.emit)
        await f.start()
        await until(lambda: len(second.lines) == 3)
        await asyncio.sleep(0.05)
        await f.stop()

    run(one)
    assert saved_offsets(tmp_path) == [log.stat().st_size]
    append(log, lines("x", 3, start=10))
    run(two)
    assert first.lines == lines("x", 10) and second.lines == lines("x", 3, start=10)


def test_a_file_rewritten_while_stopped_is_read_from_its_start(tmp_path: Path) -> None:
    """The inode is the same, the size is past the offset, but the first bytes differ: the
    fingerprint (taken on the 310 bytes the file had, less than its full length) tells."""
    log = tmp_path / "access.log"
    append(log, lines("x", 10))
    cfg = serve(tmp_path, read_from="beginning")
    first, second = Sink(), Sink()

    async def follow(sink: Sink, n: int) -> None:
        f = FileFollower([str(log)], cfg, 4096, sink.emit)
        await f.start()
        await until(lambda: len(sink.lines) == n)
        await until(lambda: f.unacked_bytes == 0)
        await f.stop()

    run(lambda: follow(first, 10))
    with open(log, "r+b") as fh:  # copytruncate while down, then more lines than before
        fh.truncate(0)
        fh.write(b"".join(lines("y", 20)))
    run(lambda: follow(second, 20))
    assert second.lines == lines("y", 20)


def test_unacknowledged_lines_come_again_after_a_restart(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    cfg = serve(tmp_path)
    first, second = Sink(ack=False), Sink()

    async def one() -> None:
        f = FileFollower([str(log)], cfg, 4096, first.emit)
        await f.start()
        append(log, lines("acked", 4))
        await until(lambda: len(first.lines) == 4)
        first.ack_all()
        append(log, lines("unacked", 5))
        await until(lambda: len(first.lines) == 9)
        assert f.unacked_bytes == sum(map(len, lines("unacked", 5)))
        await f.stop()
        assert saved_offsets(tmp_path) == [sum(map(len, lines("acked", 4)))]

    async def two() -> None:
        f = FileFollower([str(log)], cfg, 4096, second.emit)
        await f.start()
        await until(lambda: len(second.lines) == 5)
        await f.stop()

    run(one)
    run(two)
    assert second.lines == lines("unacked", 5)


def test_kill_9_neither_skips_nor_repeats_acknowledged_lines(tmp_path: Path) -> None:
    """The first follower is abandoned without stop (its loop ends, its tasks are cancelled
    and nothing saves): the second resumes from the last periodic checkpoint."""
    log = tmp_path / "access.log"
    cfg = serve(tmp_path, read_from="beginning")
    append(log, lines("x", 40))
    first, second = Sink(), Sink()

    async def one() -> None:
        f = FileFollower([str(log)], cfg, 4096, first.emit)
        await f.start()
        await until(lambda: len(first.lines) == 40)
        size = log.stat().st_size
        await until(lambda: saved_offsets(tmp_path) == [size], "a periodic checkpoint")
        first.ack = False
        append(log, lines("x", 6, start=40))  # emitted, never acknowledged
        await until(lambda: len(first.lines) == 46)

    async def two() -> None:
        f = FileFollower([str(log)], cfg, 4096, second.emit)
        await f.start()
        await until(lambda: len(second.lines) == 8)
        await asyncio.sleep(0.05)
        await f.stop()

    run(one)  # abandoned
    append(log, lines("x", 2, start=46))
    run(two)
    assert first.lines == lines("x", 46)
    assert second.lines == lines("x", 8, start=40)  # only the unacknowledged batch repeats


def test_rotation_while_stopped_reads_the_renamed_file_on_and_the_new_one_whole(
    tmp_path: Path,
) -> None:
    log = tmp_path / "access.log"
    cfg = serve(tmp_path)
    first, second = Sink(), Sink()

    async def one() -> None:
        f = FileFollower([str(log)], cfg, 4096, first.emit)
        await f.start()
        append(log, lines("old", 3))
        await until(lambda: len(first.lines) == 3)
        await until(lambda: f.unacked_bytes == 0)
        await f.stop()

    async def two() -> None:
        f = FileFollower([str(log)], cfg, 4096, second.emit)
        await f.start()
        await until(lambda: len(second.lines) == 4)
        await f.stop()

    run(one)
    append(log, lines("old", 2, start=3))  # written before the rename, while we were down
    os.rename(log, tmp_path / "access.log.1")
    append(log, lines("new", 2))  # read_from is "end", yet the new file is read whole
    run(two)
    assert sorted(second.lines) == sorted(lines("old", 2, start=3) + lines("new", 2))


# --- bad input and unusual files ----------------------------------------------------------------


def test_long_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    sink = Sink()

    async def main() -> None:
        f = FileFollower([str(log)], serve(tmp_path), 300, sink.emit)
        await f.start()
        append(log, lines("a", 2))
        append(log, b"L" * 5000)  # streams past in pieces, never held whole
        await asyncio.sleep(0.05)
        append(log, b"L" * 3000 + b"\n")
        append(log, [*lines("b", 1), b"M" * 400 + b"\n", *lines("c", 1)])  # in one read
        append(log, b"x" * 300 + b"\n")  # exactly max_line_bytes: kept
        await until(lambda: len(sink.lines) == 5)
        assert f.too_long == 2
        await f.stop()

    run(main)
    assert sink.lines == lines("a", 2) + lines("b", 1) + lines("c", 1) + [b"x" * 300 + b"\n"]
    assert all(b"L" not in e and b"M" not in e for e in sink.emits)


def test_a_file_that_disappears_and_comes_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sidecar.sources.follow")
    log = tmp_path / "access.log"
    sink = Sink()

    async def main() -> None:
        f = FileFollower([str(log)], serve(tmp_path), 4096, sink.emit)
        await f.start()
        append(log, lines("a", 3))
        await until(lambda: len(sink.lines) == 3)
        os.rename(log, tmp_path / "away")  # moved away and back: the same file goes on
        await asyncio.sleep(0.3)  # past rotate_wait: it is closed
        os.rename(tmp_path / "away", log)
        append(log, lines("a", 2, start=3))
        await until(lambda: len(sink.lines) == 5)
        os.unlink(log)  # deleted, then a new file
        await asyncio.sleep(0.3)
        append(log, lines("b", 2))
        await until(lambda: len(sink.lines) == 7)
        await f.stop()

    run(main)
    assert sink.lines == lines("a", 5) + lines("b", 2)
    assert "renamed or removed" in caplog.text
    assert "192.0.2" not in caplog.text


def test_an_unreadable_file_is_logged_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "access.log"
    sink = Sink()
    as_root = os.geteuid() == 0  # permission bits do not stop root: a folder in its place

    async def main() -> None:
        if as_root:
            log.mkdir()
        else:
            append(log, lines("a", 3))
            log.chmod(0)
        f = FileFollower([str(log)], serve(tmp_path), 4096, sink.emit)
        await f.start()
        await until(lambda: str(log) in caplog.text, "a warning naming the path")
        assert ("not a regular file" if as_root else "cannot open") in caplog.text
        if as_root:
            log.rmdir()
            append(log, lines("a", 3))
        else:
            log.chmod(0o644)
        await until(lambda: len(sink.lines) == 3)  # first opened after start: read whole
        await f.stop()

    run(main)
    assert sink.lines == lines("a", 3)
    assert "192.0.2" not in caplog.text


def test_a_missing_file_is_logged_by_path(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        f = FileFollower([str(tmp_path / "nope.log")], serve(tmp_path), 4096, Sink().emit)
        await f.start()
        await f.stop()

    run(main)
    assert "nope.log does not exist" in caplog.text


def test_state_dir_that_cannot_be_made_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    cfg = make_config(serve={"state_dir": str(tmp_path / "file" / "state")}).serve

    async def main() -> None:
        with pytest.raises(UsageError, match=r"serve\.state_dir \(--state-dir\)"):
            await FileFollower([str(tmp_path / "a.log")], cfg, 4096, Sink().emit).start()

    run(main)


def test_a_slow_daemon_slows_the_reader(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    data = lines("x", 3000)  # ~100 KiB, about 100 flushes of 1 KiB
    append(log, data)
    sink = Sink(ack=False)

    async def main() -> None:
        cfg = serve(tmp_path, read_from="beginning", handoff_max_bytes=65536)
        f = FileFollower([str(log)], cfg, 4096, sink.emit)
        await f.start()  # the bound: what the hand-off holds (64 KiB here), not all 100 KiB
        await until(lambda: f.unacked_bytes >= 64 * 1024 - 100, "the bound")
        await asyncio.sleep(0.05)
        assert f.unacked_bytes <= 64 * 1024 + 1024  # it waits instead of reading on
        while len(sink.lines) < len(data):
            sink.ack_all()
            await asyncio.sleep(0.002)
        sink.ack_all()
        await until(lambda: f.unacked_bytes == 0)
        await f.stop()

    run(main)
    assert sink.lines == data
    assert saved_offsets(tmp_path) == [log.stat().st_size]


def test_acks_out_of_order_move_the_checkpoint_only_over_a_whole_prefix(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    sink = Sink(ack=False)

    async def main() -> None:
        f = FileFollower([str(log)], serve(tmp_path), 4096, sink.emit)
        await f.start()
        for i in range(3):
            append(log, lines("x", 1, start=i))
            await until(lambda n=i: len(sink.held) == n + 1)
        first, second, third = sink.held
        third()
        second()
        f.save()
        assert saved_offsets(tmp_path) == [0]
        first()
        first()  # a second call changes nothing
        f.save()
        assert saved_offsets(tmp_path) == [log.stat().st_size]
        await f.stop()

    run(main)


# --- the property -------------------------------------------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 40)),
        st.tuples(st.just("partial"), st.integers(1, 30)),
        st.tuples(st.just("rename"), st.integers(0, 5)),
        st.tuples(st.just("copytruncate"), st.integers(1, 40)),
        st.tuples(st.just("restart"), st.booleans()),  # True: SIGTERM; False: kill -9
    ),
    max_size=8,
)


class Writer:
    """nginx's side: one log at `access.log`; each file it writes (a new one after each
    rotation) tags its lines f<number>, every line unique."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "access.log"
        self.file_no = 0
        self.seq = 0
        self.rotations = 0
        self.half: tuple[bytes, bytes] | None = None  # (written part, whole line)
        self.written: dict[int, list[bytes]] = {0: []}
        self.path.touch()  # nginx makes its log at start

    def line(self, pad: int = 0) -> bytes:
        self.seq += 1
        return b"f%d %06d 192.0.2.1 %s\n" % (self.file_no, self.seq, b"p" * pad)

    def append(self, n: int) -> None:
        out, new = b"", []
        if self.half is not None:
            part, whole = self.half
            out, new, self.half = whole[len(part) :], [whole], None
            n -= 1
        new += [self.line(i % 7) for i in range(max(n, 0))]
        append(self.path, out + b"".join(new[1:] if out else new))
        self.written[self.file_no].extend(new)

    def partial(self, pad: int) -> None:
        self.finish()
        whole = self.line(pad)
        self.half = (whole[: len(whole) // 2], whole)
        append(self.path, self.half[0])

    def finish(self) -> None:
        if self.half is not None:
            self.append(1)

    def all_lines(self) -> list[bytes]:
        return [x for lines_ in self.written.values() for x in lines_]

    def next_file(self) -> None:
        self.file_no += 1
        self.written[self.file_no] = []


@settings(max_examples=25)
@given(OPS)
def test_property_every_line_once_in_order(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, Any]]
) -> None:
    """Any sequence of appends, partial writes, renames (with late writes to the old file),
    copytruncates and restarts (graceful, or abandoned like kill -9): every line arrives at
    least once and in order per file; with only graceful restarts, exactly once."""
    tmp_path = tmp_path_factory.mktemp("prop")
    w = Writer(tmp_path)
    cfg = serve(tmp_path, read_from="beginning", rotate_wait_secs=0.5)
    got: list[bytes] = []

    async def caught_up(sink: Sink) -> None:
        def done() -> bool:
            have = set(got) | set(sink.lines)
            return all(x in have for x in w.all_lines())

        await until(done, "every whole line written so far")

    async def segment(part: list[tuple[str, Any]]) -> None:
        sink = Sink()
        f = FileFollower([str(w.path)], cfg, 4096, sink.emit)
        await f.start()
        for op, arg in part:
            if op == "append":
                w.append(arg)
            elif op == "partial":
                w.partial(arg)
            elif op == "rename":
                w.finish()
                await caught_up(sink)
                old = open(w.path, "ab")  # noqa: SIM115 - nginx's descriptor
                w.rotations += 1
                os.rename(w.path, tmp_path / f"access.log.{w.rotations}")
                w.path.touch()
                await asyncio.sleep(0.02)  # the glob sees it; nginx has not reopened yet
                late = [w.line() for _ in range(arg)]
                old.write(b"".join(late))
                old.close()
                w.written[w.file_no].extend(late)
                w.next_file()
                w.append(1)  # nginx reopened: a line in the new file before it rotates again
            elif op == "copytruncate":
                w.finish()
                await caught_up(sink)
                shutil.copy(w.path, tmp_path / "copy")
                os.truncate(w.path, 0)
                w.next_file()
                w.append(arg)
        await caught_up(sink)
        await until(lambda: f.unacked_bytes == 0)
        got.extend(sink.lines)
        if part and part[-1] == ("restart", False):
            return  # abandoned: the loop ends, its tasks are cancelled, nothing saves
        await f.stop()

    rest = list(ops)
    crashed = False
    while True:
        cut = next((i for i, (op, _) in enumerate(rest) if op == "restart"), len(rest))
        part, rest = rest[: cut + 1], rest[cut + 1 :]
        crashed = crashed or ("restart", False) in part
        run(lambda part=part: segment(part))
        if not rest:
            break
    w.finish()
    run(lambda: segment([]))  # the last partial line, finished
    for no, written in w.written.items():
        mine = [x for x in got if x.startswith(b"f%d " % no)]
        assert list(dict.fromkeys(mine)) == written, f"file {no}: lost or out of order"
        if not crashed:
            assert mine == written, f"file {no}: repeated"
