"""Adversarial lines: what one line costs per KiB of it, from 1 KiB to 64 KiB, now and at a
baseline revision, in one run.

    .venv/bin/python bench/adversarial.py [--baseline fc5aa7b] [--rev REV] [--cap 5] [--families F]

Each family is a line shape an attacker controls (a long digit run in the path, `1:` repeated,
nested percent-encoding, a long user agent, a line that fails parsing and is struck whole, ...),
built at 1, 2, 4, 8, 16, 32 and 64 KiB (the whole line, `max_line_bytes` is 64 KiB). Lines are
fed through `LinePipeline(fmt, PrivacyStage(config, None), keep_rejects=True).process(chunk)`,
in a chunk of distinct lines (the adversarial text differs on every line and every repetition,
so no per-text cache answers; the rest of the line recurs, as it does in real logs). The figure
is microseconds per KiB of line, the fastest of a few repetitions; a scan linear in the line's
length gives a flat row, and the ratio 64 KiB / 1 KiB is ~1 (below 1 when the per-line fixed
cost weighs on 1 KiB lines).

Both trees run in child processes of this script (`--worker`), with `PYTHONPATH` set to the
tree: the working tree and a `git worktree` of `--baseline` (removed at the end). They are
interleaved, family by family and size by size, so a neighbour's load hits both alike. A
measurement whose chunk would take more than `--cap` seconds is not run: the next size is
predicted from the last one as if the cost were quadratic (per-KiB time doubling with the size)
and skipped when over the cap ("> cap"); a child that still overruns is killed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from worktree import baseline_tree, env_for, short  # bench/worktree.py, next to this script

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

KIB = 1024
SIZES_KIB = (1, 2, 4, 8, 16, 32, 64)
LINES = 4  # distinct lines per chunk, fresh ones for every repetition
BUDGET_SECONDS = 0.15  # repetitions of a measurement stop after this much time...
MAX_REPS = 20  # ...or this many (fastest kept)

# --- the lines ------------------------------------------------------------------------------

HOST = "video.example.com"
CLIENT = "81.2.69.160"
PATH = "/v/abc/seg_1.m4s"
REFERRER = "https://www.example.com/watch"
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
# Three dots and no digits: every field below passes the literal scanner's cheap pre-filter
# (three dots or two colons), so the families time the scan itself, not the filter.
DOTS = "a.b.c.d"
TAG_LETTERS = "ghijklmnopqrstuvwxyz"  # no hex digits: a tag never joins a digit or hex run


def tag(n: int) -> str:
    """A distinct, inert word per line: `g`, `h`, ..., `hg`, ..."""
    out = ""
    while True:
        n, d = divmod(n, len(TAG_LETTERS))
        out = TAG_LETTERS[d] + out
        if n == 0:
            return "q" + out


def fill(pattern: str, n: int) -> str:
    return (pattern * (n // len(pattern) + 1))[:n]


def vhost_combined(
    host: str = HOST, path: str = PATH, referrer: str = REFERRER, ua: str = UA
) -> str:
    return (
        f'{host} {CLIENT} - - [24/Nov/2026:10:00:00 +0100] "GET {path} HTTP/1.1" 200 1234 '
        f'"{referrer}" "{ua}"'
    )


def _line_of(field: str, pattern: str, size: int, t: str) -> str:
    """A line of exactly `size` bytes whose `field` holds `pattern` repeated."""
    fixed = len(_build(field, pattern, 0, t))
    return _build(field, pattern, max(0, size - fixed), t)


def _build(field: str, pattern: str, n: int, t: str) -> str:
    run = fill(pattern, n)
    if field == "path":
        return vhost_combined(path=f"/v/{DOTS}/{t}/{run}")
    if field == "path+referrer":
        half = n // 2
        return vhost_combined(
            path=f"/v/{DOTS}/{t}/{run[:half]}",
            referrer=f"https://www.example.com/w/{DOTS}/{t}/{fill(pattern, n - half)}",
        )
    if field == "query":
        return vhost_combined(path=f"/v/seg_1.m4s?id={t}&d={DOTS}&v={run}")
    if field == "user agent":
        return vhost_combined(ua=f"Mozilla/5.0 ({DOTS}; {t}; {run}) Gecko/20100101 Firefox/121.0")
    if field == "host":
        return vhost_combined(host=f"{t}.{DOTS}.{run}.example.com")
    if field == "rejected":  # no format reads it: struck whole (--rejects)
        return f"garbage {t} {DOTS} {run} from {CLIENT}"
    raise ValueError(field)


@dataclass(frozen=True)
class Family:
    name: str
    field: str
    pattern: str

    def line(self, size: int, t: str) -> str:
        return _line_of(self.field, self.pattern, size, t)


FAMILIES = (
    Family("path: digits", "path", "1"),
    Family("path: 1.", "path", "1."),
    Family("path: 198.51.100.23.", "path", "198.51.100.23."),
    Family("path: 1:", "path", "1:"),
    Family("path: a:", "path", "a:"),
    Family("path: ::", "path", "::"),
    Family("path: 12ab:", "path", "12ab:"),
    Family("path: hex letters", "path", "a"),
    Family("path: 0x", "path", "0x"),
    Family("path: %25", "path", "%25"),
    Family("path: 1%2E", "path", "1%2E"),
    Family("path: 1%252E", "path", "1%252E"),
    Family("path: letters (control)", "path", "wxyz"),
    Family("path+referrer: digits", "path+referrer", "1"),
    Family("query value: digits", "query", "1"),
    Family("user agent: digits", "user agent", "1"),
    Family("host: digits", "host", "1"),
    Family("rejected line: digits", "rejected", "1"),
    # struck whole, never cut (fields of a record are cut to 8192 characters at ff4926d): the
    # scan's own cost up to 64 KiB, on its hardest texts
    Family("rejected line: 1.", "rejected", "1."),
    Family("rejected line: 1:", "rejected", "1:"),
    Family("rejected line: ::", "rejected", "::"),
    Family("rejected line: 1%252E", "rejected", "1%252E"),
)


# --- the worker: runs inside one tree --------------------------------------------------------


def make_pipeline():  # the tree's own LinePipeline
    from sidecar import config as config_mod
    from sidecar.formats.registry import resolve
    from sidecar.pipeline import LinePipeline
    from sidecar.privacy.stage import PrivacyStage

    config = config_mod.from_mapping(
        {
            "geoip": {"database": ""},
            "query": {"allow": ["*"]},  # every parameter kept: its value is scanned
            "referrer": {"first_party_hosts": ["example.com"]},  # the referrer path is kept
        },
        where="(bench)",
    )
    return LinePipeline(resolve("vhost_combined"), PrivacyStage(config, None), keep_rejects=True)


def worker() -> int:
    """Answers one JSON request per stdin line: {"family", "size_kib"} -> timing."""
    import sidecar

    pipeline = make_pipeline()
    families = {f.name: f for f in FAMILIES}
    serial = 0

    def chunk_of(family: Family, size: int, n: int) -> bytes:
        nonlocal serial
        lines = []
        for _ in range(n):
            lines.append(family.line(size, tag(serial)))
            serial += 1
        return ("\n".join(lines) + "\n").encode()

    out = sys.stdout
    out.write(json.dumps({"sidecar": sidecar.__file__}) + "\n")
    out.flush()
    for request in sys.stdin:
        req = json.loads(request)
        family, size_kib = families[req["family"]], req["size_kib"]
        size, n = size_kib * KIB, LINES
        best, spent, reps = float("inf"), 0.0, 0
        result = None
        while reps < MAX_REPS and spent < BUDGET_SECONDS:
            chunk = chunk_of(family, size, n)
            gc.collect()
            started = time.perf_counter()
            result = pipeline.process(chunk)
            seconds = time.perf_counter() - started
            best, spent, reps = min(best, seconds), spent + seconds, reps + 1
        assert result is not None
        if result.records_out == n:
            outcome = "record"
        else:
            outcome = "rejected: " + ",".join(sorted(result.rejected))
        answer = {
            "seconds": best,
            "reps": reps,
            "lines": n,
            "bytes": len(chunk),
            "outcome": outcome,
        }
        out.write(json.dumps(answer) + "\n")
        out.flush()
    return 0


# --- the driver -----------------------------------------------------------------------------


class Worker:
    """A `--worker` child importing sidecar from `tree`; restarted after a timeout."""

    def __init__(self, label: str, tree: Path) -> None:
        self.label, self.tree = label, tree
        self.proc: subprocess.Popen[str] | None = None
        self.where = ""

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            cwd=self.tree, env=env_for(self.tree), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, bufsize=1,
        )  # fmt: skip
        hello = self._read(120)
        if hello is None:
            raise SystemExit(f"{self.label}: the worker did not start")
        self.where = hello["sidecar"]
        if not Path(self.where).resolve().is_relative_to(self.tree.resolve()):
            raise SystemExit(f"{self.label}: sidecar imported from {self.where}, not {self.tree}")

    def _read(self, timeout: float) -> dict | None:
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{self.label}: the worker exited ({self.proc.wait()})")
        return json.loads(line)

    def measure(self, family: str, size_kib: int, timeout: float) -> dict | None:
        """The worker's answer, or None when it overran `timeout` (it is killed, restarted)."""
        if self.proc is None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"family": family, "size_kib": size_kib}) + "\n")
        self.proc.stdin.flush()
        answer = self._read(timeout)
        if answer is None:
            self.stop()
        return answer

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@dataclass
class Cell:
    us_per_kib: float | None = None  # None: not measured (over the cap)
    line_seconds: float | None = None  # one line of this size
    predicted_line_seconds: float | None = None  # for a skipped cell: quadratic extrapolation
    outcome: str = ""
    timed_out: bool = False


