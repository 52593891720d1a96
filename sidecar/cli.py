"""The `sidecar` command: subcommands, flags -> config, errors -> one clear line and an exit code.

The only module that reads sys.argv, prints, and turns exceptions into exit codes:
0 done, 1 runtime failure, 2 usage or config error, 141 stdout closed (SIGPIPE), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence

import orjson

from sidecar import __version__, writable
from sidecar import config as config_mod
from sidecar import report as report_mod
from sidecar.app import App, check_storage_folders, resolve_input_format, sink_configs
from sidecar.errors import OutputError, SidecarError, UsageError
from sidecar.formats.detect import fit_stream
from sidecar.formats.registry import NAMES as FORMAT_NAMES
from sidecar.output import Output
from sidecar.pipeline import ChunkResult, run
from sidecar.privacy.stage import open_country_lookup
from sidecar.sinks.base import SinkUnavailable
from sidecar.sinks.registry import open_sink
from sidecar.sources.files import Chunks, check_inputs, open_inputs
from sidecar.stats import Progress

EXIT_SIGPIPE = 141
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sidecar",
        description="Privacy gateway for video CDN analytics: access logs in, clean records out.",
    )
    p.add_argument("--version", action="version", version=f"sidecar {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    pipe = sub.add_parser("pipe", help="scrub access logs from files or stdin to stdout")
    pipe.add_argument(
        "files", nargs="*", metavar="FILE", help="input files (.gz/.bz2 too); default stdin"
    )
    pipe.add_argument("--config", metavar="PATH", help="TOML config (see config/sidecar.toml)")
    pipe.add_argument(
        "--format",
        metavar="NAME|'log_format ...'",
        help=f"input format: {', '.join(FORMAT_NAMES)}, or an nginx log_format (default auto)",
    )
    pipe.add_argument("--output", choices=("jsonl", "rewrite"), help="jsonl (default) or rewrite")
    pipe.add_argument("--geoip", metavar="PATH", help="country database (.mmdb); '' for none")
    pipe.add_argument("--stats", metavar="PATH", help="write run counters as JSON at exit")
    pipe.add_argument("--rejects", metavar="PATH", help="write rejected lines, IPs struck")
    pipe.add_argument("--workers", type=int, metavar="N", help="worker processes (default 1)")
    pipe.add_argument(
        "--metrics-textfile",
        metavar="PATH",
        help="write Prometheus metrics at exit (node_exporter's textfile collector)",
    )
    pipe.add_argument(
        "--sink",
        action="append",
        metavar="URL",
        help="store records here instead of stdout (repeatable): sqlite:PATH, "
        "clickhouse:http://HOST:8123/?database=D&table=T, jsonl:PATH, http:URL",
    )

    serve = sub.add_parser(
        "serve", help="the daemon: syslog, followed files or stdin in, clean records to storage"
    )
    serve.add_argument("--config", metavar="PATH", help="TOML config (SIGHUP reloads it)")
    _daemon_flags(serve, "serve", "127.0.0.1:9187")
    serve.add_argument(
        "--format", metavar="NAME|'log_format ...'",
        help="input format, as for pipe (default auto, detected per source)",
    )  # fmt: skip
    serve.add_argument("--syslog-udp", metavar="HOST:PORT", help="serve.syslog_udp")
    serve.add_argument("--syslog-unix", metavar="PATH", help="serve.syslog_unix")
    serve.add_argument(
        "--follow", action="append", metavar="PATH", help="serve.follow (repeatable, globs)"
    )
    serve.add_argument("--stdin", action="store_true", default=None, help="serve.stdin")
    serve.add_argument("--state-dir", metavar="DIR", help="serve.state_dir (checkpoints)")

    proxy = sub.add_parser(
        "proxy", help="a scrubbing reverse proxy in front of an origin (mitmproxy): the origin "
        "never sees a full client IP; one clean record per request; beacons answered",
    )  # fmt: skip
    proxy.add_argument("--listen", metavar="HOST:PORT", help="proxy.listen (127.0.0.1:8080)")
    proxy.add_argument("--upstream", metavar="URL", help="proxy.upstream: http(s)://HOST[:PORT]")
    proxy.add_argument("--config", metavar="PATH", help="TOML config (SIGHUP reloads it)")
    _daemon_flags(proxy, "proxy", "127.0.0.1:9188")
    proxy.add_argument(
        "--trusted-proxy", action="append", metavar="CIDR",
        help="ip.trusted_proxies (repeatable): peers whose X-Forwarded-For is believed",
    )  # fmt: skip
    proxy.add_argument(
        "--beacon-path", action="append", metavar="PATH",
        help="proxy.beacon_paths (repeatable; default /beacon): answered 204, never forwarded",
    )  # fmt: skip

    report = sub.add_parser("report", help="traffic report from the analytics store")
    report.add_argument(
        "--sink", action="append", metavar="URL", help="default sqlite:data/analytics.db"
    )
    report.add_argument("--config", metavar="PATH")
    report.add_argument("--since", default="7d", metavar="7d|24h|2w|DATE|all")
    report.add_argument("--format", choices=("table", "json"), default="table")
    report.add_argument("--limit", type=int, default=10, metavar="N", help="rows per top-N table")

    storage = sub.add_parser("storage", help="create tables (init) or drop old months (prune)")
    storage.add_argument("storage_command", choices=("init", "prune"), metavar="init|prune")
    storage.add_argument(
        "--sink", action="append", metavar="URL", help="default sqlite:data/analytics.db"
    )
    storage.add_argument("--config", metavar="PATH")

    check = sub.add_parser("check-config", help="validate a config file and its geo database")
    check.add_argument("path", metavar="PATH")

    geoip = sub.add_parser("geoip", help="the embedded country database")
    geoip_sub = geoip.add_subparsers(dest="geoip_command", metavar="ACTION")
    build = geoip_sub.add_parser("build", help="build an .mmdb from Debian's tor-geoipdb ranges")
    build.add_argument("--source-dir", default="/usr/share/tor", metavar="DIR")
    build.add_argument("--output", default=config_mod.DEFAULT_GEOIP_DATABASE, metavar="PATH")
    return p


class Terminated(BaseException):
    """SIGTERM: stop reading, flush what was read, exit."""


def _daemon_flags(p: argparse.ArgumentParser, section: str, http_default: str) -> None:
    """The flags `serve` and `proxy` share: sinks, the geo database, endpoints, --stats."""
    p.add_argument(
        "--sink", action="append", metavar="URL",
        help="store records here (repeatable); default storage.default_sink (sqlite)",
    )  # fmt: skip
    p.add_argument("--geoip", metavar="PATH", help="country database (.mmdb); '' for none")
    p.add_argument(
        "--http", metavar="HOST:PORT", help=f"{section}.http: /metrics /healthz /readyz "
        f"(default {http_default}; '' for none)",
    )  # fmt: skip
    p.add_argument("--stats", metavar="PATH", help="write run counters as JSON at exit")


def _check_stats_path(path: str | None) -> None:
    """A daemon's --stats file can be written at exit: checked at start (exit 2)."""
    if path:
        error = writable.replaceable_file_error(path)
        if error is not None:
            raise UsageError(f"--stats: {error}")


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def cmd_pipe(args: argparse.Namespace) -> int:
    cfg = config_mod.load(
        args.config,
        {
            "input.format": args.format,
            "pipe.output": args.output,
            "pipe.workers": args.workers,
            "geoip.database": args.geoip,
        },
    )
    fmt = resolve_input_format(cfg, from_flag=args.format is not None)
    files = args.files or ["-"]
    check_inputs(files)
    sinks = sink_configs(args.sink, cfg, default=None)
    if cfg.pipe.output == "rewrite" and not all(s.url == "stdout:" for s in sinks):
        raise UsageError("--output rewrite writes the input's format to stdout; not with --sink")
    if args.metrics_textfile:
        error = writable.replaceable_file_error(args.metrics_textfile)
        if error is not None:
            raise UsageError(f"--metrics-textfile: {error}")
    source = "stdin" if files == ["-"] else "file"
    app = App(cfg, sinks, output=cfg.pipe.output, keep_rejects=args.rejects is not None,
              source=source)  # fmt: skip
    app.metrics.add_source(source)
    rejects_out = Output.open(args.rejects, "--rejects") if args.rejects else None
    stats_out = Output.open(args.stats, "--stats") if args.stats else None

    chunks = Chunks(open_inputs(files), cfg.input.max_line_bytes)
    fmt, stream, any_input = fit_stream(fmt, chunks)
    if any_input and fmt is None:
        print(
            "sidecar: warning: no known log format matched the first lines; every line "
            "is rejected (format_mismatch). Name the format with --format.",
            file=sys.stderr,
        )
    pipeline = app.pipeline(fmt)
    progress = Progress(app.stats, sys.stderr)

    textfile_every = cfg.pipe.metrics_textfile_interval_secs
    textfile_due = time.monotonic() + textfile_every

    def emit(result: ChunkResult) -> None:
        nonlocal textfile_due
        app.emit(result)
        if rejects_out is not None and result.rejects:
            rejects_out.write(("\n".join(result.rejects) + "\n").encode("utf-8", "replace"))
        progress.tick()
        if args.metrics_textfile and time.monotonic() >= textfile_due:  # a long run: live
            textfile_due = time.monotonic() + textfile_every
            _write_textfile(app, args.metrics_textfile)

    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    terminated = False
    failure: OutputError | None = None  # the first output that failed (a full disk)
    try:
        run(pipeline, stream, emit, workers=cfg.pipe.workers)
    except Terminated:
        terminated = True
    except OutputError as exc:  # stop reading; what was read is still counted and flushed
        failure = exc
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not cut the flush
        sink_stats = app.close()
        signal.signal(signal.SIGTERM, previous)
        if chunks.too_long:
            app.reject("too_long", chunks.too_long)
        progress.clear()
        if rejects_out is not None:
            failure = _closed(rejects_out, failure)
        for warning in chunks.warnings:
            print(f"sidecar: warning: {warning}", file=sys.stderr)
        print(app.stats.summary(), file=sys.stderr)
        for sink_id, s in sink_stats.items():
            print(_delivery_summary(sink_id, s), file=sys.stderr)
        if stats_out is not None:
            failure = _write_stats(stats_out, app.snapshot(), sink_stats, failure)
        if args.metrics_textfile:
            _write_textfile(app, args.metrics_textfile)
    if failure is not None:
        raise failure
    return EXIT_TERMINATED if terminated else 0


