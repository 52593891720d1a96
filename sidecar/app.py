"""The composition root: config -> privacy stage -> pipelines -> deliveries -> stats.

`pipe`, `serve` and `proxy` build one `App` from a Config and the sink URLs they were given,
feed it `ChunkResult`s (what `LinePipeline.process` returns), read its counters, reload it
(SIGHUP) and close it. Nothing here reads argv, prints or knows about event loops: the CLI
prints, `serve.py` runs the loop.

- `App.pipeline(fmt)`: a LinePipeline on the current privacy stage (one per source format).
- `App.start()`: start the delivery threads (`pipe` forks its workers first).
- `App.emit(result, ack, source)`: count, and hand the clean records to every sink; in `pipe`
  mode this blocks while the sinks are behind (backpressure), in daemon mode it never does
  (`Delivery.offer`): `ack` fires once every sink has the records delivered or spooled.
- `App.reload(cfg)`: new privacy rules and sinks, nothing in flight lost (serve, SIGHUP).
- `App.close()`: flush every sink; what each delivered, spooled, refused or dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from sidecar import config as config_mod
from sidecar import writable
from sidecar.errors import ConfigError
from sidecar.formats.base import LineFormat
from sidecar.formats.registry import resolve as resolve_format
from sidecar.metrics import Metrics
from sidecar.output import Output
from sidecar.pipeline import ChunkResult, LinePipeline
from sidecar.privacy.stage import PrivacyStage, open_country_lookup
from sidecar.record import CleanBatch
from sidecar.sinks.base import sink_name
from sidecar.sinks.delivery import Delivery, DeliveryStats
from sidecar.sinks.registry import check_names, open_sink
from sidecar.stats import Stats

log = logging.getLogger(__name__)


def resolve_input_format(cfg: config_mod.Config, from_flag: bool) -> LineFormat | None:
    """The parser `input.format` names (None: auto); a bad value names `--format` when the
    flag gave it, else the key and the config file."""
    if from_flag:
        return resolve_format(cfg.input.format, "--format")
    return resolve_format(cfg.input.format, "input.format", cfg.source)


def sink_configs(
    urls: Sequence[str] | None, cfg: config_mod.Config, default: str | None
) -> list[config_mod.SinkConfig]:
    """`--sink` URLs (with their [[sinks]] options, if any), else [[sinks]], else the default
    (`stdout:` when none is given)."""
    if urls:
        return [config_mod.sink_config(u, cfg) for u in urls]
    if cfg.sinks:
        return list(cfg.sinks)
    return [config_mod.sink_config(default or "stdout:")]


def check_storage_folders(cfg: config_mod.Config) -> None:
    """At start, before any input: the spool and dead-letter folders can be written (or made)."""
    where = f" (in {cfg.source})" if cfg.source != config_mod.Config().source else ""
    for key in ("spool_dir", "dead_letter_dir"):
        error = writable.folder_error(getattr(cfg.storage, key))
        if error is not None:
            raise ConfigError(f"storage.{key}: {error}{where}")


@dataclass
class _Fan:
    """An ack shared by every sink: fires once all of them have acknowledged."""

    left: int
    fn: Callable[[], None]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self) -> None:
        with self.lock:
            self.left -= 1
            due = self.left == 0
        if due:
            self.fn()


class App:
    """One running sidecar's parts. `daemon=True` hands records over without ever blocking."""

    def __init__(
        self,
        cfg: config_mod.Config,
        sinks: Sequence[config_mod.SinkConfig],
        *,
        daemon: bool = False,
        metrics: Metrics | None = None,
        output: str = "jsonl",
        keep_rejects: bool = False,
        source: str = "file",
    ) -> None:
        self.cfg = cfg
        self.source = source  # the metrics' `source` of what emit() is given without one
        self.daemon = daemon
        self.metrics = metrics if metrics is not None else Metrics()
        self.output = output
        self.keep_rejects = keep_rejects
        self.stdout_only = all(s.url == "stdout:" for s in sinks) and not daemon
        if not self.stdout_only:
            check_names(sinks)
            check_storage_folders(cfg)
        self.stage = PrivacyStage(cfg, open_country_lookup(cfg))
        self.sink_configs = list(sinks)
        self.deliveries: list[Delivery] = (
            [] if self.stdout_only else [self._delivery(s) for s in sinks]
        )
        self.stats = Stats(self.metrics, source)  # the clock starts here, before any read
        self.out = Output.stdout() if self.stdout_only else None
        self._started = False
        self._retired: list[tuple[Delivery, threading.Thread]] = []  # removed by a reload
        self._retired_stats: dict[str, DeliveryStats] = {}

    # --- parts ------------------------------------------------------------------------------
    def _delivery(self, s: config_mod.SinkConfig) -> Delivery:
        handoff = self.cfg.serve.handoff_max_bytes if self.daemon else None
        return Delivery(open_sink(s), s, self.cfg.storage, self.metrics, handoff_max_bytes=handoff)

    def pipeline(self, fmt: LineFormat | None) -> LinePipeline:
        """A pipeline on the current privacy stage; `fmt` None rejects every line."""
        return LinePipeline(
            fmt,
            self.stage,
            self.output,
            self.cfg.input.max_line_bytes,
            keep_rejects=self.keep_rejects,
            summarize=self.summarizer(),
        )

    def summarizer(self):
        """The rollup a pipeline computes per chunk, when a sink keeps one (SQLite)."""
        for d in self.deliveries:
            summarize = getattr(d.sink, "summarize", None)
            if summarize is not None:
                return summarize
        return None

    # --- running ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the delivery threads (after `pipe` forked its workers, never before); also
        with no input at all, so that what a former run spooled is replayed."""
        if not self._started:
            for d in self.deliveries:
                d.start()
            self._started = True

    def emit(
        self,
        result: ChunkResult,
        ack: Callable[[], None] | None = None,
        source: str | None = None,
    ) -> None:
        """Count a processed chunk and hand its records to every sink (or stdout)."""
        self.stats.add(result.lines_in, result.records_out, result.rejected, source)
        if result.counts is not None:
            self.metrics.count_stage(result.counts, self.stage.lookup is not None)
        if self.out is not None:
            if result.output:
                self.out.write(result.output)
            if ack is not None:
                ack()
            return
        self.start()
        batch = CleanBatch(result.output, result.records_out, result.summary)
        deliveries = self.deliveries
        if not self.daemon:
            for d in deliveries:
                d.submit(batch)
            return
        if ack is not None and (not batch.count or not deliveries):
            ack()
            ack = None
        fan = _Fan(len(deliveries), ack) if ack is not None else None
        for d in deliveries:
            d.offer(batch, fan)

    def reject(self, reason: str, n: int, source: str | None = None) -> None:
        """Lines a source skipped before any pipeline saw them (too long to hold)."""
        self.stats.reject(reason, n, source)

    def not_ready(self) -> dict[str, str]:
        """What keeps the sinks from being ready (for /readyz): sink name -> why."""
        out = {}
        for d in self.deliveries:
            why = d.health()
            if why is not None:
                out[f"sink {d.label}"] = why
        return out

    def snapshot(self) -> dict:
        """The counters `--stats` writes: lines_in, records_out, rejected, sinks, sources."""
        doc = self.stats.as_dict()
        if self.daemon:
            doc["sources"] = self.stats.by_source()
        return doc

    # --- reload (SIGHUP) --------------------------------------------------------------------
    def reload(self, cfg: config_mod.Config, sinks: Sequence[config_mod.SinkConfig]) -> None:
        """Take new privacy rules and sinks; raise ConfigError (changing nothing) when they
        cannot be used. Pipelines made before keep the old rules: call `pipeline` again.

        A sink of the same name with a new URL, password or batch settings gets the new store
        from its next batch (its spool and queue carry over); a new name is a new sink; a sink
        no longer named is flushed and closed on a thread of its own. `storage.*` and
        `serve.*` take effect at the next start."""
        check_names(sinks)
        stage = PrivacyStage(cfg, open_country_lookup(cfg))
        wanted = {sink_name(s): s for s in sinks}
        current = {d.label: d for d in self.deliveries}
        changed = {
            n: open_sink(s) for n, s in wanted.items() if n in current and current[n].cfg != s
        }
        added = {n: self._delivery(s) for n, s in wanted.items() if n not in current}
        if cfg.storage != self.cfg.storage or cfg.serve != self.cfg.serve:
            log.warning("reload: [storage] and [serve] changes take effect at the next start")
        for name, sink in changed.items():
            current[name].reconfigure(sink, wanted[name])
        for d in added.values():
            if self._started:
                d.start()
        for name, d in current.items():
            if name not in wanted:
                t = threading.Thread(target=self._retire, args=(d,), name=f"retire-{name}")
                t.start()
                self._retired.append((d, t))
        self.deliveries = [current.get(n) or added[n] for n in wanted]
        self.sink_configs = list(sinks)
        self.stage = stage
        self.cfg = replace_rules(self.cfg, cfg)

    def _retire(self, d: Delivery) -> None:
        self._retired_stats[d.label] = d.close()

    # --- closing ----------------------------------------------------------------------------
    def close(self, replay: bool = True) -> dict[str, dict]:
        """Flush every sink (each within storage.shutdown_timeout_secs); per sink name, what it
        delivered, spooled, refused, dropped and left in the spool. `replay=False`: a start
        that failed (nothing was read) does not start the sinks just to replay their spools."""
        if not replay and not self._started:
            return {}
        self.start()
        closed: dict[str, DeliveryStats] = {}
        threads = [  # side by side: each waits up to its own shutdown timeout
            threading.Thread(target=lambda d=d: closed.__setitem__(d.label, d.close()))
            for d in self.deliveries
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out = {d.label: vars(closed[d.label]) for d in self.deliveries}
        for d, t in self._retired:
            t.join()
            out.setdefault(d.label, vars(self._retired_stats[d.label]))
        return out


def replace_rules(old: config_mod.Config, new: config_mod.Config) -> config_mod.Config:
    """`new`, but with the sections a reload does not apply (storage, serve) kept from `old`."""
    return replace(new, storage=old.storage, serve=old.serve)
