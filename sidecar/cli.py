"""The `sidecar` command: subcommands, flags -> config, errors -> one clear line and an exit code.

The only module that reads sys.argv, prints, and turns exceptions into exit codes:
0 done, 1 runtime failure, 2 usage or config error, 141 stdout closed (SIGPIPE), 130 interrupted.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from sidecar import __version__
from sidecar import config as config_mod
from sidecar.errors import SidecarError, UsageError
from sidecar.formats.registry import NAMES as FORMAT_NAMES
from sidecar.formats.registry import resolve as resolve_format
from sidecar.pipeline import ChunkResult, LinePipeline, fit_format, run
from sidecar.privacy.stage import PrivacyStage, open_country_lookup
from sidecar.sources.files import Chunks, check_inputs, open_inputs
from sidecar.stats import Progress, Stats

EXIT_SIGPIPE = 141
EXIT_INTERRUPTED = 130


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

    check = sub.add_parser("check-config", help="validate a config file and its geo database")
    check.add_argument("path", metavar="PATH")

    geoip = sub.add_parser("geoip", help="the embedded country database")
    geoip_sub = geoip.add_subparsers(dest="geoip_command", metavar="ACTION")
    build = geoip_sub.add_parser("build", help="build an .mmdb from Debian's tor-geoipdb ranges")
    build.add_argument("--source-dir", default="/usr/share/tor", metavar="DIR")
    build.add_argument("--output", default=config_mod.DEFAULT_GEOIP_DATABASE, metavar="PATH")
    return p


def _load_config(path: str | None, overrides: dict[str, Any]) -> config_mod.Config:
    cfg = config_mod.load(path)
    given = {k: v for k, v in overrides.items() if v is not None}
    return config_mod.override(cfg, given) if given else cfg


def cmd_pipe(args: argparse.Namespace) -> int:
    cfg = _load_config(
        args.config,
        {
            "input.format": args.format,
            "pipe.output": args.output,
            "pipe.workers": args.workers,
            "geoip.database": args.geoip,
        },
    )
    fmt = resolve_format(cfg.input.format)
    files = args.files or ["-"]
    check_inputs(files)
    stage = PrivacyStage(cfg, open_country_lookup(cfg, stage_masker(cfg)))
    rejects_out = _open_for_writing(args.rejects, "--rejects") if args.rejects else None
    stats_out = _open_for_writing(args.stats, "--stats", binary=True) if args.stats else None

    chunks = Chunks(open_inputs(files), cfg.input.max_line_bytes)
    stream = iter(chunks)
    first = next(stream, None)
    if first is not None:
        stream = itertools.chain([first], stream)
        fmt = fit_format(fmt, first)
        if fmt is None:
            print(
                "sidecar: warning: no known log format matched the first lines; every line "
                "is rejected (format_mismatch). Name the format with --format.",
                file=sys.stderr,
            )
    pipeline = LinePipeline(
        fmt, stage, cfg.pipe.output, cfg.input.max_line_bytes, keep_rejects=rejects_out is not None
    )
    stats = Stats()
    progress = Progress(stats, sys.stderr)
    out = sys.stdout.buffer

    def emit(result: ChunkResult) -> None:
        out.write(result.output)
        stats.add(result.lines_in, result.records_out, result.rejected)
        if rejects_out is not None and result.rejects:
            rejects_out.write("\n".join(result.rejects) + "\n")
        progress.tick()

    try:
        run(pipeline, stream, emit, workers=cfg.pipe.workers)
        out.flush()
    finally:
        if chunks.too_long:
            stats.reject("too_long", chunks.too_long)
        progress.clear()
        if rejects_out is not None:
            rejects_out.close()
        for warning in chunks.warnings:
            print(f"sidecar: warning: {warning}", file=sys.stderr)
        print(stats.summary(), file=sys.stderr)
        if stats_out is not None:
            with stats_out:
                stats_out.write(orjson.dumps(stats.as_dict()) + b"\n")
    return 0


def stage_masker(cfg: config_mod.Config):
    from sidecar.privacy.ip import Masker

    return Masker(cfg.ip.ipv4_prefix_bits, cfg.ip.ipv6_prefix_bits)


def _open_for_writing(path: str, flag: str, binary: bool = False):
    try:
        return open(path, "wb" if binary else "w", encoding=None if binary else "utf-8")
    except OSError as exc:
        raise UsageError(f"{flag}: cannot write {path!r}: {exc.strerror}") from None


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.path)
    resolve_format(cfg.input.format)
    lookup = open_country_lookup(cfg, stage_masker(cfg))
    where = f", country database {lookup.path}" if lookup else ", no country database"
    print(f"{args.path}: ok{where}")
    return 0


def cmd_geoip(args: argparse.Namespace) -> int:
    if args.geoip_command != "build":
        raise UsageError("geoip: say `sidecar geoip build`")
    from sidecar.geoip_build import ATTRIBUTION, build

    summary = build(args.source_dir, args.output)
    print(summary)
    print(ATTRIBUTION)
    return 0


COMMANDS = {"pipe": cmd_pipe, "check-config": cmd_check_config, "geoip": cmd_geoip}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help(sys.stderr)
        return 2
    try:
        return COMMANDS[args.command](args)
    except SidecarError as exc:
        print(f"sidecar: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # stdout closed early (`| head`): leave quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_SIGPIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
