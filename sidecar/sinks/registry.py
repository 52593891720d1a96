"""Sink URLs -> sinks: `stdout:`, `sqlite:PATH`, `clickhouse:http://...`, `jsonl:PATH`,
`http:URL`."""

from __future__ import annotations

from sidecar.config import SinkConfig
from sidecar.sinks.base import Sink


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