def run_family(
    family: Family, workers: list[Worker], cap: float
) -> Iterator[tuple[Worker, int, Cell]]:
    last: dict[str, tuple[int, float]] = {}  # label -> (size_kib, seconds per KiB)
    skip: set[str] = set()
    for size_kib in SIZES_KIB:
        for w in workers:
            cell = Cell()
            chunk_kib = size_kib * LINES
            if w.label in last:
                prev_size, prev_per_kib = last[w.label]
                per_kib = prev_per_kib * size_kib / prev_size  # as if quadratic
                cell.predicted_line_seconds = per_kib * size_kib
                if per_kib * chunk_kib > cap:
                    skip.add(w.label)
            if w.label in skip:
                yield w, size_kib, cell
                continue
            answer = w.measure(family.name, size_kib, timeout=2 * cap + 5)
            if answer is None:
                cell.timed_out = True
                skip.add(w.label)
            else:
                per_kib = answer["seconds"] / (answer["bytes"] / KIB)
                cell.us_per_kib = per_kib * 1e6
                cell.line_seconds = answer["seconds"] / answer["lines"]
                cell.predicted_line_seconds = None
                cell.outcome = answer["outcome"]
                last[w.label] = (size_kib, per_kib)
            yield w, size_kib, cell


def fmt_us(cell: Cell) -> str:
    if cell.us_per_kib is None:
        return "> cap"
    v = cell.us_per_kib
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def flatness(row: dict[int, Cell]) -> str:
    """64 KiB per-KiB time over 1 KiB's; when 64 KiB is over the cap, the largest measured."""
    first = row[SIZES_KIB[0]].us_per_kib
    measured = [k for k in SIZES_KIB if row[k].us_per_kib is not None]
    if first is None or not measured:
        return "n/a"
    top = measured[-1]
    ratio = row[top].us_per_kib / first  # type: ignore[operator]
    text = f"{ratio:,.1f}" if ratio < 100 else f"{ratio:,.0f}"
    return text if top == SIZES_KIB[-1] else f"{text} @{top}K"


