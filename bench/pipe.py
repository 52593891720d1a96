"""Benchmark `sidecar pipe` against a hand-tuned Python peer and syslog-ng, in one run.

    .venv/bin/python bench/pipe.py [--lines 1000000] [--big-lines 5000000] [--repeat 1]

1. Generates the logs (bench/generate.py; cached in bench/out/, which git ignores).
2. Checks on a sample (the first 20,000 lines; `--sample N`) that the peers' records agree
   with sidecar's, field by field, for the fields all of them produce.
3. Times, on the same file: `sidecar pipe`, `sidecar pipe --workers 2`, bench/peer_python.py
   and syslog-ng with bench/syslog-ng.conf. Each writes its records to a file.
4. Runs `sidecar pipe` on the big file too: its peak RSS should not grow with the input.
5. Prints a table: lines/s, MiB/s of input, peak memory, and the ratios to the peers.

`--baseline REV` adds sidecar as it was at REV (a `git worktree` of REV in /tmp, run with this
venv's Python and PYTHONPATH set to that tree, `python -m sidecar pipe`; removed at the end) as
one more program, "sidecar pipe @REV": its records are compared with today's on the sample (all
fields), it is timed in the same interleaved rounds, and the table ends with the ratio now/REV.

The machine is shared and noisy: only figures from the same run are compared, and `--repeat N`
runs the timed set N times, interleaved, keeping each program's fastest run.

Memory: "peak RSS" is the largest resident set of any one process of the program: GNU time's
%M (`/usr/bin/time -f %M`, the ru_maxrss of the program's process and of the descendants it
reaped, which for `--workers 2` is the largest of the parent and its workers, not a sum).
Without /usr/bin/time it is the largest VmHWM sampled from /proc. ("Use getrusage(CHILDREN)
from this script" would be wrong: a child's ru_maxrss starts with the RSS of the Python process
that forked it.) "PSS sum" adds up the proportional set size (/proc/PID/smaps_rollup) of all
the program's processes, sampled every 50 ms: what the whole program holds, shared pages
counted once.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
sys.path.insert(0, str(ROOT))

from worktree import baseline_tree, env_for, short  # noqa: E402 (bench/worktree.py)

from sidecar.privacy.ip import Masker, parse_ip  # noqa: E402

SAMPLE_LINES = 20_000
COMPARED_FIELDS = (
    "ts",
    "client_ip",
    "country",
    "method",
    "path",
    "status",
    "bytes",
    "referrer_host",
    "protocol",
    "query",
)
TIME = Path("/usr/bin/time")  # GNU time: %M is the peak RSS of the program alone
SYSLOG_NG_SCL = Path("/usr/share/syslog-ng/include/scl/apache/apache.conf")
MIB = 1 << 20
STALL_SECONDS = 60  # a daemon whose output stops growing this long is stopped

TARGET_WORKERS_VS_SYSLOG_NG = 2.0
TARGET_SINGLE_VS_SYSLOG_NG = 1.2
TARGET_RSS_MIB = 150


@dataclass(frozen=True)
class Settings:
    lines: int
    big_lines: int
    seed: int
    repeat: int
    geoip: Path
    sidecar: Path
    python: Path
    syslog_ng: Path | None  # None: not available, skipped
    workdir: Path  # scratch space for outputs, removed at the end
    baseline: Path | None = None  # a worktree of --baseline REV, or None
    baseline_rev: str = ""  # its short commit
    now_tree: Path | None = None  # --rev REV: "sidecar pipe" is that worktree, not this one
    now_rev: str = ""


@dataclass
class Result:
    name: str
    seconds: float
    lines_out: int
    input_bytes: int
    peak_rss_kib: int  # the largest process: GNU time's %M (else the largest sampled VmHWM)
    peak_pss_kib: int  # sampled sum over the process tree
    pss_trace: list[int] = field(default_factory=list)  # the sum at each sample
    runs: list[float] = field(default_factory=list)

    @property
    def lines_per_second(self) -> float:
        return self.lines_out / self.seconds

    @property
    def mib_per_second(self) -> float:
        return self.input_bytes / MIB / self.seconds


@dataclass(frozen=True)
class Program:
    """How to run one contender: argv, stdin or not, and how it signals it is done."""

    name: str
    argv: tuple[str, ...]
    stdin_is_log: bool = False  # feed the log on stdin (else the log path is in argv)
    env: dict[str, str] | None = None
    output: Path | None = None  # a daemon writes here itself; else stdout goes to a file
    daemon: bool = False  # never exits by itself: stopped once `output` has every line
    cwd: Path | None = None  # working directory (default: this script's)


# --- measuring ------------------------------------------------------------------------------


def _children_of() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def _proc_kib(path: str, key: bytes) -> int:
    """The KiB figure of the `key` line of a /proc file (status, smaps_rollup); 0 if gone."""
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


class MemorySampler(threading.Thread):
    """Every `interval` seconds, over a process and its descendants: the largest sum of PSS
    seen, and the largest VmHWM of any one of them (the fallback when /usr/bin/time is missing).
    `skip_root`: the root is a wrapper (/usr/bin/time), not part of the program."""

    def __init__(self, pid: int, skip_root: bool, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.skip_root = skip_root
        self.interval = interval
        self.peak_pss_kib = 0
        self.peak_hwm_kib = 0
        self.trace: list[int] = []  # the PSS sum at each sample
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            pss = 0
            for pid in self.tree():
                pss += _proc_kib(f"/proc/{pid}/smaps_rollup", b"Pss:")
                hwm = _proc_kib(f"/proc/{pid}/status", b"VmHWM:")
                self.peak_hwm_kib = max(self.peak_hwm_kib, hwm)
            self.peak_pss_kib = max(self.peak_pss_kib, pss)
            self.trace.append(pss)
            self._stop_event.wait(self.interval)

    def tree(self) -> list[int]:
        children = _children_of()
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, ()))
        return found[1:] if self.skip_root else found

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


class LineCounter:
    """Counts the newlines written so far to a file that another process appends to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._fh = None

    def poll(self) -> int:
        if self._fh is None:
            try:
                self._fh = open(self.path, "rb")  # noqa: SIM115 (kept open between polls)
            except FileNotFoundError:
                return 0
        while chunk := self._fh.read(1 << 22):
            self.count += chunk.count(b"\n")
        return self.count

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def count_lines(path: Path) -> int:
    counter = LineCounter(path)
    try:
        return counter.poll()
    finally:
        counter.close()


