"""Sink URLs -> sinks: `stdout:`, `sqlite:PATH`, `clickhouse:http://...`, `jsonl:PATH`,
`http:URL`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sidecar.config import SinkConfig
from sidecar.errors import ConfigError
from sidecar.sinks.base import Sink, sink_name


def check_names(configs: Sequence[SinkConfig]) -> None:
    """Two sinks never share a name: it is their spool folder and their metric label."""
    counts = Counter(sink_name(c) for c in configs)
    for name, n in counts.items():
        if n > 1:
            raise ConfigError(
                f"sinks: {n} sinks are named {name!r} (the default from their scheme and "
                "file or table); give each a distinct `name` in [[sinks]]"
            )


def open_sink(config: SinkConfig) -> Sink:
    """A sink for a checked SinkConfig (config.py has validated the URL's scheme)."""
    scheme = config.url.partition(":")[0]
    if scheme == "sqlite":
        from sidecar.sinks.sqlite import SqliteSink

        return SqliteSink(config)
    if scheme == "clickhouse":
        from sidecar.sinks.clickhouse import ClickHouseSink

        return ClickHouseSink(config)
    if scheme == "jsonl":
        from sidecar.sinks.jsonl import JsonlSink

        return JsonlSink(config)
    if scheme == "http":
        from sidecar.sinks.http import HttpSink

        return HttpSink(config)
    if scheme == "stdout":
        from sidecar.sinks.stdout import StdoutSink

        return StdoutSink(config)
    raise AssertionError(f"unchecked sink scheme {scheme!r}")
