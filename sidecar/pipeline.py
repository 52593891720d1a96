"""parse -> privacy -> output, for chunks of lines, in one process or in N worker processes.

`LinePipeline.process(chunk)` is the whole way of a line inside one process: decode, check,
parse (formats/), scrub (privacy/), encode. Only encoded clean output, counters and struck
rejected lines come back from it. `run` feeds chunks to it, in order, inline (`workers=1`) or
through a pool of forked workers with a bounded number of chunks in flight.
"""

from __future__ import annotations

import functools
import multiprocessing
import re
import signal
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson

from sidecar.formats.base import LineFormat
from sidecar.formats.detect import fit_format as fit_format  # moved there; kept importable
from sidecar.formats.rewrite import Rewriter
from sidecar.privacy.stage import PrivacyStage, StageCounts
from sidecar.record import CleanRecord, RawRequest
from sidecar.reject import (
    BINARY,
    EMPTY,
    FORMAT_MISMATCH,
    INTERNAL_ERROR,
    INVALID_UTF8,
    TOO_LONG,
    Rejected,
)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_REJECT_ESCAPES = {i: f"\\x{i:02X}" for i in (*range(0x20), 0x7F) if i != 0x09}
# what can stand between the characters of an address and vanish when the line is read: C0
# controls but tab, DEL, C1, soft hyphen, zero-width and direction marks, BOM, and U+FFFD (an
# undecodable byte). UTF-16 text read as UTF-8 is `2\x000\x003\x00.\x00...`.
_HIDING = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\xad\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff\ufffd]"
)
#: stored instead of a rejected line that could not be struck (a bug in the strike)
UNSTRUCK = "(rejected line withheld: it could not be struck)"


@dataclass(slots=True)
class ChunkResult:
    output: bytes  # the records, encoded: jsonl (a CleanBatch's data) or rewrite
    lines_in: int
    records_out: int
    rejected: dict[str, int]
    rejects: list[str] = field(default_factory=list)  # struck rejected lines, when asked for
    summary: list[tuple] | None = None  # daily rollup rows of the chunk's records, if asked
    counts: StageCounts | None = None  # what the privacy stage saw (for the metrics)


