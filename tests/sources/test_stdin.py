"""stdin source: whole lines handed to the loop as they come, bounded in flight, end signalled."""

from __future__ import annotations

import asyncio
import os
import threading

from sidecar.sources.stdin import FdReader, StdinSource


def run_with_pipe(feed, max_line_bytes: int = 1024, in_flight: int = 2):
    """Run a StdinSource on a real pipe; `feed(write_fd)` runs on a thread."""
    got: list[bytes] = []

    async def main() -> StdinSource:
        r, w = os.pipe()
        ended = asyncio.Event()
        source = StdinSource(lambda lines, ack: got.append(lines), max_line_bytes, 4096,
                             on_end=ended.set, stream=FdReader(r), in_flight=in_flight)  # fmt: skip
        await source.start()
        t = threading.Thread(target=lambda: (feed(w), os.close(w)))
        t.start()
        await asyncio.wait_for(ended.wait(), 10)
        t.join()
        os.close(r)
        return source

    source = asyncio.run(main())
    return got, source


def test_lines_arrive_whole_and_the_end_is_signalled() -> None:
    def feed(w: int) -> None:
        os.write(w, b"one\ntw")
        os.write(w, b"o\nthree")  # no newline at the end: one is added

    got, source = run_with_pipe(feed)
    assert b"".join(got) == b"one\ntwo\nthree\n"
    assert all(chunk.endswith(b"\n") for chunk in got)
    assert source.ended


def test_an_over_long_line_is_skipped_and_counted() -> None:
    got, source = run_with_pipe(lambda w: os.write(w, b"a\n" + b"x" * 5000 + b"\nb\n"))
    assert b"".join(got) == b"a\nb\n"
    assert source.too_long == 1


def test_a_fast_writer_is_bounded_by_the_chunks_in_flight() -> None:
    lines = b"".join(b"%d\n" % i for i in range(20000))
    got, _ = run_with_pipe(lambda w: _write_all(w, lines))
    assert b"".join(got) == lines


def _write_all(w: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(w, view) :]
