"""mitmproxy's own event log, made fit for sidecar's self-log: struck, quiet, counted.

mitmproxy logs through Python logging, on `mitmproxy.*` loggers, with the peer's address in
the message ("203.0.113.7:50000: client connect" once its termlog prefixes it) and in an
`extra` named `client`. Here its records go to the self-log's one handler (selflog: JSON lines,
every IP literal struck in the message, the extras and the traceback), from WARNING up, and
each record loses its `client` extra before anything formats it. Below WARNING nothing is
written (connects and disconnects would be one line per connection); one INFO record is
counted first: a request mitmproxy could not parse at all (`<peer>: <why>` from its HTTP/1
reader, or an HTTP/2 protocol error), which never becomes a flow the addon sees, counts as
`sidecar_proxy_exchanges_total{result="malformed"}`.

One ERROR record is expected and not written: a beacon body of unknown length (chunked) that
outgrows `proxy.stream_min_bytes` while the proxy holds its 413 answer makes mitmproxy try to
stream it, which it refuses ("Can't set a response and enable streaming"), closing that one
connection with the 413 sent; the addon has counted it under `beacon_too_large` already.
"""

from __future__ import annotations

import logging

from sidecar.metrics import Metrics

LOGGER = "mitmproxy"
_SERVER = "mitmproxy.proxy.server"


class EventLog(logging.Filter):
    """A filter on the self-log's handler, for mitmproxy's records only."""

    def __init__(self, metrics: Metrics, level: int = logging.WARNING) -> None:
        super().__init__()
        self.level = level
        self._malformed = metrics.proxy_exchanges.labels("malformed")

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(LOGGER):
            return True
        client = record.__dict__.pop("client", None)
        if record.levelno >= self.level:
            return not _beacon_overflow(record)
        if record.name == _SERVER and client and _unparsed(record):
            self._malformed.inc()
        return False


_STREAM_REFUSED = "Can't set a response and enable streaming"


def _beacon_overflow(record: logging.LogRecord) -> bool:
    """mitmproxy's crash record for a too-large chunked beacon (see the module's doc)."""
    exc = record.exc_info[1] if record.exc_info else None
    return isinstance(exc, NotImplementedError) and str(exc).startswith(_STREAM_REFUSED)


def _unparsed(record: logging.LogRecord) -> bool:
    """A request the HTTP/1 reader refused before any flow (`<peer>: <why>`), or HTTP/2's."""
    msg = record.msg if isinstance(record.msg, str) else ""
    if "protocol error" in msg.lower():
        return True
    head, sep, _ = msg.partition(": ")
    return bool(sep) and head[-1:].isdigit() and head.count(":") >= 1 and " " not in head


def install(handler: logging.Handler, metrics: Metrics, level: int = logging.WARNING) -> EventLog:
    """Send mitmproxy's records to `handler` (the self-log's), filtered as above."""
    for f in list(handler.filters):
        if isinstance(f, EventLog):
            handler.removeFilter(f)
    event_log = EventLog(metrics, level)
    handler.addFilter(event_log)
    logger = logging.getLogger(LOGGER)
    for h in list(logger.handlers):
        logger.removeHandler(h)
    logger.addHandler(handler)
    logger.setLevel(min(level, logging.INFO))
    logger.propagate = False
    return event_log