class LinePipeline:
    """One process's whole way of a line; `fmt` None rejects every line (no format detected).

    `output`: `jsonl` (JSON lines: stdout, or a CleanBatch for the sinks) or `rewrite`."""

    def __init__(
        self,
        fmt: LineFormat | None,
        stage: PrivacyStage,
        output: str = "jsonl",
        max_line_bytes: int = 65536,
        keep_rejects: bool = False,
        summarize: Callable[[list[CleanRecord]], list[tuple]] | None = None,
    ) -> None:
        #: a rollup of each chunk's records, computed here (in the workers) for a store that
        #: keeps one (the SQLite sink's `rollup`), so its writer thread does not have to
        self.summarize = summarize
        self.fmt = fmt
        self.stage = stage
        self.max_line_bytes = max_line_bytes
        self.keep_rejects = keep_rejects
        self.encode: Callable[[CleanRecord], bytes]
        if output == "rewrite" and fmt is not None:
            line = Rewriter(fmt).line
            self.encode = lambda rec: (line(rec) + "\n").encode()
        else:  # to_json's own type check is skipped here: scrub returns CleanRecords only
            self.encode = functools.partial(orjson.dumps, option=orjson.OPT_APPEND_NEWLINE)

    def lines_of(self, chunk: bytes, rejected: Counter[str], rejects: list[str]) -> list[str]:
        """Decode a chunk into lines; lines that are not UTF-8 are counted and left out."""
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError:
            lines = []
            for raw_line in chunk.split(b"\n")[:-1]:
                try:
                    lines.append(raw_line.decode("utf-8"))
                except UnicodeDecodeError:
                    rejected[INVALID_UTF8] += 1
                    if self.keep_rejects:
                        rejects.append(self.strike(raw_line.decode("utf-8", "replace")))
            return lines
        return text.split("\n")[:-1]

    def strike(self, line: str) -> str:
        """A rejected line fit to write down: IP literals struck, control bytes escaped.

        An address can hide behind characters that vanish when the line is read, or that a
        reader drops (`tr -d '\\0'`): UTF-16 read as UTF-8 puts a NUL after every character,
        and an undecodable byte becomes U+FFFD. So the struck line is checked once more without
        them (`_HIDING`): if that reveals an address still whole, the line is written without
        them, struck again; otherwise as it is, its control bytes escaped (`\\x00`). Either
        way, what is written holds no whole address, read with those characters or without.
        Never raises: a line the strike fails on is stored as `UNSTRUCK`.
        """
        try:
            strike = self.stage.literal_masker.strike
            masked = strike(line[: self.max_line_bytes])
            if _HIDING.search(masked) is not None:
                visible = _HIDING.sub("", masked)
                again = strike(visible)
                if again != visible:
                    masked = again
            return masked.translate(_REJECT_ESCAPES)
        except Exception:
            return UNSTRUCK

    def check(self, line: str) -> None:
        """The slow checks, run only on chunks that need them (control bytes, long lines)."""
        if len(line) > self.max_line_bytes // 4 and len(line.encode()) > self.max_line_bytes:
            raise Rejected(TOO_LONG)
        if _CONTROL.search(line):
            raise Rejected(BINARY)

    def process(self, chunk: bytes) -> ChunkResult:
        rejected: Counter[str] = Counter()
        rejects: list[str] = []
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        lines = self.lines_of(chunk, rejected, rejects)
        slow_checks = len(chunk.translate(None, _CONTROL_BYTES)) != len(chunk) or (
            bool(lines) and max(map(len, lines)) > self.max_line_bytes // 4
        )
        parse = self.fmt.parse if self.fmt is not None else _no_format
        scrub = self.stage.scrub
        encode = self.encode
        out = bytearray()  # appended to at once: retaining each line's bytes costs page faults
        kept: list[CleanRecord] = []
        keep = kept.append if self.summarize is not None else None
        n_rejected = 0
        for line in lines:
            try:
                if slow_checks:
                    self.check(line)
                if keep is None:
                    out += encode(scrub(parse(line)))
                else:
                    record = scrub(parse(line))
                    data = encode(record)  # first: a record that fails to encode is not kept
                    keep(record)
                    out += data
            except Exception as exc:  # Rejected, or what no rule meant: this line only
                n_rejected += 1
                if not isinstance(exc, Rejected):
                    rejected[INTERNAL_ERROR] += 1  # its text never in a message
                else:
                    rejected[EMPTY if not line or line.isspace() else exc.reason] += 1
                if self.keep_rejects and line:
                    rejects.append(self.strike(line))
        n_in = len(lines) + rejected[INVALID_UTF8]
        summary = self.summarize(kept) if self.summarize is not None else None
        return ChunkResult(
            bytes(out), n_in, len(lines) - n_rejected, dict(rejected), rejects, summary,
            self.stage.take_counts(),
        )  # fmt: skip


def _no_format(line: str) -> RawRequest:
    raise Rejected(FORMAT_MISMATCH)


# --- workers ---------------------------------------------------------------------------------
# A forked worker inherits the parent's LinePipeline (compiled format, open geo database);
# nothing of it is pickled. Only chunks of input bytes go to it and ChunkResults come back.
_worker_pipeline: LinePipeline | None = None


def _init_worker(pipeline: LinePipeline) -> None:
    global _worker_pipeline
    _worker_pipeline = pipeline
    # the parent owns shutdown: a worker dies on TERM (pool.terminate) and ignores Ctrl-C
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _work(chunk: bytes) -> ChunkResult:
    assert _worker_pipeline is not None
    return _worker_pipeline.process(chunk)


def run(
    pipeline: LinePipeline,
    chunks: Iterable[bytes],
    emit: Callable[[ChunkResult], None],
    workers: int = 1,
) -> None:
    """Process every chunk and hand each result to `emit`, in input order."""
    if workers <= 1:
        for chunk in chunks:
            emit(pipeline.process(chunk))
        return
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(pipeline,)) as pool:
        pending: deque = deque()
        try:
            for chunk in chunks:
                pending.append(pool.apply_async(_work, (chunk,)))
                while len(pending) >= 2 * workers:
                    emit(pending.popleft().get())
            while pending:
                emit(pending.popleft().get())
        except BaseException:
            pool.terminate()
            raise
