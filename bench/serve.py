"""`sidecar serve` under load: beacons end to end, RSS over a soak, and --follow against pipe.

    .venv/bin/python bench/serve.py                         # everything, 10-minute soak
    .venv/bin/python bench/serve.py --beacons 200000 --soak-secs 0 --follow-lines 0

1. Beacons through the whole path: wrk -> nginx (the shipped nginx/ configs, beacon fast path)
   -> syslog -> `sidecar serve` -> SQLite, for a fixed number of requests, over UDP and over the
   unix socket (at the kernel's net.unix.max_dgram_qlen, and raised with --unix-qlen when
   root). Printed: requests/s nginx answered, records stored, the share lost; and in the same
   run nginx's own `return 204` with `access_log off`, the ceiling.
2. RSS of `sidecar serve` sampled every 10 s while wrk keeps sending beacons (--soak-secs).
3. Lines/s of `serve --follow` on the generated 1M-line log against `pipe` to the same sink,
   in the same run (the ratio is what counts: these machines drift 2x within a session).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.nginx import Nginx, free_port, http_conf, install_configs  # noqa: E402

PYTHON = Path(sys.executable)
SIDECAR = [str(PYTHON), "-m", "sidecar"]
GEOIP = ROOT / "data" / "country.mmdb"
WRK_SCRIPT = """
local n = tonumber(os.getenv("BEACONS_PER_THREAD"))
local done = 0
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/beacon?event=heartbeat&media=m" .. (i % 977) ..
                    "&position_secs=" .. i .. "&session=drop-me")
end
local pause = tonumber(os.getenv("DELAY_MS"))
if pause > 0 then
  delay = function() return pause end
end
response = function(status, headers, body)
  done = done + 1
  if done >= n then wrk.thread:stop() end
end
"""
DELAY_MS = 0  # --rate: each connection waits this long between requests (wrk's delay())
QLEN = Path("/proc/sys/net/unix/max_dgram_qlen")
WMEM = Path("/proc/sys/net/core/wmem_default")  # a unix datagram is charged to the sender


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text,
                                                      re.M))  # fmt: skip


def settle(port: int, name: str, quiet_secs: float = 2.0, limit_secs: float = 120.0) -> float:
    """The metric once it stopped moving for `quiet_secs`."""
    last, since, deadline = -1.0, time.monotonic(), time.monotonic() + limit_secs
    while time.monotonic() < deadline:
        now = metric(port, name)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_secs:
            break
        time.sleep(0.2)
    return last


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Serve:
    def __init__(self, work: Path, *args: str, config: str = "") -> None:
        self.http = free_port()
        (work / "serve.toml").write_text(config)
        self.log = (work / "serve.log").open("ab")
        self.proc = subprocess.Popen(
            [*SIDECAR, "serve", "--config", str(work / "serve.toml"), "--geoip", str(GEOIP),
             "--http", f"127.0.0.1:{self.http}", "--state-dir", str(work / "state"), *args],
            cwd=work, stdout=subprocess.DEVNULL, stderr=self.log,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                metric(self.http, "sidecar_lines_received_total")
                break
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"sidecar serve did not start; see {work / 'serve.log'}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.log.close()


STATUS = "server { listen 127.0.0.1:SPORT; access_log off; location / { stub_status; } }"


def status_requests(port: int) -> int:
    """nginx's stub_status request counter (each call is one request itself)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
        return int(r.read().decode().split("\n")[2].split()[2])


def wrk(port: int, status_port: int, beacons: int, threads: int, connections: int, work: Path,
        secs: float | None = None) -> tuple[int, float, int]:  # fmt: skip
    """(requests answered, requests/s, non-2xx) of wrk against /beacon: `beacons` requests
    (wrk runs for a duration, so its threads stop themselves at their share and the time is
    taken from nginx's own request counter), or for `secs` seconds."""
    script = work / "beacon.lua"
    script.write_text(WRK_SCRIPT)
    per_thread = -(-beacons // threads) if not secs else 1 << 40
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{int(secs or 600)}s",
           "-s", str(script), f"http://127.0.0.1:{port}/beacon"]  # fmt: skip
    env = {**os.environ, "BEACONS_PER_THREAD": str(per_thread), "DELAY_MS": str(DELAY_MS)}
    base = status_requests(status_port)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    polls = 1
    if not secs:
        while proc.poll() is None:
            polls += 1
            if status_requests(status_port) - base - polls >= per_thread * threads:
                break
            time.sleep(0.01)
        elapsed = time.monotonic() - started
        proc.send_signal(signal.SIGINT)  # wrk prints its summary when interrupted
    out = proc.communicate(timeout=secs + 60 if secs else 60)[0]
    if secs:
        elapsed = secs
    time.sleep(0.2)  # requests in flight when wrk stopped are answered (and logged) too
    answered = status_requests(status_port) - base - polls  # nginx's count, not wrk's
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return answered, answered / elapsed, int(bad.group(1)) if bad else 0


