"""Every metric sidecar exports, defined in one place, on an injectable registry.

Names follow `sidecar_<noun>_<unit>_total` for counters, in base units. Label values come from
closed sets only: a source (SOURCES), a rejection reason (sidecar.reject.REASONS), a sink name
(from the config, never an address), a drop, dead-letter, datagram or reload result from a fixed
list. No label ever holds input data. docs/metrics.md documents every family.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    write_to_textfile,
)

from sidecar import __version__
from sidecar.record import SCHEMA_VERSION
from sidecar.reject import REASONS
from sidecar.sources.syslog import MALFORMED_REASONS
from sidecar.writable import replaceable_file_error

if TYPE_CHECKING:  # sinks import this module: it must not pull in the privacy stage
    from sidecar.privacy.stage import StageCounts

DROP_REASONS = ("spool_full", "spool_write_failed", "dead_letter_write_failed", "shutdown_timeout")
DEAD_LETTER_REASONS = ("schema", "data", "other")
#: where lines come from: `sidecar pipe`'s files or stdin, `sidecar serve`'s sources, the proxy
SOURCES = ("stdin", "file", "follow", "syslog_udp", "syslog_unix", "proxy")
SYSLOG_SOURCES = ("syslog_udp", "syslog_unix")
#: a syslog datagram: read (`ok`), or why not (sources/syslog.py's reasons)
DATAGRAM_RESULTS = ("ok", *MALFORMED_REASONS)
RELOAD_RESULTS = ("ok", "refused")
#: a country lookup: a country found, none for the address, or no database configured
GEO_RESULTS = ("hit", "miss", "none")
IP_FAMILIES = ("ipv4", "ipv6")
REFERRER_KINDS = ("first_party", "third_party", "none", "dropped")
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")
#: an exchange through `sidecar proxy`: forwarded to the origin, a beacon answered, or why not
PROXY_RESULTS = ("forwarded", "beacon", "upstream_error", "aborted", "absolute_form", "connect",
                 "malformed", "beacon_too_large", "beacon_method")  # fmt: skip

# the `_created` series double every counter for no use (and dashboards trip on them)
disable_created_metrics()


def totals(counter: Counter, by: str, **where: str) -> dict[str, int]:
    """A counter family's values summed by one of its labels, over the series whose other
    labels are `where`: totals(m.lines_rejected, "reason", source="stdin")."""
    out: dict[str, int] = {}
    for family in counter.collect():
        for s in family.samples:
            if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in where.items()):
                out[s.labels[by]] = out.get(s.labels[by], 0) + int(s.value)
    return out


class Metrics:
    """The metric families of one sidecar process (tests pass their own registry).

    Closed label sets are set to 0 at start, and `add_source` / `add_sink` do the same for
    each configured source and sink, so that `rate()` and alerts work from the first scrape."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.lines_received = Counter(
            "sidecar_lines_received_total", "Input lines read, by source.", ["source"],
            registry=r,
        )  # fmt: skip
        self.lines_rejected = Counter(
            "sidecar_lines_rejected_total",
            "Input lines skipped, by source and reason.",
            ["source", "reason"],
            registry=r,
        )
        self.records_out = Counter(
            "sidecar_records_out_total",
            "Clean records the privacy stage made, by source.",
            ["source"],
            registry=r,
        )
        self.records_delivered = Counter(
            "sidecar_records_delivered_total",
            "Clean records the store confirmed.",
            ["sink"],
            registry=r,
        )
        self.records_spooled = Counter(
            "sidecar_records_spooled_total",
            "Clean records written to the disk spool while the store was unavailable.",
            ["sink"],
            registry=r,
        )
        self.records_dropped = Counter(
            "sidecar_records_dropped_total",
            "Clean records dropped, by reason (a full spool).",
            ["sink", "reason"],
            registry=r,
        )
        self.records_dead_lettered = Counter(
            "sidecar_records_dead_lettered_total",
            "Clean records the store refused, written to the dead-letter file, by reason.",
            ["sink", "reason"],
            registry=r,
        )
        self.records_overflowed = Counter(
            "sidecar_records_overflowed_total",
            "Clean records put straight into the spool because the in-memory hand-off was full.",
            ["sink"],
            registry=r,
        )
        self.sink_retries = Counter(
            "sidecar_sink_retries_total", "Failed delivery attempts that will be retried.",
            ["sink"], registry=r,
        )  # fmt: skip
        self.spool_bytes = Gauge(
            "sidecar_spool_bytes", "Bytes waiting in the disk spool.", ["sink"], registry=r
        )
        self.spool_max_bytes = Gauge(
            "sidecar_spool_max_bytes", "The disk spool's bound (storage.spool_max_bytes).",
            ["sink"], registry=r,
        )  # fmt: skip
        self.queue_bytes = Gauge(
            "sidecar_queue_bytes",
            "Bytes of clean records waiting in memory for the sink (serve's hand-off).",
            ["sink"],
            registry=r,
        )
        self.sink_up = Gauge(
            "sidecar_sink_up", "1 while the store took its last batch, else 0.", ["sink"],
            registry=r,
        )  # fmt: skip
        self.sink_last_success = Gauge(
            "sidecar_sink_last_success_timestamp_seconds",
            "When the store last confirmed a batch (Unix time).",
            ["sink"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "sidecar_sink_batch_seconds",
            "Time to deliver one batch to a store.",
            ["sink"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.syslog_datagrams = Counter(
            "sidecar_syslog_datagrams_total",
            "Syslog datagrams received, by result: ok, or why one was skipped.",
            ["source", "result"],
            registry=r,
        )
        self.datagrams_kernel_dropped = Counter(
            "sidecar_datagrams_kernel_dropped_total",
            "Datagrams the kernel dropped on the socket before sidecar read them (/proc/net/udp).",
            ["source"],
            registry=r,
        )
        self.config_reloads = Counter(
            "sidecar_config_reloads_total", "SIGHUP config reloads, by result.", ["result"],
            registry=r,
        )  # fmt: skip
        self.geo_lookups = Counter(
            "sidecar_geo_lookups_total",
            "Country lookups: hit (a country), miss (none for the address), none (no database).",
            ["result"],
            registry=r,
        )
        self.ips_masked = Counter(
            "sidecar_ips_masked_total", "Client addresses struck, by family.", ["family"],
            registry=r,
        )  # fmt: skip
        self.referrers = Counter(
            "sidecar_referrers_total",
            "Referrers: first_party (path kept), third_party (host kept), dropped, none.",
            ["kind"],
            registry=r,
        )
        self.records_by_country = Counter(
            "sidecar_records_by_country_total",
            "Clean records by country (ISO 3166-1 alpha-2, or unknown).",
            ["country"],
            registry=r,
        )
        self.records_by_status_class = Counter(
            "sidecar_records_by_status_class_total",
            "Clean records by HTTP status class (1xx to 5xx, or other).",
            ["status_class"],
            registry=r,
        )
        self.proxy_exchanges = Counter(
            "sidecar_proxy_exchanges_total",
            "Requests sidecar proxy took: forwarded, beacon (answered itself), or why refused.",
            ["result"],
            registry=r,
        )
        self.proxy_request_seconds = Histogram(
            "sidecar_proxy_request_duration_seconds",
            "Time from a request's first byte to its response's last, through sidecar proxy.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                     5, 10, 30),
            registry=r,
        )  # fmt: skip
        self.build_info = Gauge(
            "sidecar_build_info", "sidecar's version and its record schema version (always 1).",
            ["version", "schema"], registry=r,
        )  # fmt: skip
        self.build_info.labels(__version__, str(SCHEMA_VERSION)).set(1)
        ProcessCollector(registry=r)
        for family, values in ((self.config_reloads, RELOAD_RESULTS),
                               (self.geo_lookups, GEO_RESULTS), (self.ips_masked, IP_FAMILIES),
                               (self.referrers, REFERRER_KINDS),
                               (self.records_by_status_class, STATUS_CLASSES),
                               (self.records_by_country, ("unknown",))):  # fmt: skip
            for value in values:  # countries: only `unknown` (not 250 zero series)
                family.labels(value)

    def count_stage(self, counts: StageCounts, geo_configured: bool) -> None:
        """One chunk's privacy-stage counts (pipeline.ChunkResult.counts) into the families."""
        records = 0
        by_country = self.records_by_country
        for country, n in counts.countries.items():
            by_country.labels(country or "unknown").inc(n)
            records += n
        unknown = counts.countries.get(None, 0)
        self.geo_lookups.labels("hit").inc(records - unknown)
        self.geo_lookups.labels("miss" if geo_configured else "none").inc(unknown)
        self.ips_masked.labels("ipv6").inc(counts.ipv6)
        self.ips_masked.labels("ipv4").inc(records - counts.ipv6)
        for kind, n in counts.referrers.items():
            if n:
                self.referrers.labels(kind).inc(n)
        by_class = self.records_by_status_class
        for hundreds, n in counts.status_classes.items():
            by_class.labels(f"{hundreds}xx" if 1 <= hundreds <= 5 else "other").inc(n)

    def add_source(self, source: str) -> None:
        """Set a source's series to 0 (every reason, every datagram result)."""
        self.lines_received.labels(source)
        self.records_out.labels(source)
        for reason in REASONS:
            self.lines_rejected.labels(source, reason)
        if source == "proxy":
            for result in PROXY_RESULTS:
                self.proxy_exchanges.labels(result)
        if source in SYSLOG_SOURCES:
            for result in DATAGRAM_RESULTS:
                self.syslog_datagrams.labels(source, result)
            self.datagrams_kernel_dropped.labels(source)

    def add_sink(self, sink: str, spool_max_bytes: int) -> None:
        """Set a sink's series to 0 (and its bound), and say it is up until it fails."""
        for family in (self.records_delivered, self.records_spooled, self.records_overflowed,
                       self.sink_retries, self.spool_bytes, self.queue_bytes,
                       self.sink_last_success, self.batch_seconds):  # fmt: skip
            family.labels(sink)
        for reason in DROP_REASONS:
            self.records_dropped.labels(sink, reason)
        for reason in DEAD_LETTER_REASONS:
            self.records_dead_lettered.labels(sink, reason)
        self.spool_max_bytes.labels(sink).set(spool_max_bytes)
        self.sink_up.labels(sink).set(1)

    def write_textfile(self, path: str) -> None:
        """For node_exporter's textfile collector (batch jobs such as `sidecar pipe`).

        The file is written aside and renamed over `path`, so a path that is not a regular file
        (a device, a FIFO, a folder) is refused with an OSError rather than replaced."""
        error = replaceable_file_error(path)
        if error is not None:
            raise OSError(errno.EINVAL, error)
        write_to_textfile(path, self.registry)
