"""`sidecar serve`: the daemon's event loop, its sources, micro-batches, signals and endpoints.

    source ──lines──▶ Batcher (flush_interval_secs | flush_max_bytes) ──▶ pipeline.process
      ──ChunkResult──▶ App.emit ──▶ Delivery.offer (never blocks; overflow = spool, counted)
          └─ ack (stored or spooled, every sink) ──▶ the file follower's checkpoint advances

One process, one asyncio loop (uvloop when installed). The loop reads sockets and files,
scrubs lines in micro-batches (CPU work, bounded per batch) and hands clean records over;
stores are written on the deliveries' threads, so a slow or dead store shows as spool bytes and
a 503 on /readyz, never as an unread socket. /metrics, /healthz and /readyz are served from a
thread of their own (endpoints.py).

Signals: SIGTERM and SIGINT stop reading, flush every batch, wait for the sinks (each within
`storage.shutdown_timeout_secs`), save the checkpoints and exit 0 within `serve.
shutdown_grace_secs`. SIGHUP reloads the config file: new privacy rules and sinks, nothing in
flight lost; an invalid file is refused, logged with its key, and the old config stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sidecar import config as config_mod
from sidecar import eventloop
from sidecar.app import App, resolve_input_format, sink_configs
from sidecar.errors import ConfigError, SidecarError
from sidecar.formats.base import LineFormat
from sidecar.formats.detect import fit_format
from sidecar.metrics import SYSLOG_SOURCES, totals
from sidecar.output import write_json_document
from sidecar.pipeline import LinePipeline
from sidecar.reject import FORMAT_MISMATCH, INTERNAL_ERROR, TOO_LONG
from sidecar.sinks.throttle import ThrottledLog
from sidecar.sources import Ack

log = logging.getLogger(__name__)

#: the spool size from which its growth is logged (then at every doubling)
SPOOL_LOG_BYTES = 1 << 20


@dataclass(frozen=True)
class ServeOptions:
    """What the command line gave besides the config: kept across reloads."""

    config_path: str | None
    overrides: dict[str, Any]  # dotted config keys from flags, applied on every (re)load
    sink_urls: tuple[str, ...] = ()
    format_from_flag: bool = False
    stats_path: str | None = None


def check_sources(cfg: config_mod.Config) -> None:
    s = cfg.serve
    if not (s.syslog_udp or s.syslog_unix or s.follow or s.stdin):
        where = f" in {cfg.source}" if cfg.source != config_mod.Config().source else ""
        raise ConfigError(
            "serve: no source: set serve.syslog_udp, serve.syslog_unix, serve.follow or "
            f"serve.stdin{where} (or --syslog-udp, --syslog-unix, --follow, --stdin)"
        )


class Batcher:
    """One source's lines, cut into micro-batches and put through the privacy stage.

    The source's format is detected from its first batch when `input.format` is auto (a
    source whose first lines match nothing is tried again on its next batch)."""

    def __init__(self, server: Server, name: str) -> None:
        self.server = server
        self.name = name
        self.buf = bytearray()
        self.acks: list[Ack] = []
        self.timer: asyncio.TimerHandle | None = None
        self.fmt: LineFormat | None = server.fmt
        self.detected = server.fmt is not None
        self.pipeline: LinePipeline | None = None
        self.warn = ThrottledLog(log, 60.0)
        serve = server.app.cfg.serve  # [serve] is not reloaded: read once, not per datagram
        self.max_bytes = serve.flush_max_bytes
        self.interval = serve.flush_interval_secs

    def add(self, lines: bytes, ack: Ack | None) -> None:
        self.buf += lines
        if ack is not None:
            self.acks.append(ack)
        if len(self.buf) >= self.max_bytes:
            self.flush()
        elif self.timer is None:
            self.timer = self.server.loop.call_later(self.interval, self.flush)

    def reset(self, fmt: LineFormat | None) -> None:
        """After a reload: the new rules (and format) from the next batch on."""
        self.flush()
        self.fmt, self.detected, self.pipeline = fmt, fmt is not None, None

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.buf and not self.acks:
            return
        chunk, self.buf = bytes(self.buf), bytearray()
        acks, self.acks = self.acks, []
        app = self.server.app
        try:
            pipeline = self._pipeline(chunk)
            result = pipeline.process(chunk)
        except Exception as exc:  # a bug: the lines are counted, never shown (nor the error's
            # text, which may quote them); the daemon goes on
            self.warn.error("bug", "source %s: a batch could not be processed (%s)", self.name,
                            type(exc).__name__)  # fmt: skip
            app.reject(INTERNAL_ERROR, chunk.count(b"\n"), self.name)
            self._fire(acks)
            return
        app.emit(result, self._done(acks) if acks else None, self.name)

    def _pipeline(self, chunk: bytes) -> LinePipeline:
        if not self.detected:
            fmt = fit_format(self.fmt, chunk)
            if fmt is not None:
                self.fmt, self.detected, self.pipeline = fmt, True, None
                log.info("source %s: format %s", self.name, fmt.name)
            else:
                self.warn.warning(
                    "format", "source %s: no known log format matched; lines are rejected "
                    "(%s) until one does; name it with --format", self.name, FORMAT_MISMATCH,
                )  # fmt: skip
                return self.server.app.pipeline(None)
        if self.pipeline is None:
            self.pipeline = self.server.app.pipeline(self.fmt)
        return self.pipeline

    def _done(self, acks: list[Ack]) -> Ack:
        """An ack fired on a delivery thread: run the sources' acks on the loop."""
        loop = self.server.loop

        def done() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing waits
                loop.call_soon_threadsafe(self._fire, acks)

        return done

    @staticmethod
    def _fire(acks: list[Ack]) -> None:
        for ack in acks:
            ack()