def line_time(cell: Cell) -> str:
    if cell.line_seconds is not None:
        s = cell.line_seconds
        return f"{s * 1e3:,.2f} ms" if s < 1 else f"{s:,.1f} s"
    if cell.predicted_line_seconds is not None:
        return f"~{cell.predicted_line_seconds:,.0f} s (x²)"
    return "> cap"


def print_table(title: str, family_names: list[str], rows: dict[str, dict[int, Cell]]) -> None:
    width = max(len(n) for n in family_names) + 1
    print(f"\n{title}")
    header = f"{'family':<{width}}" + "".join(f"{f'{k} KiB':>9}" for k in SIZES_KIB)
    header += f"{'64/1':>11}"
    print(header)
    print("-" * len(header))
    for name in family_names:
        row = rows[name]
        cells = "".join(f"{fmt_us(row[k]):>9}" for k in SIZES_KIB)
        print(f"{name:<{width}}{cells}{flatness(row):>11}")


def describe(workers: list[Worker], args: argparse.Namespace) -> None:
    if args.rev:
        print(f"now: {short(args.rev)} (--rev; git worktree {workers[0].tree})")
    else:
        describe_working_tree()
    if len(workers) > 1:
        print(f"baseline: {workers[1].label} ({workers[1].tree})")
    print(
        f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; load average "
        f"{os.getloadavg()[0]:.2f} at start; cap {args.cap:g} s per measurement; "
        f"chunks of {LINES} distinct lines, fastest of up to {MAX_REPS} repetitions "
        f"({BUDGET_SECONDS:g} s)"
    )


