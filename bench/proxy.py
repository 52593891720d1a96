"""`sidecar proxy` against bare `mitmdump --mode reverse:...`, both in front of the same nginx.

    .venv/bin/python bench/proxy.py                       # everything, 3 rounds, ~5.5 min
    .venv/bin/python bench/proxy.py --secs 2 --repeat 1 --no-segments   # a quick look
    .venv/bin/python bench/proxy.py --profile 10          # and py-spy on sidecar at c=16

One real nginx on loopback (a temporary prefix, `access_log off`, one worker) is the origin:
`/small.txt` (1 KiB), `/segment.ts` (4 MiB) and `location = /beacon { return 204; }`. In front
of it, started once for the whole run and each from its own temporary working directory:
`sidecar proxy` with a jsonl sink (storage is not what is measured), a second `sidecar proxy`
with the default SQLite sink (one row, to show the storage cost), `mitmdump` with
`stream_large_bodies=1m` (the peer: as `sidecar proxy` streams from 1 MiB) and `mitmdump`
buffering whole bodies (segments only: it is the other way mitmdump can be run for them).

wrk (`-c C -t min(C,2)`, `--secs` each) measures, round by round and in alternating order:
1. the small object at each `--connections`, through each proxy and from nginx directly
   (the ceiling): requests/s, p50 and p99 latency (wrk's own percentiles, in microseconds);
2. the 4 MiB segment at c=1 and c=4 through each proxy: MiB/s;
3. `GET /beacon?event=play&...` at c=16 and c=64: answered by sidecar itself, by nginx's
   `return 204`, and by mitmdump forwarding it to that `return 204`.
Peak RSS is each proxy's VmHWM (/proc/PID/status) at the end. Every figure is printed as a
ratio to its peer measured in the same run, never asserted against a time: these machines are
shared (2 cores) and drift 2x within a session. Each figure is the best of `--repeat` rounds.

Checked before timing: a body through each proxy is byte-identical to nginx's file, and a
beacon answered by sidecar never reaches the origin (nginx's stub_status counter). Checked
after: sidecar exits 0 on SIGTERM, and the records it wrote match the requests wrk counted
through it (wrk does not count the exchanges in flight when it stops; sidecar records them).
The table goes to stdout (markdown) and, with every run, to bench/out/proxy-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.nginx import NGINX, Nginx, free_port  # noqa: E402

BIN = Path(sys.executable).parent
GEOIP = ROOT / "data" / "country.mmdb"
OUT = ROOT / "bench" / "out"
SMALL, SEGMENT = "/small.txt", "/segment.ts"
SMALL_BYTES, SEGMENT_BYTES = 1024, 4 << 20
BEACON = "/beacon?event=play&media=m1&position_secs=12"
SEGMENT_CONNECTIONS = (1, 4)
BEACON_CONNECTIONS = (16, 64)
SQLITE_CONNECTIONS = 16
# wrk calls done() once, with every thread's figures merged; latency is in microseconds
WRK_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d %d %.0f %.0f\\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""
ORIGIN = """
access_log off; sendfile on; tcp_nodelay on; keepalive_requests 1000000; keepalive_timeout 300s;
server { listen 127.0.0.1:PORT; root PREFIX/www; location = /beacon { return 204; } }
server { listen 127.0.0.1:SPORT; location / { stub_status; } }
"""


class Origin(Nginx):
    """The tests' nginx helper, with room for c=64 plus a proxy's 64 upstream connections."""

    def __init__(self, prefix: Path) -> None:
        self.status_port = free_port()
        super().__init__(prefix, ORIGIN.replace("SPORT", str(self.status_port)))
        conf = prefix / "nginx.conf"
        text = conf.read_text()
        assert "worker_connections 64;" in text, "tests/e2e/nginx.py changed its events {}"
        conf.write_text(text.replace("worker_connections 64;", "worker_connections 1024;"))
        www = prefix / "www"
        line = b"0123456789abcdef" * 3 + b"-sidecar-bench-proxy-small-object\n"  # 82 bytes
        (www / "small.txt").write_bytes((line * 13)[:SMALL_BYTES])
        (www / "segment.ts").write_bytes(os.urandom(SEGMENT_BYTES))
        self.files = {
            SMALL: (www / "small.txt").read_bytes(),
            SEGMENT: (www / "segment.ts").read_bytes(),
        }

    def requests(self) -> int:
        """nginx's stub_status request counter (the status request itself counts one)."""
        _, body = get(self.status_port, "/")
        return int(body.decode().split("\n")[2].split()[2])