def output_of(program: Program, workdir: Path) -> Path:
    return program.output or workdir / f"{program.name.replace(' ', '_')}.jsonl"


def measure(
    program: Program, log: Path, lines: int, workdir: Path, keep_output: bool = False
) -> Result:
    """Run one program over `log`, timed until it exits (a daemon: until its output holds
    `lines` lines, then it is stopped). The output is removed unless `keep_output`."""
    output = output_of(program, workdir)
    errors = workdir / "stderr.txt"
    maxrss_file = workdir / "maxrss.txt"
    output.unlink(missing_ok=True)
    maxrss_file.unlink(missing_ok=True)
    wrapper = (str(TIME), "-f", "%M", "-o", str(maxrss_file)) if TIME.exists() else ()
    with contextlib.ExitStack() as stack:
        stdin = stack.enter_context(open(log, "rb")) if program.stdin_is_log else None
        stdout = subprocess.DEVNULL if program.daemon else stack.enter_context(open(output, "wb"))
        stderr = stack.enter_context(open(errors, "wb"))
        started = time.perf_counter()
        proc = subprocess.Popen(
            (*wrapper, *program.argv), stdin=stdin or subprocess.DEVNULL, stdout=stdout,
            stderr=stderr, env=program.env, cwd=program.cwd,
        )  # fmt: skip
        sampler = MemorySampler(proc.pid, skip_root=bool(wrapper))
        sampler.start()
        if program.daemon:
            counter = LineCounter(output)
            last_progress, seen = time.monotonic(), 0
            while counter.poll() < lines and proc.poll() is None:
                if counter.count != seen:
                    last_progress, seen = time.monotonic(), counter.count
                elif time.monotonic() - last_progress > STALL_SECONDS:
                    break  # stuck: stopped below, and the short output is reported
                time.sleep(0.01)
            seconds = time.perf_counter() - started
            counter.close()
            stop_daemon(proc, wrapped=bool(wrapper))
        else:
            proc.wait()
            seconds = time.perf_counter() - started
        sampler.stop()
    if proc.returncode != 0:
        tail = errors.read_text(errors="replace")[-2000:]
        raise SystemExit(f"{program.name} failed (exit {proc.returncode}):\n{tail}")
    lines_out = count_lines(output)
    if not keep_output:
        output.unlink()
    peak_rss = read_maxrss(maxrss_file) if wrapper else sampler.peak_hwm_kib
    return Result(
        program.name,
        seconds,
        lines_out,
        log.stat().st_size,
        peak_rss,
        sampler.peak_pss_kib,
        sampler.trace,
    )