def describe_working_tree() -> None:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "sidecar"], cwd=ROOT, capture_output=True,
        text=True,
    ).stdout.strip()  # fmt: skip
    print(f"now: working tree at {head}{' (sidecar/ has uncommitted changes)' if dirty else ''}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default="fc5aa7b",
                   help="revision to compare with (default fc5aa7b; '' for none)")  # fmt: skip
    p.add_argument("--rev", default="", metavar="REV",
                   help="measure REV (a git worktree) as 'now', not the working tree")  # fmt: skip
    p.add_argument("--cap", type=float, default=5.0, help="seconds per measurement at most")
    p.add_argument("--families", default="",
                   help="comma-separated parts of family names (default: all)")  # fmt: skip
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker()

    families = [
        f for f in FAMILIES
        if not args.families or any(s in f.name for s in args.families.split(","))
    ]  # fmt: skip
    if not families:
        raise SystemExit(f"no family matches {args.families!r}")
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        now = stack.enter_context(baseline_tree(args.rev)) if args.rev else ROOT
        workers = [Worker("now", now)]
        if args.baseline:
            tree = stack.enter_context(baseline_tree(args.baseline))
            workers.append(Worker(f"@{short(args.baseline)}", tree))
        for w in workers:
            w.start()
            stack.callback(w.stop)
        describe(workers, args)
        cells: dict[str, dict[str, dict[int, Cell]]] = {w.label: {} for w in workers}
        for family in families:
            print(f"  {family.name} ...", end="", flush=True)
            for w, size_kib, cell in run_family(family, workers, args.cap):
                cells[w.label].setdefault(family.name, {})[size_kib] = cell
            print(" done", flush=True)
    names = [f.name for f in families]
    for w in workers:
        print_table(
            f"== µs per KiB of line, {w.label} (fastest of up to {MAX_REPS}; flat = linear)",
            names,
            cells[w.label],
        )
    report_summary(workers, names, cells)
    print(f"\n(run took {time.perf_counter() - started:.0f} s)")
    return 0


def report_summary(
    workers: list[Worker], names: list[str], cells: dict[str, dict[str, dict[int, Cell]]]
) -> None:
    top = SIZES_KIB[-1]
    labels = [w.label for w in workers]
    width = max(len(n) for n in names) + 1
    print(f"\n== One {top} KiB line, and what came of it")
    header = f"{'family':<{width}}" + "".join(f"{lab + ' per line':>20}" for lab in labels)
    if len(labels) > 1:
        header += f"{labels[1] + ' / now':>16}"
    header += "  outcome (now)"
    print(header)
    print("-" * len(header))
    for name in names:
        row = [cells[lab][name] for lab in labels]
        text = f"{name:<{width}}" + "".join(f"{line_time(r[top]):>20}" for r in row)
        if len(labels) > 1:
            text += f"{speedup(row[0], row[1]):>16}"
        text += "  " + (row[0][top].outcome or "-")
        print(text)
    if len(labels) > 1:
        print(
            f"{labels[1]} / now: the baseline's time per KiB over now's at {top} KiB (or at the "
            "largest size both measured, @N K); '~N s (x²)': a skipped line's time predicted "
            "from the last measured size, as if quadratic"
        )


def speedup(now: dict[int, Cell], base: dict[int, Cell]) -> str:
    both = [
        k for k in SIZES_KIB if now[k].us_per_kib is not None and base[k].us_per_kib is not None
    ]
    if not both:
        return "n/a"
    k = both[-1]
    ratio = base[k].us_per_kib / now[k].us_per_kib  # type: ignore[operator]
    text = f"{ratio:,.2f}x" if ratio < 100 else f"{ratio:,.0f}x"
    return text if k == SIZES_KIB[-1] else f"{text} @{k}K"


if __name__ == "__main__":
    sys.exit(main())