def ceiling(work: Path, beacons: int, threads: int, connections: int) -> float:
    prefix = work / "nginx-ceiling"
    status_port = free_port()
    conf = ("access_log off; server { listen 127.0.0.1:PORT; location = /beacon { return 204; } }"
            + STATUS.replace("SPORT", str(status_port)))  # fmt: skip
    with Nginx(prefix, conf) as n:
        _, rate, _ = wrk(n.port, status_port, beacons, threads, connections, work)
    return rate


def beacons_run(
    work: Path, transport: str, beacons: int, threads: int, connections: int,
    soak_secs: float = 0,
) -> dict:  # fmt: skip
    run = work / f"run-{transport}"
    run.mkdir()
    db = run / "analytics.db"
    syslog_port = free_port()
    sock = run / "syslog.sock"
    configs = install_configs(
        run / "nginx-conf", syslog_port=syslog_port, ack_port=free_port(),
        unix_socket=sock if transport.startswith("unix") else None,
    )  # fmt: skip
    source = (["--syslog-unix", str(sock)] if transport.startswith("unix")
              else ["--syslog-udp", f"127.0.0.1:{syslog_port}"])  # fmt: skip
    serve = Serve(run, *source, "--sink", f"sqlite:{db}")
    rss: list[int] = []
    scrapes: list[float] = []
    try:
        status_port = free_port()
        conf = http_conf(configs) + STATUS.replace("SPORT", str(status_port))
        with Nginx(run / "nginx", conf) as n:
            drive = (n.port, status_port, beacons, threads, connections, run)
            if soak_secs:
                sampler = _Sampler(serve.proc.pid, rss, serve.http, scrapes)
                answered, rate, bad = wrk(*drive, secs=soak_secs)
                sampler.stop()
            else:
                answered, rate, bad = wrk(*drive)
            stored = settle(serve.http, "sidecar_records_delivered_total")
            kernel = metric(serve.http, "sidecar_datagrams_kernel_dropped_total")
            received = metric(serve.http, "sidecar_syslog_datagrams_total")
    finally:
        serve.stop()
    ok = answered - bad
    return {"transport": transport, "answered": answered, "rate": rate, "stored": int(stored),
            "received": int(received), "kernel_dropped": int(kernel),
            "lost": ok - int(stored), "lost_share": (ok - stored) / ok if ok else 0.0,
            "rss": rss, "scrapes_ms": scrapes}  # fmt: skip


class _Sampler:
    """RSS of `pid` and the time one scrape of its /metrics takes, every `every_secs`."""

    def __init__(self, pid: int, into: list[int], http_port: int, scrapes_ms: list[float],
                 every_secs: float = 10.0) -> None:  # fmt: skip
        import threading

        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.wait(every_secs):
                into.append(rss_kib(pid))
                started = time.perf_counter()
                url = f"http://127.0.0.1:{http_port}/metrics"
                with urllib.request.urlopen(url, timeout=5) as r:
                    r.read()
                scrapes_ms.append(1000 * (time.perf_counter() - started))

        into.append(rss_kib(pid))
        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def follow_vs_pipe(work: Path, lines: int, repeat: int = 1) -> tuple[float, float]:
    """(pipe lines/s, serve --follow lines/s), both into a fresh SQLite database; with
    `repeat`, the two alternate and the fastest run of each counts (the machine is noisy)."""
    best = (0.0, 0.0)
    for i in range(repeat):
        pipe_rate, follow_rate = _follow_vs_pipe(work / f"round-{i}", lines)
        print(f"  round {i + 1}: pipe {pipe_rate:,.0f} lines/s, serve --follow "
              f"{follow_rate:,.0f} lines/s", flush=True)  # fmt: skip
        best = (max(best[0], pipe_rate), max(best[1], follow_rate))
    return best