def read_maxrss(path: Path) -> int:
    """GNU time's %M (KiB); it is the last word, after a "Command exited with ..." line."""
    return int(path.read_text().split()[-1])


def stop_daemon(proc: subprocess.Popen, wrapped: bool) -> None:
    """SIGTERM to the daemon (the wrapper's child when wrapped), SIGKILL after 20 s."""
    if proc.poll() is not None:
        return
    target = proc.pid
    if wrapped:
        children = _children_of().get(proc.pid, [])
        target = children[0] if children else proc.pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(target, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(target, signal.SIGKILL)
        proc.wait()


# --- the contenders -----------------------------------------------------------------------


def sidecar_program(s: Settings, log: Path, workers: int = 1) -> Program:
    if s.now_tree is not None:  # --rev: that worktree's package, as for the baseline
        argv = [str(s.python), "-m", "sidecar", "pipe", "--geoip", str(s.geoip)]
    else:
        argv = [str(s.sidecar), "pipe", "--geoip", str(s.geoip)]
    name = "sidecar pipe"
    if workers > 1:
        argv += ["--workers", str(workers)]
        name += f" --workers {workers}"
    if s.now_tree is not None:
        return Program(name, (*argv, str(log)), env=env_for(s.now_tree), cwd=s.now_tree)
    return Program(name, (*argv, str(log)))


def baseline_program(s: Settings, log: Path) -> Program:
    """sidecar at --baseline REV: this venv's Python importing sidecar from the REV worktree
    (its working directory too, so `-m` does not put this checkout first on sys.path)."""
    assert s.baseline is not None
    argv = (str(s.python), "-m", "sidecar", "pipe", "--geoip", str(s.geoip), str(log))
    return Program(f"sidecar pipe @{s.baseline_rev}", argv, env=env_for(s.baseline), cwd=s.baseline)


def python_peer_program(s: Settings) -> Program:
    argv = (str(s.python), str(BENCH / "peer_python.py"), "--geoip", str(s.geoip))
    return Program("python peer", argv, stdin_is_log=True)


def syslog_ng_program(s: Settings, log: Path, scratch: Path) -> Program:
    assert s.syslog_ng is not None
    scratch.mkdir(parents=True, exist_ok=True)
    for leftover in scratch.iterdir():  # a fresh persist file: read the log from its start
        leftover.unlink()
    output = scratch / "syslog-ng.jsonl"
    env = dict(
        os.environ,
        BENCH_INPUT=str(log.resolve()),
        BENCH_OUTPUT=str(output),
        BENCH_GEOIP=str(s.geoip.resolve()),
        BENCH_FETCH_LIMIT="1000",
        BENCH_WINDOW="10000",
    )
    argv = (
        str(s.syslog_ng), "-F", "--no-caps", "-f", str(BENCH / "syslog-ng.conf"),
        "-R", str(scratch / "persist"), "-p", str(scratch / "pid"), "-c", str(scratch / "ctl"),
    )  # fmt: skip
    return Program("syslog-ng", argv, env=env, output=output, daemon=True)


# --- agreement ------------------------------------------------------------------------------


def records_of(program: Program, log: Path, lines: int, workdir: Path) -> list[dict]:
    """Run a program over `log` and read back its records."""
    measure(program, log, lines, workdir, keep_output=True)
    output = output_of(program, workdir)
    with open(output, "rb") as fh:
        records = [orjson.loads(line) for line in fh]
    output.unlink()
    return records


_MASKER = Masker()  # sidecar's own defaults: IPv4 /24, IPv6 /48


def strike_ip(line: str) -> str:
    """The log line with its client address struck as sidecar strikes it, for printing."""
    token, sep, rest = line.partition(" ")
    addr = parse_ip(token)
    if addr is None:
        return "<address> " + rest
    return _MASKER.mask(addr) + sep + rest


def compare(
    reference: list[dict],
    other: list[dict],
    sample_lines: list[str],
    other_name: str = "peer",
    examples: int = 3,
    fields: Sequence[str] = COMPARED_FIELDS,
) -> tuple[dict[str, int], list[str]]:
    """Mismatch counts per field, and a few examples (input line with its IP struck)."""
    mismatches = dict.fromkeys(fields, 0)
    shown: list[str] = []
    for i, (ref, rec) in enumerate(zip(reference, other, strict=False)):
        for name in fields:
            if ref.get(name) != rec.get(name):
                mismatches[name] += 1
                if len(shown) < examples:
                    shown.append(
                        f"line {i + 1}, {name}: sidecar {ref.get(name)!r}, "
                        f"{other_name} {rec.get(name)!r}\n      {strike_ip(sample_lines[i])[:180]}"
                    )
    return mismatches, shown


def agreement(s: Settings, sample: Path) -> None:
    lines = sample.read_text(encoding="utf-8", errors="replace").splitlines()
    print(
        f"\n== Agreement on the first {len(lines):,} lines (fields: {', '.join(COMPARED_FIELDS)})"
    )
    reference = records_of(sidecar_program(s, sample), sample, len(lines), s.workdir)
    print(f"  sidecar pipe: {len(reference):,} records")
    peers = [python_peer_program(s)]
    if s.syslog_ng is not None:
        peers.append(syslog_ng_program(s, sample, s.workdir / "syslog-ng-sample"))
    for program in peers:
        records = records_of(program, sample, len(lines), s.workdir)
        counts, examples = compare(reference, records, lines, program.name)
        total = sum(counts.values())
        print(f"  {program.name}: {len(records):,} records, {total:,} mismatching fields")
        if len(records) != len(reference):
            print(f"    record count differs: {len(records):,} vs sidecar's {len(reference):,}")
        print("    " + "  ".join(f"{name}={n}" for name, n in counts.items()))
        for example in examples:
            print(f"    e.g. {example}")
    if s.baseline is not None:  # every field: what the change since REV does to the records
        program = baseline_program(s, sample)
        records = records_of(program, sample, len(lines), s.workdir)
        fields = sorted({k for r in (*reference[:1], *records[:1]) for k in r})
        counts, examples = compare(reference, records, lines, program.name, fields=fields)
        changed = {name: n for name, n in counts.items() if n}
        print(
            f"  {program.name}: {len(records):,} records, "
            f"{sum(changed.values()):,} fields differ from now's (all {len(fields)} fields)"
        )
        if changed:
            print("    " + "  ".join(f"{name}={n}" for name, n in changed.items()))
        for example in examples:
            print(f"    e.g. {example}")


# --- the run ------------------------------------------------------------------------------


def ensure_log(s: Settings, lines: int) -> Path:
    """The generated log of `lines` lines (made once, then reused from bench/out/, which
    main() creates)."""
    version = hashlib.sha256((BENCH / "generate.py").read_bytes()).hexdigest()[:8]
    stem = f"access-{lines}-seed{s.seed}"
    path = OUT / f"{stem}-{version}.log"
    if path.exists():
        return path
    for stale in OUT.glob(f"{stem}-*.log"):  # made by an older generate.py
        stale.unlink()
    print(f"generating {path.relative_to(ROOT)} ...", flush=True)
    started = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        subprocess.run(
            [str(s.python), str(BENCH / "generate.py"), "--lines", str(lines), "--seed",
             str(s.seed)],
            stdout=out, check=True,
        )  # fmt: skip
    tmp.rename(path)
    print(f"  {path.stat().st_size / MIB:,.0f} MiB in {time.perf_counter() - started:.0f} s")
    return path


def ensure_sample(log: Path, lines: int) -> Path:
    path = log.with_name(log.stem + f"-head{lines}.log")
    if not path.exists():
        with open(log, "rb") as src, open(path, "wb") as dst:
            for _, line in zip(range(lines), src, strict=False):
                dst.write(line)
    return path


def fastest(programs: Sequence[Callable[[], Program]], log: Path, s: Settings) -> list[Result]:
    """Each program run `s.repeat` times, interleaved; the fastest run of each is kept."""
    runs: dict[int, list[Result]] = {i: [] for i in range(len(programs))}
    for round_ in range(s.repeat):
        for i, make in enumerate(programs):
            program = make()
            print(f"  [{round_ + 1}/{s.repeat}] {program.name} ...", end=" ", flush=True)
            result = measure(program, log, s.lines, s.workdir)
            print(f"{result.seconds:.1f} s, {result.lines_per_second:,.0f} lines/s", flush=True)
            if result.lines_out != s.lines:
                raise SystemExit(f"{program.name} wrote {result.lines_out:,} of {s.lines:,} lines")
            runs[i].append(result)
    fastest_runs = []
    for rs in runs.values():
        best = min(rs, key=lambda r: r.seconds)  # the first of equals, as before
        best.runs = [r.seconds for r in rs]
        fastest_runs.append(best)
    return fastest_runs


def mib(kib: int) -> str:
    return f"{kib / 1024:,.0f}"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(results: list[Result], big: Result | None, s: Settings) -> None:
    by_name = {r.name: r for r in results}
    single = by_name["sidecar pipe"]
    workers = by_name["sidecar pipe --workers 2"]
    peer = by_name["python peer"]
    syslog_ng = by_name.get("syslog-ng")

    print(f"\n== Results: {s.lines:,} lines, {single.input_bytes / MIB:,.0f} MiB of input")
    header = (
        f"{'program':<30} {'seconds':>8} {'lines/s':>10} {'MiB/s':>7} "
        f"{'peak RSS':>9} {'PSS sum':>8} {'vs syslog-ng':>13} {'vs python':>10}"
    )
    print(header)
    print("-" * len(header))
    rows = [*results, *([big] if big else [])]
    for r in rows:
        vs_sng = f"{r.lines_per_second / syslog_ng.lines_per_second:.2f}x" if syslog_ng else "n/a"
        vs_py = f"{r.lines_per_second / peer.lines_per_second:.2f}x"
        print(
            f"{r.name:<30} {r.seconds:>8.1f} {r.lines_per_second:>10,.0f} "
            f"{r.mib_per_second:>7.1f} {mib(r.peak_rss_kib):>5} MiB {mib(r.peak_pss_kib):>4} MiB "
            f"{vs_sng:>13} {vs_py:>10}"
        )
    print(
        "peak RSS: the largest single process (GNU time %M; for --workers 2 the largest of the\n"
        "parent and its workers). PSS sum: all processes of the program together, sampled every\n"
        "50 ms."
    )
    if s.repeat > 1:
        for r in results:
            runs = ", ".join(f"{t:.1f}" for t in r.runs)
            print(f"  {r.name}: runs {runs} s (fastest kept)")

    baseline = next((r for r in results if r.name.startswith("sidecar pipe @")), None)
    if baseline is not None:
        ratio = single.lines_per_second / baseline.lines_per_second
        print(
            f"\n== Now against {baseline.name.removeprefix('sidecar pipe ')} (same run)\n"
            f"  sidecar pipe now / {baseline.name}: {ratio:.2f}x lines/s "
            f"({(ratio - 1) * 100:+.0f}%); peak RSS {mib(single.peak_rss_kib)} vs "
            f"{mib(baseline.peak_rss_kib)} MiB"
        )

    print("\n== Targets")
    if syslog_ng is not None:
        ratio_w = workers.lines_per_second / syslog_ng.lines_per_second
        ratio_1 = single.lines_per_second / syslog_ng.lines_per_second
        print(
            f"  sidecar --workers 2 >= {TARGET_WORKERS_VS_SYSLOG_NG}x syslog-ng: {ratio_w:.2f}x "
            f"{verdict(ratio_w >= TARGET_WORKERS_VS_SYSLOG_NG)}"
        )
        print(
            f"  sidecar single worker >= {TARGET_SINGLE_VS_SYSLOG_NG}x syslog-ng: {ratio_1:.2f}x "
            f"{verdict(ratio_1 >= TARGET_SINGLE_VS_SYSLOG_NG)}"
        )
    else:
        print("  vs syslog-ng: not measured (syslog-ng not available)")
    for r in [single, workers, *([big] if big else [])]:
        rss, pss = r.peak_rss_kib / 1024, r.peak_pss_kib / 1024
        print(
            f"  {r.name} peak RSS < {TARGET_RSS_MIB} MiB: largest process {rss:,.0f} MiB "
            f"{verdict(rss < TARGET_RSS_MIB)}, all processes (PSS) {pss:,.0f} MiB "
            f"{verdict(pss < TARGET_RSS_MIB)}"
        )
    if big is not None:
        growth = big.peak_rss_kib / single.peak_rss_kib
        print(
            f"  RSS flat from {s.lines:,} to {s.big_lines:,} lines: {mib(single.peak_rss_kib)} -> "
            f"{mib(big.peak_rss_kib)} MiB ({growth:.2f}x)"
        )
        print(f"  PSS of the {s.big_lines:,}-line run at each tenth of it: {deciles(big)} MiB")


def deciles(result: Result) -> str:
    """The highest PSS sum within each tenth of a run, in MiB."""
    trace = result.pss_trace
    if len(trace) < 10:
        return "n/a (too few samples)"
    tenths = [trace[len(trace) * i // 10 : len(trace) * (i + 1) // 10] for i in range(10)]
    return " ".join(mib(max(part)) for part in tenths)


def first_line(done: subprocess.CompletedProcess[str]) -> str:
    """The first line a command printed (stdout, else stderr); "" if it failed."""
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if done.returncode == 0 and lines else ""


def describe_machine(s: Settings, syslog_ng_version: str) -> None:
    def first_line_of(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False)
        except OSError:
            return ""
        return first_line(done)

    commit = first_line_of(["git", "rev-parse", "--short", "HEAD"])
    dirty = first_line_of(["git", "status", "--porcelain", "--", "sidecar"])
    if s.now_tree is not None:
        print(f"sidecar: at commit {s.now_rev} (--rev; git worktree {s.now_tree})")
    else:
        print(f"sidecar: {first_line_of([str(s.sidecar), '--version'])} at commit {commit}"
              f"{' (sidecar/ has uncommitted changes)' if dirty else ''}")  # fmt: skip
    if s.baseline is not None:
        print(f"baseline: sidecar at {s.baseline_rev} (git worktree {s.baseline})")
    if s.syslog_ng is not None:
        print(f"syslog-ng: {syslog_ng_version}")
    print(
        f"python: {sys.version.split()[0]}; {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )


def find_syslog_ng(path: str) -> tuple[Path | None, str, str]:
    """(the binary or None, why not, the first line of its --version)."""
    binary = shutil.which(path)
    if binary is None:
        return None, f"{path} not found", ""
    if not SYSLOG_NG_SCL.exists():
        return None, f"{SYSLOG_NG_SCL} missing (apt-get install syslog-ng-scl)", ""
    version = subprocess.run([binary, "--version"], capture_output=True, text=True)
    if "geoip2" not in version.stdout:
        return None, "syslog-ng has no geoip2 module (apt-get install syslog-ng-mod-geoip2)", ""
    return Path(binary), "", first_line(version)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=1_000_000, help="lines of the timed log")
    p.add_argument("--big-lines", type=int, default=5_000_000,
                   help="lines of the RSS check log (0: skip)")  # fmt: skip
    p.add_argument("--seed", type=int, default=1, help="generator seed")
    p.add_argument("--sample", type=int, default=SAMPLE_LINES,
                   help=f"lines of the agreement check (default {SAMPLE_LINES:,})")  # fmt: skip
    p.add_argument("--repeat", type=int, default=1, help="timed runs per program (fastest kept)")
    p.add_argument("--geoip", type=Path, default=ROOT / "data" / "country.mmdb")
    p.add_argument("--sidecar", type=Path, default=Path(sys.executable).parent / "sidecar")
    p.add_argument("--syslog-ng", default="/usr/sbin/syslog-ng")
    p.add_argument("--baseline", default="", metavar="REV",
                   help="also time sidecar at REV (a git worktree), e.g. fc5aa7b")  # fmt: skip
    p.add_argument("--rev", default="", metavar="REV",
                   help="time sidecar at REV (a git worktree), not the working tree")  # fmt: skip
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    syslog_ng, why_not, syslog_ng_version = find_syslog_ng(args.syslog_ng)
    if not args.geoip.exists():
        raise SystemExit(f"{args.geoip} not found: build it with `sidecar geoip build`")
    OUT.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="run-", dir=OUT))
        baseline = stack.enter_context(baseline_tree(args.baseline)) if args.baseline else None
        now_tree = stack.enter_context(baseline_tree(args.rev)) if args.rev else None
        s = Settings(
            lines=args.lines,
            big_lines=args.big_lines,
            seed=args.seed,
            repeat=max(1, args.repeat),
            geoip=args.geoip.resolve(),
            sidecar=args.sidecar,
            python=Path(sys.executable),
            syslog_ng=syslog_ng,
            workdir=Path(scratch),
            baseline=baseline,
            baseline_rev=short(args.baseline) if args.baseline else "",
            now_tree=now_tree,
            now_rev=short(args.rev) if args.rev else "",
        )
        describe_machine(s, syslog_ng_version)
        if syslog_ng is None:
            print(f"syslog-ng: skipped ({why_not})")
        log = ensure_log(s, s.lines)
        big_log = ensure_log(s, s.big_lines) if s.big_lines else None
        agreement(s, ensure_sample(log, min(args.sample, s.lines)))

        print(f"\n== Timing on {log.relative_to(ROOT)}")
        programs: list[Callable[[], Program]] = [
            lambda: sidecar_program(s, log),
            *([lambda: baseline_program(s, log)] if s.baseline is not None else []),
            lambda: sidecar_program(s, log, workers=2),
            lambda: python_peer_program(s),
        ]
        if syslog_ng is not None:
            programs.append(lambda: syslog_ng_program(s, log, s.workdir / "syslog-ng"))
        results = fastest(programs, log, s)

        big = None
        if big_log is not None:
            print(f"\n== RSS check on {big_log.relative_to(ROOT)}")
            program = sidecar_program(s, big_log)
            print(f"  {program.name} ...", end=" ", flush=True)
            big = measure(program, big_log, s.big_lines, s.workdir)
            big.name = f"sidecar pipe, {s.big_lines:,} lines"
            print(f"{big.seconds:.1f} s, {big.lines_per_second:,.0f} lines/s")
            if big.lines_out != s.big_lines:
                raise SystemExit(f"sidecar wrote {big.lines_out:,} of {s.big_lines:,} lines")
        report(results, big, s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