def _write_textfile(app: App, path: str) -> None:
    try:
        app.metrics.write_textfile(path)
    except OSError as exc:
        print(f"sidecar: warning: --metrics-textfile: {exc.strerror}", file=sys.stderr)


def _write_stats(
    stats_out: Output, doc: dict, sink_stats: dict, failure: OutputError | None
) -> OutputError | None:
    """The `--stats` JSON document, written and closed; the run's first failure is kept."""
    document = doc | ({"sinks": sink_stats} if sink_stats else {})
    try:
        stats_out.write(orjson.dumps(document) + b"\n")
    except OutputError as exc:
        failure = failure or exc
    return _closed(stats_out, failure)


def cmd_serve(args: argparse.Namespace) -> int:
    from sidecar import selflog
    from sidecar import serve as serve_mod

    options = serve_mod.ServeOptions(
        config_path=args.config,
        overrides={
            "input.format": args.format,
            "geoip.database": args.geoip,
            "serve.syslog_udp": args.syslog_udp,
            "serve.syslog_unix": args.syslog_unix,
            "serve.follow": args.follow,
            "serve.stdin": args.stdin,
            "serve.http": args.http,
            "serve.state_dir": args.state_dir,
        },
        sink_urls=tuple(args.sink or ()),
        format_from_flag=args.format is not None,
        stats_path=args.stats,
    )
    cfg = config_mod.load(options.config_path, options.overrides)
    serve_mod.check_sources(cfg)
    _check_stats_path(args.stats)
    selflog.configure(ip=cfg.ip)
    return serve_mod.Server(options, cfg).run()