def get(port: int, target: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", target, headers={"User-Agent": "bench/proxy.py"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Program:
    """A proxy process in its own temporary working directory, stderr to a log there."""

    def __init__(
        self, name: str, cmd: list[str], work: Path, port: int, env: dict | None = None
    ) -> None:
        self.name, self.cmd, self.work, self.port = name, cmd, work, port
        work.mkdir(parents=True)
        self.log_path = work / "stderr.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        self.hwm_kib = 0
        self.rc: int | None = None

    def wait_ready(self, limit_secs: float = 60.0) -> None:
        deadline = time.monotonic() + limit_secs
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.proc.returncode}); see {self.log_path}"
                )
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen within {limit_secs:.0f} s")

    def status(self, key: str) -> int:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def stop(self, limit_secs: float = 60.0) -> int:
        if self.rc is not None:
            return self.rc
        self.hwm_kib = self.status("VmHWM")  # the peak over the process's whole life
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.rc = self.proc.wait(limit_secs)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.rc = self.proc.wait()
        self._log.close()
        return self.rc


def sidecar_cmd(exe: str, port: int, origin: int, sink: str) -> list[str]:
    where = f"--listen 127.0.0.1:{port} --upstream http://127.0.0.1:{origin}".split()
    return [exe, "proxy", *where, "--sink", sink, "--geoip", str(GEOIP), "--http", ""]


def mitmdump_cmd(exe: str, port: int, origin: int, confdir: Path, stream: bool) -> list[str]:
    opts = ["termlog_verbosity=error", "flow_detail=0", "connection_strategy=lazy"]
    opts += [f"confdir={confdir}"] + (["stream_large_bodies=1m"] if stream else [])
    where = f"--mode reverse:http://127.0.0.1:{origin} --listen-host 127.0.0.1 --listen-port {port}"
    return [exe, *where.split(), "-q", *(x for o in opts for x in ("--set", o))]


@dataclass
class Run:
    requests: int
    secs: float
    bytes: int
    errors: dict[str, int]
    p50_us: float
    p99_us: float

    @property
    def rate(self) -> float:
        return self.requests / self.secs

    @property
    def mib_s(self) -> float:
        return self.bytes / self.secs / (1 << 20)


def wrk(port: int, target: str, connections: int, secs: float, script: Path) -> Run:
    cmd = ["wrk", f"-t{min(connections, 2)}", f"-c{connections}", f"-d{secs:g}s"]
    cmd += ["--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}{target}"]
    return wrk_result(subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 60).stdout)


def wrk_result(out: str) -> Run:
    """The figures the Lua done() printed."""
    m = re.search(r"^RESULT ((?:\S+ ?){10})$", out, re.M)
    if m is None:
        raise RuntimeError(f"wrk printed no RESULT line: {out[-500:]!r}")
    n = [float(x) for x in m.group(1).split()]
    errors = dict(
        zip(("connect", "read", "write", "status", "timeout"), map(int, n[3:8]), strict=True)
    )
    return Run(int(n[0]), n[1] / 1e6, int(n[2]), errors, n[8], n[9])


@dataclass
class Cell:
    """One (test, concurrency, program): its runs, one per round."""

    test: str
    connections: int
    program: str
    runs: list[Run] = field(default_factory=list)

    def best(self, attr: str) -> float:
        values = [getattr(r, attr) for r in self.runs]
        return min(values) if attr.endswith("_us") else max(values)