class Server:
    def __init__(self, options: ServeOptions, cfg: config_mod.Config) -> None:
        self.options = options
        self.fmt = resolve_input_format(cfg, options.format_from_flag)
        self.app = App(cfg, self._sinks(cfg), daemon=True)
        self.sources: list[Any] = []
        self.batchers: dict[str, Batcher] = {}
        self.endpoints: Any = None
        self.stopping = eventloop.Stop()
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]

    def _sinks(self, cfg: config_mod.Config) -> list[config_mod.SinkConfig]:
        return sink_configs(self.options.sink_urls, cfg, default=cfg.storage.default_sink)

    # --- the run ----------------------------------------------------------------------------
    def run(self) -> int:
        return eventloop.run(self.main())

    async def main(self) -> int:
        self.loop = asyncio.get_running_loop()
        cfg = self.app.cfg
        try:
            self._open_endpoints(cfg)
            for source in self._make_sources(cfg):
                self.app.metrics.add_source(source.name)
                await source.start()
                self.sources.append(source)
        except BaseException:
            self._close_sources()
            if self.endpoints is not None:
                self.endpoints.close()
            self.app.close(replay=False)
            raise
        self.app.start()
        self.stopping.install(self.loop, self.reload)
        log.info(
            "started", extra={"sources": [s.name for s in self.sources],
                              "sinks": [d.label for d in self.app.deliveries],
                              "http_port": self.endpoints.port if self.endpoints else None},
        )  # fmt: skip
        watch = self.loop.create_task(self._watch_sinks())
        await self.stopping.wait()
        watch.cancel()
        return await self._shutdown()

    async def _shutdown(self) -> int:
        grace = self.app.cfg.serve.shutdown_grace_secs
        started = time.monotonic()
        self.stopping.uninstall(self.loop)
        for source in self.sources:  # stop reading (a follower saves what is acked so far)
            stop = getattr(source, "stop", None)
            if stop is not None:
                await stop()
            else:
                source.close()
        for b in self.batchers.values():
            b.flush()
        closing = self.loop.run_in_executor(None, self.app.close)
        code = 0
        try:
            sink_stats = await asyncio.wait_for(asyncio.shield(closing), grace)
        except TimeoutError:
            log.error("shutdown took longer than serve.shutdown_grace_secs; exiting anyway")
            sink_stats, code = {}, 1
        for _ in range(3):  # the acks the deliveries sent back: checkpoints move on
            await asyncio.sleep(0)
        for source in self.sources:
            save = getattr(source, "save", None)
            if save is not None:
                save()
        if self.endpoints is not None:
            self.endpoints.close()
        self._write_stats(sink_stats)
        log.info("stopped", extra={"secs": round(time.monotonic() - started, 3),
                                   **self.app.stats.as_dict()})  # fmt: skip
        return code

    def _close_sources(self) -> None:
        for source in self.sources:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    # --- parts ------------------------------------------------------------------------------
    def _emit_for(self, name: str) -> Callable[[bytes, Ack | None], None]:
        batcher = self.batchers.setdefault(name, Batcher(self, name))
        return batcher.add

    def _make_sources(self, cfg: config_mod.Config) -> list[Any]:
        check_sources(cfg)
        s = cfg.serve
        out: list[Any] = []
        if s.syslog_udp:
            from sidecar.sources.syslog_udp import SyslogUdpSource

            emit = self._emit_for("syslog_udp")
            out.append(SyslogUdpSource(s.syslog_udp, s.recv_buffer_bytes, emit, self.app.metrics))
        if s.syslog_unix:
            from sidecar.sources.syslog_unix import SyslogUnixSource

            out.append(SyslogUnixSource(s.syslog_unix, s.unix_socket_mode, s.unix_socket_group,
                                        s.recv_buffer_bytes, self._emit_for("syslog_unix"),
                                        self.app.metrics))  # fmt: skip
        if s.follow:
            from sidecar.sources.follow import FileFollower

            out.append(FileFollower(s.follow, s, cfg.input.max_line_bytes,
                                    self._emit_for("follow")))  # fmt: skip
        if s.stdin:
            from sidecar.sources.stdin import StdinSource

            only = not (s.syslog_udp or s.syslog_unix or s.follow)
            on_end = self._stdin_ended if only else _stdin_ended_log
            out.append(StdinSource(self._emit_for("stdin"), cfg.input.max_line_bytes,
                                   s.flush_max_bytes, on_end=on_end))  # fmt: skip
        return out

    def _stdin_ended(self) -> None:
        self.stopping.stop("end of stdin")

    def _open_endpoints(self, cfg: config_mod.Config) -> None:
        if not cfg.serve.http:
            return
        from sidecar.endpoints import Endpoints

        self.endpoints = Endpoints(cfg.serve.http, self.app.metrics.registry, self.not_ready)
        self.endpoints.start()

    def not_ready(self) -> dict[str, str]:
        """/readyz: {} when every source is bound or open and every sink is well; read-only
        (called from the endpoints' thread)."""
        out: dict[str, str] = {}
        if self.stopping.requested:
            out["sidecar"] = "shutting down"
        names = {s.name for s in self.sources}
        for name in ("syslog_udp", "syslog_unix", "follow", "stdin"):
            if getattr(self.app.cfg.serve, name) and name not in names:
                out[f"source {name}"] = "not started"
        for source in list(self.sources):
            if not source.ready and not getattr(source, "ended", False):
                out[f"source {source.name}"] = "not bound or open"
        out.update(self.app.not_ready())
        return out

    async def _watch_sinks(self) -> None:
        """Self-log sink up/down and spool growth, once a second; also the skipped counts."""
        was: dict[str, str | None] = {}
        said_bytes: dict[str, int] = {}  # the spool size last logged, per sink
        too_long: dict[str, int] = {}
        while True:
            await asyncio.sleep(1.0)
            for d in self.app.deliveries:
                now = d.health()
                if now != was.get(d.label):
                    if now is None:
                        log.info("sink up", extra={"sink": d.label})
                    else:
                        log.warning("sink down", extra={"sink": d.label, "why": now,
                                                        "spool_bytes": d.spool.bytes})  # fmt: skip
                was[d.label] = now
                size = d.spool.bytes
                if size >= max(2 * said_bytes.get(d.label, 0), SPOOL_LOG_BYTES):
                    log.warning("spool growing", extra={"sink": d.label, "spool_bytes": size,
                                "spool_max_bytes": d.spool.max_bytes})  # fmt: skip
                    said_bytes[d.label] = size
                elif not size:
                    said_bytes.pop(d.label, None)
            for source in self.sources:
                n = getattr(source, "too_long", 0)
                if n > too_long.get(source.name, 0):
                    self.app.reject(TOO_LONG, n - too_long.get(source.name, 0), source.name)
                    too_long[source.name] = n

    # --- reload -----------------------------------------------------------------------------
    def reload(self) -> None:
        """SIGHUP: a valid config replaces the privacy rules and sinks; an invalid one is
        refused (logged with its key) and the old one stays."""
        metrics = self.app.metrics
        try:
            cfg = config_mod.load(self.options.config_path, self.options.overrides)
            fmt = resolve_input_format(cfg, self.options.format_from_flag)
            check_sources(cfg)
            for b in self.batchers.values():
                b.flush()  # what arrived before the signal goes out under the old rules
            old_input = self.app.cfg.input
            self.app.reload(cfg, self._sinks(cfg))
        except SidecarError as exc:
            metrics.config_reloads.labels("refused").inc()
            log.error("reload refused; the running config stays", extra={"reason": str(exc)})
            return
        format_changed = cfg.input != old_input
        if format_changed:
            self.fmt = fmt
        for b in self.batchers.values():
            b.reset(self.fmt if format_changed else b.fmt)
        metrics.config_reloads.labels("ok").inc()
        log.info("reloaded", extra={"config": cfg.source,
                                    "sinks": [d.label for d in self.app.deliveries]})  # fmt: skip

    # --- --stats ----------------------------------------------------------------------------
    def _write_stats(self, sink_stats: dict) -> None:
        path = self.options.stats_path
        if path is None:
            return
        doc = self.app.snapshot()
        doc["sources"] = self._source_counts()
        if sink_stats:
            doc["sinks"] = sink_stats
        write_json_document(path, doc)

    def _source_counts(self) -> dict[str, dict[str, int]]:
        lines = self.app.stats.by_source()
        out: dict[str, dict[str, int]] = {}
        for source in self.sources:
            name = source.name
            counts = {"lines": lines.get(name, 0)}
            if name in SYSLOG_SOURCES:
                results = totals(self.app.metrics.syslog_datagrams, "result", source=name)
                counts["datagrams"] = sum(results.values())
                counts["malformed"] = counts["datagrams"] - results.get("ok", 0)
            out[name] = counts
        return out


def _stdin_ended_log() -> None:
    log.info("end of stdin; the other sources go on")