def _optimized_or_reexec() -> None:
    """`sidecar proxy` runs Python with -O: mitmproxy type-checks every field of every request
    and response it builds, and names every task from the environment, only while `__debug__`
    is on (development aids: about a fifth of the proxy's time, bench/README.md). Re-executed
    once, same PID, same arguments; PYTHONOPTIMIZE set to anything (0 included) keeps the
    interpreter as it was started."""
    if sys.flags.optimize or "PYTHONOPTIMIZE" in os.environ:
        return
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-O", "-m", "sidecar", *sys.argv[1:]])


def cmd_proxy(args: argparse.Namespace) -> int:
    _optimized_or_reexec()
    try:
        from sidecar.proxy.master import ProxyRun
    except ImportError as exc:
        if "mitmproxy" not in str(exc):
            raise
        raise UsageError(
            "sidecar proxy needs mitmproxy: pip install 'privacy-sidecar[proxy]'"
        ) from None
    overrides = {
        "proxy.listen": args.listen,
        "proxy.upstream": args.upstream,
        "proxy.http": args.http,
        "proxy.beacon_paths": args.beacon_path,
        "ip.trusted_proxies": args.trusted_proxy,
        "geoip.database": args.geoip,
    }
    cfg = config_mod.load(args.config, overrides)
    _check_stats_path(args.stats)
    return ProxyRun(cfg, tuple(args.sink or ()), args.stats, args.config, overrides).run()