def plan(args: argparse.Namespace) -> list[tuple[str, int, list[str]]]:
    """(test, connections, programs) in the order a round runs them."""
    steps = []
    for c in args.connections:
        progs = ["nginx", "sidecar", "mitmdump"]
        if c == SQLITE_CONNECTIONS or (
            SQLITE_CONNECTIONS not in args.connections
            and c == args.connections[len(args.connections) // 2]
        ):
            progs.insert(2, "sidecar-sqlite")
        steps.append(("small", c, progs))
    if args.segments:
        for c in SEGMENT_CONNECTIONS:
            steps.append(("segment", c, ["sidecar", "mitmdump", "mitmdump-buffered"]))
    if args.beacons:
        for c in BEACON_CONNECTIONS:
            steps.append(("beacon", c, ["nginx", "sidecar", "mitmdump"]))
    return steps


TARGETS = {"small": SMALL, "segment": SEGMENT, "beacon": BEACON}


def check_bodies(origin: Origin, programs: dict[str, Program]) -> list[str]:
    """Bodies through each proxy are nginx's file, byte for byte; sidecar answers a beacon
    without contacting the origin, mitmdump forwards it to nginx's 204."""
    failed = []
    for name, prog in programs.items():
        for target, want in origin.files.items():
            status, body = get(prog.port, target)
            if status != 200 or body != want:
                failed.append(
                    f"{name} {target}: status {status}, {len(body):,} bytes, "
                    f"{'identical' if body == want else 'different'}"
                )
        before = origin.requests()
        status, body = get(prog.port, BEACON)
        reached = origin.requests() - before - 1
        want_reached = 0 if name.startswith("sidecar") else 1
        if status != 204 or body or reached != want_reached:
            failed.append(f"{name} beacon: status {status}, the origin saw {reached} request(s)")
    return failed


def count_records(prog: Program) -> int:
    """Records a sidecar wrote: lines of records.jsonl (and rotated copies), or SQLite rows."""
    db = prog.work / "analytics.db"
    if db.exists():
        with contextlib.closing(sqlite3.connect(db)) as conn:
            return conn.execute("SELECT count(*) FROM requests").fetchone()[0]
    n = 0
    for path in prog.work.glob("records.jsonl*"):
        with path.open("rb") as fh:
            n += sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    return n


@dataclass
class Profile:
    top: list[tuple[float, str]]  # (own %, function), most own time first
    ours: list[tuple[float, str]]  # (inclusive %, function) of sidecar's own code
    ours_pct: float  # samples with any frame of sidecar's own code (hooks, scrubbing, records)
    samples: int
    run: Run
    raw: Path  # py-spy's collapsed stacks (flamegraph.pl input)


def _below_loop(frames: list[str]) -> list[str]:
    """The frames under the event loop's runner: the command's own frames above it hold every
    sample. A nonblocking stack can be torn at its root (no `<module>` frame): all of it is."""
    for i, f in enumerate(frames):
        if "asyncio/" in f:
            return frames[i + 1 :]
    return [] if frames[0].startswith("<module>") else frames


def profile(py_spy: str, port: int, pid: int, secs: float, script: Path, work: Path) -> Profile:
    """py-spy --nonblocking on `pid` while wrk -c16 fetches the small object: the functions
    with the most own time (leaf samples, line numbers merged) and the share of samples in
    sidecar's own code. Without --nonblocking py-spy stops the process 200 times a second,
    which slows it down more than it sees; nonblocking stacks can be torn, hence "about"."""
    raw = work / "profile.txt"
    url = f"http://127.0.0.1:{port}{SMALL}"
    wrk_cmd = ["wrk", "-t2", "-c16", f"-d{secs + 2:g}s", "--timeout", "10s", "-s", str(script)]
    wrk_proc = subprocess.Popen([*wrk_cmd, url], stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    spy = [py_spy, "record", "--nonblocking", "--rate", "200", "--duration", f"{int(secs)}"]
    spy += ["--format", "raw", "--output", str(raw), "--pid", str(pid)]
    subprocess.run(spy, check=True, capture_output=True)
    run = wrk_result(wrk_proc.communicate(timeout=secs + 60)[0])
    own: collections.Counter[str] = collections.Counter()
    inc: collections.Counter[str] = collections.Counter()
    in_ours = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        n = int(count)
        own[frames[-1] or "(no frame)"] += n
        ours = {f for f in _below_loop(frames) if "sidecar/" in f}
        in_ours += n if ours else 0
        inc.update(dict.fromkeys(ours, n))
    total = sum(own.values()) or 1
    return Profile(
        [(100 * k / total, f) for f, k in own.most_common(15)],
        [(100 * k / total, f) for f, k in inc.most_common(5)],
        100 * in_ours / total,
        total,
        run,
        raw,
    )


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def report(
    cells: dict,
    args: argparse.Namespace,
    programs: dict[str, Program],
    checks: list[str],
) -> tuple[list[str], dict]:
    """The markdown lines, and the summary figures for the JSON."""
    lines: list[str] = []
    summary: dict = {"small": {}, "segment": {}, "beacon": {}, "rss_mib": {}}

    def cell(test: str, c: int, prog: str) -> Cell | None:
        return cells.get((test, c, prog))

    def best(test: str, c: int, prog: str, attr: str = "rate") -> float:
        x = cell(test, c, prog)
        return x.best(attr) if x is not None and x.runs else 0.0

    lines += [
        "",
        f"### Small object ({SMALL_BYTES:,} B `{SMALL}`): requests/s",
        "",
        "| c | nginx direct | sidecar proxy | mitmdump | sidecar / mitmdump "
        "(target >= 1.5x) | sidecar / nginx |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for c in args.connections:
        n, s, m = (best("small", c, p) for p in ("nginx", "sidecar", "mitmdump"))
        mark = "" if not m else (" ok" if s / m >= 1.5 else " **below**")
        lines.append(
            f"| {c} | {fmt_rate(n)} | {fmt_rate(s)} | {fmt_rate(m)} | "
            f"{ratio(s, m)}{mark} | {ratio(s, n)} |"
        )
        summary["small"][c] = {
            "nginx": n,
            "sidecar": s,
            "mitmdump": m,
            "sidecar_over_mitmdump": s / m if m else None,
        }
    sq = next((k for k in cells if k[0] == "small" and k[2] == "sidecar-sqlite"), None)
    if sq is not None:
        c = sq[1]
        q, s, m = (best("small", c, p) for p in ("sidecar-sqlite", "sidecar", "mitmdump"))
        lines.append(
            f"| {c}, sidecar with the default SQLite sink | | {fmt_rate(q)} | | "
            f"{ratio(q, m)} | {ratio(q, s)} of sidecar with jsonl |"
        )
        summary["small"]["sqlite"] = {
            "connections": c,
            "sidecar_sqlite": q,
            "over_jsonl": q / s if s else None,
        }

    lines += [
        "",
        "### Small object: latency p50 / p99 (µs, wrk's percentiles)",
        "",
        "| c | nginx direct | sidecar proxy | mitmdump |",
        "|---:|---:|---:|---:|",
    ]
    for c in args.connections:
        row = [
            f"{best('small', c, p, 'p50_us'):,.0f} / {best('small', c, p, 'p99_us'):,.0f}"
            for p in ("nginx", "sidecar", "mitmdump")
        ]
        lines.append(f"| {c} | " + " | ".join(row) + " |")
        for p in ("nginx", "sidecar", "mitmdump"):
            summary["small"][c][f"{p}_p50_us"] = best("small", c, p, "p50_us")
            summary["small"][c][f"{p}_p99_us"] = best("small", c, p, "p99_us")
    c1 = min(args.connections)
    base = best("small", c1, "nginx", "p50_us")
    added = {p: (best("small", c1, p, "p50_us") - base) / 1000 for p in ("sidecar", "mitmdump")}
    lines += [
        "",
        f"Added p50 at c={c1} over nginx direct: sidecar proxy "
        f"**{added['sidecar']:.2f} ms** (target <= 1 ms"
        f"{': ok' if added['sidecar'] <= 1 else ': **above**'}), mitmdump "
        f"{added['mitmdump']:.2f} ms.",
    ]
    summary["small"]["added_p50_ms"] = {"connections": c1, **added}

    if args.segments:
        lines += [
            "",
            f"### Segment ({SEGMENT_BYTES >> 20} MiB `{SEGMENT}`): MiB/s",
            "",
            "| c | sidecar proxy | mitmdump stream_large_bodies=1m | mitmdump buffered | "
            "sidecar / faster mitmdump (target >= 0.9x) |",
            "|---:|---:|---:|---:|---:|",
        ]
        for c in SEGMENT_CONNECTIONS:
            s, m, b = (
                best("segment", c, p, "mib_s") for p in ("sidecar", "mitmdump", "mitmdump-buffered")
            )
            peer = max(m, b)
            mark = " ok" if peer and s / peer >= 0.9 else " **below**"
            lines.append(f"| {c} | {s:,.0f} | {m:,.0f} | {b:,.0f} | {ratio(s, peer)}{mark} |")
            summary["segment"][c] = {
                "sidecar": s,
                "mitmdump": m,
                "mitmdump_buffered": b,
                "sidecar_over_best_mitmdump": s / peer if peer else None,
            }

    if args.beacons:
        lines += [
            "",
            f"### Beacons (`GET {BEACON}`): answered/s",
            "",
            "| c | sidecar proxy (answers itself) | nginx `return 204` | mitmdump -> nginx "
            "204 | sidecar / nginx | sidecar / mitmdump |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for c in BEACON_CONNECTIONS:
            n, s, m = (best("beacon", c, p) for p in ("nginx", "sidecar", "mitmdump"))
            lines.append(
                f"| {c} | {fmt_rate(s)} | {fmt_rate(n)} | {fmt_rate(m)} | "
                f"{ratio(s, n)} | {ratio(s, m)} |"
            )
            summary["beacon"][c] = {"sidecar": s, "nginx": n, "mitmdump": m}

    lines += [
        "",
        "### Peak RSS (VmHWM at the end of the run)",
        "",
        "| program | what it served | peak RSS |",
        "|---|---|---:|",
    ]
    served = {
        "sidecar": "everything",
        "sidecar-sqlite": f"small, c={SQLITE_CONNECTIONS}",
        "mitmdump": "everything",
        "mitmdump-buffered": "segments",
    }
    for name, prog in programs.items():
        lines.append(f"| {LABELS[name]} | {served[name]} | {prog.hwm_kib / 1024:,.0f} MiB |")
        summary["rss_mib"][name] = prog.hwm_kib / 1024
    s, m = programs["sidecar"].hwm_kib, programs["mitmdump"].hwm_kib
    lines += ["", f"sidecar proxy / mitmdump peak RSS: {ratio(s, m)}."]

    lines += ["", "### Runs (requests/s, or MiB/s for segments; every round)", ""]
    for (test, c, prog), x in cells.items():
        attr = "mib_s" if test == "segment" else "rate"
        errs = collections.Counter()
        for r in x.runs:
            errs.update({k: v for k, v in r.errors.items() if v})
        lines.append(
            f"- {test} c={c} {LABELS[prog]}: "
            + ", ".join(fmt_rate(getattr(r, attr)) for r in x.runs)
            + (f" (wrk errors: {dict(errs)})" if errs else "")
        )
    lines += ["", "### Checks", ""] + [f"- {c}" for c in checks]
    return lines, summary


LABELS = {
    "nginx": "nginx direct",
    "sidecar": "sidecar proxy",
    "sidecar-sqlite": "sidecar proxy (sqlite sink)",
    "mitmdump": "mitmdump (stream_large_bodies=1m)",
    "mitmdump-buffered": "mitmdump (buffered)",
}


def start(args: argparse.Namespace, work: Path, origin: int) -> dict[str, Program]:
    """Every proxy, each on a free port from its own working directory, listening."""
    # mitmdump at its best: PYTHONOPTIMIZE=1 skips its __debug__-only type checks and task
    # names; sidecar proxy re-executes itself with -O (cli._optimized_or_reexec), as users run it
    peer_env = {**os.environ, "PYTHONOPTIMIZE": "1"}
    programs: dict[str, Program] = {}
    try:
        for name in LABELS:
            if name == "nginx" or (name == "mitmdump-buffered" and not args.segments):
                continue
            d, port = work / name, free_port()
            if name.startswith("sidecar"):
                sink = "sqlite:" + str(d / "analytics.db") if "sqlite" in name else ""
                cmd = sidecar_cmd(
                    args.sidecar, port, origin, sink or f"jsonl:{d / 'records.jsonl'}"
                )
            else:
                confdir = d / "confdir"  # never ~/.mitmproxy
                cmd = mitmdump_cmd(args.mitmdump, port, origin, confdir, name == "mitmdump")
            env = None if name.startswith("sidecar") else peer_env
            programs[name] = Program(LABELS[name], cmd, d, port, env)
        for prog in programs.values():
            prog.wait_ready()
    except BaseException:
        for prog in programs.values():
            prog.stop()
        raise
    return programs


def rounds(args: argparse.Namespace, ports: dict[str, int], script: Path) -> dict:
    """Every step of the plan, `--repeat` times, the programs of a step in alternating order."""
    steps = plan(args)
    total = sum(len(progs) for _, _, progs in steps) * args.repeat
    minutes = total * (args.secs + 0.3) / 60
    say(f"# {total} wrk runs of {args.secs:g} s ({args.repeat} rounds): about {minutes:.1f} min")
    cells: dict[tuple[str, int, str], Cell] = {}
    for rnd in range(args.repeat):
        for test, c, progs in steps:
            for prog in progs if rnd % 2 == 0 else progs[::-1]:
                run = wrk(ports[prog], TARGETS[test], c, args.secs, script)
                cells.setdefault((test, c, prog), Cell(test, c, prog)).runs.append(run)
                shown = f"{run.mib_s:,.0f} MiB/s" if test == "segment" else f"{run.rate:,.0f}/s"
                say(
                    f"  round {rnd + 1} {test} c={c} {LABELS[prog]}: {shown}, "
                    f"p50 {run.p50_us:,.0f} µs"
                )
    return cells


def record_checks(
    cells: dict, programs: dict[str, Program], extra: dict[str, tuple[int, int]]
) -> list[tuple[bool, str]]:
    """Records each sidecar wrote against the requests wrk counted through it. `extra`:
    (requests, in-flight margin) made outside the rounds (the body checks, the profile)."""
    out = []
    for name in ("sidecar", "sidecar-sqlite"):
        runs = [(r, k[1]) for k, x in cells.items() if k[2] == name for r in x.runs]
        counted = sum(r.requests for r, _ in runs) + extra[name][0]
        margin = sum(c for _, c in runs) + extra[name][1]
        try:
            wrote = count_records(programs[name])
        except sqlite3.Error as exc:
            out.append((False, f"{LABELS[name]}: records not counted ({exc})"))
            continue
        ok = 0 <= wrote - counted <= margin
        out.append(
            (
                ok,
                f"{LABELS[name]} wrote {wrote:,} records; wrk counted {counted:,} "
                f"requests through it (and the body checks); {wrote - counted:,} more, "
                f"in-flight margin {margin:,}: " + ("ok" if ok else "**FAILED**"),
            )
        )
    return out


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--secs", type=float, default=5.0, help="duration of each wrk run")
    p.add_argument("--repeat", type=int, default=3, help="interleaved rounds (best kept)")
    p.add_argument("--connections", default="1,16,64", help="for the small object")
    p.add_argument("--sidecar", default=str(BIN / "sidecar"))
    p.add_argument("--mitmdump", default=str(BIN / "mitmdump"))
    p.add_argument("--no-beacons", dest="beacons", action="store_false")
    p.add_argument("--no-segments", dest="segments", action="store_false")
    p.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECS",
        help="after the rounds, py-spy --nonblocking on sidecar for SECS under wrk "
        "-c16 on the small object: the top 15 functions by own time",
    )
    args = p.parse_args()
    args.connections = [int(c) for c in args.connections.split(",") if c]
    for exe in ("wrk", args.sidecar, args.mitmdump):
        if shutil.which(exe) is None:
            print(f"bench/proxy.py: {exe} is missing", file=sys.stderr)
            return 2
    if not GEOIP.exists():
        print(f"bench/proxy.py: {GEOIP} is missing (sidecar geoip build)", file=sys.stderr)
        return 2
    started = dt.datetime.now(dt.UTC)
    argv = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/proxy.py", *sys.argv[1:]])
    work = Path(tempfile.mkdtemp(prefix="sidecar-bench-proxy-"))
    script = work / "done.lua"
    script.write_text(WRK_LUA)
    checks: list[tuple[bool, str]] = []
    prof: Profile | None = None
    passed = False
    try:
        with Origin(work / "nginx") as origin:
            programs = start(args, work, origin.port)
            try:
                bad = check_bodies(origin, programs)
                checks.append(
                    (
                        not bad,
                        "bodies through each proxy byte-identical to nginx's "
                        "files; a beacon through sidecar never reached the origin, "
                        "through mitmdump it did: "
                        + ("ok" if not bad else "**FAILED**: " + "; ".join(bad)),
                    )
                )
                ports = {"nginx": origin.port, **{n: pr.port for n, pr in programs.items()}}
                cells = rounds(args, ports, script)
                extra = {n: (3, 0) for n in programs}  # check_bodies: 3 requests each
                if args.profile:
                    py_spy = shutil.which("py-spy") or str(BIN / "py-spy")
                    sc = programs["sidecar"]
                    prof = profile(py_spy, sc.port, sc.proc.pid, args.profile, script, work)
                    extra["sidecar"] = (3 + prof.run.requests, 16)
                time.sleep(1)  # in flight when wrk stopped: answered and recorded
            finally:
                for prog in programs.values():
                    prog.stop()
            for name, prog in programs.items():
                if name.startswith("sidecar"):
                    checks.append(
                        (
                            prog.rc == 0,
                            f"{LABELS[name]} exited {prog.rc} on SIGTERM: "
                            + ("ok" if prog.rc == 0 else f"**FAILED** (see {prog.log_path})"),
                        )
                    )
            checks += record_checks(cells, programs, extra)
            errors = [
                f"{k[0]} c={k[1]} {LABELS[k[2]]}: {e}"
                for k, x in cells.items()
                for r in x.runs
                if (e := {n: v for n, v in r.errors.items() if v})
            ]
            checks.append(
                (
                    not errors,
                    "wrk saw no errors (connect, read, write, non-2xx/3xx, "
                    "timeout): " + ("ok" if not errors else "**FAILED**: " + "; ".join(errors)),
                )
            )
        lines, summary = report(cells, args, programs, [c for _, c in checks])
        lines[:0] = header(args, argv, started)
        if prof is not None:
            kept = OUT / f"proxy-{started:%Y%m%dT%H%M%SZ}-profile.txt"
            OUT.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(prof.raw, kept)
            lines += profile_lines(prof)
            lines.append(f"\nCollapsed stacks: {kept.relative_to(ROOT)} (flamegraph.pl input).")
            summary["profile"] = {
                "own": prof.top,
                "sidecar_code": prof.ours,
                "sidecar_code_pct": prof.ours_pct,
                "samples": prof.samples,
                "rate": prof.run.rate,
            }
        print("\n".join(lines))
        out = write_json(argv, started, args, checks, summary, programs, cells)
        say(f"\n(written to {out.relative_to(ROOT)})")
        passed = all(ok for ok, _ in checks)
    finally:
        if passed:
            shutil.rmtree(work, ignore_errors=True)
        else:  # what failed is in the programs' logs
            say(f"bench/proxy.py: kept {work} (each program's stderr.log is in its directory)")
    return 0 if passed else 1


def header(args: argparse.Namespace, argv: str, started: dt.datetime) -> list[str]:
    load = os.getloadavg()
    return [
        f"## bench/proxy.py, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"`{argv}`",
        "",
        f"{os.cpu_count()} cores, load {load[0]:.2f} at the end; {version(args.mitmdump)}, "
        f"{version('nginx')}, {version('wrk')}"
        + "; both proxies with Python's -O (mitmdump by PYTHONOPTIMIZE=1, sidecar by itself)"
        + f". wrk -c C -t min(C,2), {args.secs:g} s a run; {args.repeat} interleaved rounds, "
        "each figure the best of them (highest rate, lowest latency, taken separately).",
    ]


def profile_lines(prof: Profile) -> list[str]:
    lines = [
        "",
        "### py-spy --nonblocking on sidecar proxy under wrk -c16, small object",
        "",
        f"{prof.run.rate:,.0f} req/s while sampled, {prof.samples:,} samples. About "
        f"{prof.ours_pct:.0f}% of the samples are in sidecar's own code (a frame in "
        "sidecar/ below the event loop): "
        + ", ".join(f"`{f}` {pct:.1f}%" for pct, f in prof.ours)
        + ". The rest is "
        "mitmproxy and asyncio; `Runner.run` as a leaf is the event loop itself (uvloop, "
        "C: the sockets' system calls).",
        "",
        "| own % | function (top 15 by own time) |",
        "|---:|---|",
    ]
    return lines + [f"| {pct:.1f} | `{fn}` |" for pct, fn in prof.top]


def write_json(argv, started, args, checks, summary, programs, cells) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"proxy-{started:%Y%m%dT%H%M%SZ}.json"
    runs = [
        {
            "test": t,
            "connections": c,
            "program": pr,
            "runs": [{**r.__dict__, "rate": r.rate, "mib_s": r.mib_s} for r in x.runs],
        }
        for (t, c, pr), x in cells.items()
    ]
    doc = {
        "command": argv,
        "date": started.isoformat(timespec="seconds"),
        "secs": args.secs,
        "repeat": args.repeat,
        "ok": all(ok for ok, _ in checks),
        "checks": [c for _, c in checks],
        "summary": summary,
        "commands": {n: pr.cmd for n, pr in programs.items()},
        "runs": runs,
    }
    out.write_text(json.dumps(doc, indent=1) + "\n")
    return out


def version(exe: str) -> str:
    """One line naming `exe`'s version."""
    if exe == "nginx":
        out = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr
        return out.strip().replace("nginx version: ", "")
    if exe == "wrk":
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
        return " ".join(out.split()[:2])
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    return "mitmproxy " + out.split("\n")[0].split()[-1] if out else exe


if __name__ == "__main__":
    sys.exit(main())
