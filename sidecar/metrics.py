"""Every metric sidecar exports, defined in one place, on an injectable registry.

Names follow `sidecar_<noun>_<unit>_total` for counters, in base units. Label values come from
closed sets only: a rejection reason (sidecar.reject.REASONS), a sink id (from the config, never
from input), a drop or dead-letter reason from a fixed list. No label ever holds input data.
"""

from __future__ import annotations

import errno

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, write_to_textfile

from sidecar.writable import replaceable_file_error

DROP_REASONS = ("spool_full", "spool_write_failed", "dead_letter_write_failed", "shutdown_timeout")
DEAD_LETTER_REASONS = ("schema", "data", "other")
#: where lines come from: `sidecar pipe`'s files and stdin, `sidecar serve`'s sources
SOURCES = ("pipe", "stdin", "syslog_udp", "syslog_unix", "follow")
RELOAD_RESULTS = ("ok", "refused")


class Metrics:
    """The metric families of one sidecar process (tests pass their own registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.lines = Counter("sidecar_lines_total", "Input lines read.", registry=r)
        self.lines_rejected = Counter(
            "sidecar_lines_rejected_total",
            "Input lines skipped, by reason.",
            ["reason"],
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
        self.sink_retries = Counter(
            "sidecar_sink_retries_total", "Failed delivery attempts that will be retried.",
            ["sink"], registry=r,
        )  # fmt: skip
        self.spool_bytes = Gauge(
            "sidecar_spool_bytes", "Bytes waiting in the disk spool.", ["sink"], registry=r
        )
        self.batch_seconds = Histogram(
            "sidecar_sink_batch_seconds",
            "Time to deliver one batch to a store.",
            ["sink"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )

        self.source_lines = Counter(
            "sidecar_source_lines_total", "Input lines read, by source.", ["source"], registry=r
        )
        self.datagrams = Counter(
            "sidecar_datagrams_total", "Syslog datagrams received.", ["source"], registry=r
        )
        self.datagrams_malformed = Counter(
            "sidecar_datagrams_malformed_total",
            "Syslog datagrams that were not syslog (skipped), by reason.",
            ["source", "reason"],
            registry=r,
        )
        self.datagrams_kernel_dropped = Counter(
            "sidecar_datagrams_kernel_dropped_total",
            "Datagrams the kernel dropped on the socket before sidecar read them (/proc/net/udp).",
            ["source"],
            registry=r,
        )
        self.records_overflowed = Counter(
            "sidecar_records_overflowed_total",
            "Clean records put straight into the spool because the in-memory hand-off was full.",
            ["sink"],
            registry=r,
        )
        self.config_reloads = Counter(
            "sidecar_config_reloads_total", "SIGHUP config reloads, by result.", ["result"],
            registry=r,
        )  # fmt: skip

    def write_textfile(self, path: str) -> None:
        """For node_exporter's textfile collector (batch jobs such as `sidecar pipe`).

        The file is written aside and renamed over `path`, so a path that is not a regular file
        (a device, a FIFO, a folder) is refused with an OSError rather than replaced."""
        error = replaceable_file_error(path)
        if error is not None:
            raise OSError(errno.EINVAL, error)
        write_to_textfile(path, self.registry)