def _closed(output: Output, failure: OutputError | None) -> OutputError | None:
    """Close an output; the run's first failure is the one reported."""
    try:
        output.close()
    except OutputError as exc:
        return failure or exc
    return failure


def _delivery_summary(sink_id: str, s: dict) -> str:
    line = f"sidecar: {sink_id}: {s['delivered']} records delivered"
    if s["spooled"]:
        line += f", {s['spooled']} spooled while unavailable"
    if s["left_in_spool"]:
        line += f", {s['left_in_spool']} still in the spool (delivered at the next start)"
    if s["dead_lettered"]:
        line += f", {s['dead_lettered']} refused (dead-letter file)"
    if s["dropped"]:
        line += f", {s['dropped']} DROPPED ({', '.join(s['dropped_by_reason']).replace('_', ' ')})"
    return line


def cmd_storage(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config, {})
    for s in sink_configs(args.sink, cfg, default=cfg.storage.default_sink):
        sink = open_sink(s)
        if not sink.queryable:
            raise UsageError(
                f"storage: {sink.scheme}: sinks have no tables; use sqlite: or clickhouse:"
            )
        try:  # init or prune (argparse's choices)
            done = getattr(sink, args.storage_command)(cfg.storage.retention_months)
        except SinkUnavailable as exc:
            raise SidecarError(f"storage {args.storage_command}: {exc}") from None
        finally:
            sink.close()
        for line in done:
            _say(line)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config, {})
    configs = sink_configs(args.sink, cfg, default=cfg.storage.default_sink)
    queryable = [s for s in configs if s.url.partition(":")[0] in report_mod.DIALECTS]
    if not queryable:
        raise UsageError("report: no sqlite: or clickhouse: sink to read (--sink URL)")
    sink = open_sink(queryable[0])
    try:
        data = report_mod.build(
            sink, since=args.since, limit=args.limit, beacon_paths=cfg.beacon.paths
        )
    except SinkUnavailable as exc:
        raise SidecarError(f"report: {exc}") from None
    finally:
        sink.close()
    if args.format == "json":
        Output.stdout().write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        Output.stdout().write(report_mod.render_table(data).encode())
    return 0


def _say(line: str) -> None:
    """One line on stdout, unbuffered: a failed write is an OutputError naming stdout."""
    Output.stdout().write(line.encode() + b"\n")


def cmd_check_config(args: argparse.Namespace) -> int:
    """What `pipe` would refuse at start with this file: the same checks, the same messages."""
    cfg = config_mod.load(args.path)
    resolve_input_format(cfg, from_flag=False)
    if any(s.url != "stdout:" for s in cfg.sinks):
        check_storage_folders(cfg)
    lookup = open_country_lookup(cfg)
    where = f", country database {lookup.path}" if lookup else ", no country database"
    _say(f"{args.path}: ok{where}")
    return 0


def cmd_geoip(args: argparse.Namespace) -> int:
    if args.geoip_command != "build":
        raise UsageError("geoip: say `sidecar geoip build`")
    from sidecar.geoip_build import ATTRIBUTION, build

    summary = build(args.source_dir, args.output)
    _say(summary)
    _say(ATTRIBUTION)
    return 0


COMMANDS = {
    "pipe": cmd_pipe,
    "serve": cmd_serve,
    "proxy": cmd_proxy,
    "report": cmd_report,
    "storage": cmd_storage,
    "check-config": cmd_check_config,
    "geoip": cmd_geoip,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help(sys.stderr)
        return 2
    try:
        code = COMMANDS[args.command](args)
    except SidecarError as exc:
        print(f"sidecar: error: {exc}", file=sys.stderr)
        if isinstance(exc, OutputError):
            _drop_stdout()
        return exc.exit_code
    except BrokenPipeError:
        # stdout closed early (`| head`): leave quietly, as Unix tools do
        _drop_stdout()
        return EXIT_SIGPIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's own flush at exit stays quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