def _follow_vs_pipe(work: Path, lines: int) -> tuple[float, float]:
    work.mkdir()
    sys.path.insert(0, str(ROOT / "bench"))
    from pipe import Settings, ensure_log  # bench/pipe.py: the generated log, cached

    log = ensure_log(Settings(lines, 0, 1, 1, GEOIP, PYTHON, PYTHON, None, work), lines)
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([*SIDECAR, "pipe", "--geoip", str(GEOIP), "--sink",
                    f"sqlite:{work / 'pipe.db'}", str(log)], cwd=work, check=True,
                   stderr=subprocess.DEVNULL, env=env)  # fmt: skip
    pipe_secs = time.perf_counter() - started
    run = work / "follow"
    run.mkdir()
    started = time.perf_counter()
    serve = Serve(run, "--follow", str(log), "--sink", f"sqlite:{run / 'serve.db'}",
                  config='[serve]\nread_from = "beginning"\n')  # fmt: skip
    try:
        while metric(serve.http, "sidecar_records_delivered_total") < lines:
            time.sleep(0.1)
        serve_secs = time.perf_counter() - started
    finally:
        serve.stop()
    return lines / pipe_secs, lines / serve_secs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--beacons", type=int, default=300_000, help="requests per transport")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--rate", type=int, default=0,
                   help="offered beacons/s (about: each connection pauses connections*1000/rate "
                   "ms between requests, whole ms); 0: as fast as nginx answers")  # fmt: skip
    p.add_argument("--soak-secs", type=float, default=600.0, help="0 skips the soak")
    p.add_argument("--follow-lines", type=int, default=1_000_000, help="0 skips follow vs pipe")
    p.add_argument("--repeat", type=int, default=3, help="rounds of follow vs pipe")
    p.add_argument("--unix-qlen", type=int, default=1024,
                   help="also run the unix socket with net.unix.max_dgram_qlen raised to this "
                   "(needs root; restored after); 0 skips")  # fmt: skip
    p.add_argument("--unix-wmem", type=int, default=4 << 20,
                   help="with --unix-qlen, also raise net.core.wmem_default (nginx's send "
                   "buffer, which a unix datagram is charged to) to this; 0 leaves it")  # fmt: skip
    p.add_argument("--transports", default="udp,unix", help="comma-separated: udp, unix")
    args = p.parse_args()
    global DELAY_MS
    DELAY_MS = round(args.connections * 1000 / args.rate) if args.rate else 0
    if shutil.which("wrk") is None:
        print("bench/serve.py: wrk is missing (Debian package wrk; tests/setup.sh installs it)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="sidecar-bench-serve-"))
    qlen0 = int(QLEN.read_text())
    wmem0 = int(WMEM.read_text())
    rmem = Path("/proc/sys/net/core/rmem_max").read_text().strip()
    print(f"kernel: net.unix.max_dgram_qlen={qlen0}, net.core.rmem_max={rmem}, "
          f"net.core.wmem_default={wmem0}; "
          f"{os.cpu_count()} cores; wrk -t{args.threads} -c{args.connections}"
          + (f", {DELAY_MS} ms between requests per connection (~{args.rate:,}/s offered)"
             if DELAY_MS else ", as fast as nginx answers"))  # fmt: skip
    try:
        top = ceiling(work, args.beacons, args.threads, args.connections)
        print(f"\nnginx return 204, access_log off (ceiling): {top:,.0f} requests/s")
        print(f"\n{'transport':<34}{'answered/s':>12}{'of ceiling':>11}{'answered':>10}"
              f"{'stored':>10}{'lost':>9}{'lost %':>8}{'kernel drops':>14}")  # fmt: skip
        runs = [t for t in args.transports.split(",") if t]
        plan = [(t, None) for t in runs]
        if "unix" in runs and args.unix_qlen and os.geteuid() == 0 and args.unix_qlen != qlen0:
            plan.append((f"unix qlen {args.unix_qlen}", args.unix_qlen))
            if args.unix_wmem:
                plan.append((f"unix qlen {args.unix_qlen} wmem {args.unix_wmem >> 20} MiB",
                             args.unix_qlen))  # fmt: skip
        for name, qlen in plan:
            if qlen is not None:
                QLEN.write_text(str(qlen))
            if "wmem" in name:
                WMEM.write_text(str(args.unix_wmem))
            try:
                r = beacons_run(work, name.replace(" ", "-"), args.beacons, args.threads,
                                args.connections)  # fmt: skip
            finally:
                QLEN.write_text(str(qlen0))
                WMEM.write_text(str(wmem0))
            label = (
                name if qlen is not None else f"{name} (qlen {qlen0})" if name == "unix" else name
            )
            print(f"{label:<34}{r['rate']:>12,.0f}{r['rate'] / top:>10.2f}x{r['answered']:>10,}"
                  f"{r['stored']:>10,}{r['lost']:>9,}{100 * r['lost_share']:>7.2f}%"
                  f"{r['kernel_dropped']:>14,}")  # fmt: skip
        if args.soak_secs:
            r = beacons_run(work, "udp-soak", 0, args.threads, args.connections,
                            soak_secs=args.soak_secs)  # fmt: skip
            rss = [k // 1024 for k in r["rss"]]
            print(f"\nsoak over UDP, {args.soak_secs:.0f} s at {r['rate']:,.0f} beacons/s: "
                  f"{r['stored']:,} stored, {100 * r['lost_share']:.2f}% lost; sidecar RSS "
                  f"every 10 s (MiB): first {rss[0]}, after 1 min {rss[min(6, len(rss) - 1)]}, "
                  f"last {rss[-1]}, max {max(rss)}")  # fmt: skip
            print("  " + " ".join(map(str, rss)))
            ms = sorted(r["scrapes_ms"])
            if ms:
                print(f"  one scrape of /metrics during the soak: median "
                      f"{ms[len(ms) // 2]:.1f} ms, max {ms[-1]:.1f} ms ({len(ms)} scrapes, "
                      "target < 50 ms)")  # fmt: skip
        if args.follow_lines:
            print(f"\nfollow vs pipe, {args.repeat} alternating rounds:")
            pipe_rate, follow_rate = follow_vs_pipe(work, args.follow_lines, args.repeat)
            print(f"{args.follow_lines:,} generated lines into SQLite, fastest: pipe "
                  f"{pipe_rate:,.0f} lines/s, serve --follow {follow_rate:,.0f} lines/s: "
                  f"{follow_rate / pipe_rate:.2f}x pipe (target >= 0.9x)")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
