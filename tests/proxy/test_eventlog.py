"""proxy.eventlog: mitmproxy's own log records in sidecar's self-log, struck, quiet and counted.

The records are logged the way mitmproxy 11 logs them: on `mitmproxy.*` loggers, the peer in
the message as `mitmproxy.utils.human.format_address` writes it and as the `client` extra
(`mitmproxy.proxy.server.ConnectionHandler.log`). The handler is the real self-log handler
(`selflog.configure`) writing to a StringIO.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from mitmproxy.utils.human import format_address

from sidecar import selflog
from sidecar.metrics import Metrics, totals
from sidecar.proxy import eventlog

SERVER = logging.getLogger("mitmproxy.proxy.server")  # where mitmproxy's connections log
PEER = ("203.0.113.7", 50000)
PEERS = [
    ("203.0.113.7", 50000),
    ("2001:db8:1:2::99", 50000, 0, 0),
    ("::ffff:203.0.113.7", 50000, 0, 0),  # a dual-stack listener's IPv4 peer
]
FULL = ("203.0.113.7", "2001:db8:1:2::99")


class EventLog:
    """What a test reads: the self-log's lines and the proxy's exchange counters."""

    def __init__(self, stream: io.StringIO, metrics: Metrics, handler: logging.Handler) -> None:
        self.stream = stream
        self.metrics = metrics
        self.handler = handler

    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, object]]:
        text = self.text()
        assert text == "" or text.endswith("\n")
        return [json.loads(line) for line in text.split("\n")[:-1]]

    def malformed(self) -> int:
        return totals(self.metrics.proxy_exchanges, "result").get("malformed", 0)


@pytest.fixture
def event_log() -> Iterator[EventLog]:
    stream = io.StringIO()
    handler = selflog.configure(stream)
    metrics = Metrics()
    eventlog.install(handler, metrics)
    try:
        yield EventLog(stream, metrics, handler)
    finally:
        selflog.reset()
        logger = logging.getLogger(eventlog.LOGGER)
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def _no_full_address(text: str) -> None:
    for address in FULL:
        assert address not in text


# --- quiet below WARNING ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "logger, msg",
    [
        ("mitmproxy.proxy.server", "client connect"),
        ("mitmproxy.proxy.server", "client disconnect"),
        ("mitmproxy.proxy.server", "server connect origin.internal:8000 (127.0.0.1:8000)"),
        ("mitmproxy.proxy.server", "Client closed connection before completing request headers"),
        ("mitmproxy.proxy.layers.http", "Streaming request to origin.internal."),
        ("mitmproxy.addons.proxyserver", "HTTP(S) proxy listening at *:8080."),
    ],
)
def test_info_records_write_nothing_and_count_nothing(
    event_log: EventLog, logger: str, msg: str
) -> None:
    logging.getLogger(logger).info(msg, extra={"client": PEER})
    assert event_log.text() == ""
    assert event_log.malformed() == 0


def test_debug_records_write_nothing(event_log: EventLog) -> None:
    SERVER.debug("%s: [h2] done", format_address(PEER), extra={"client": PEER})
    assert event_log.text() == ""


# --- WARNING and up: written, struck, without the client extra ----------------------------------


@pytest.mark.parametrize("peer", PEERS)
def test_a_warning_is_written_struck_without_the_client(event_log: EventLog, peer) -> None:
    msg = f"{format_address(peer)}: Client TLS handshake failed from 203.0.113.7"
    SERVER.warning(msg, extra={"client": peer})
    (doc,) = event_log.lines()
    assert doc["level"] == "warning"
    assert doc["logger"] == "mitmproxy.proxy.server"
    assert "client" not in doc and "extra.client" not in doc
    struck = "[2001:db8:1::]" if ":" in format_address(peer).rpartition(":")[0] else "203.0.113.0"
    assert doc["msg"] == f"{struck}:50000: Client TLS handshake failed from 203.0.113.0"
    _no_full_address(event_log.text())


def test_the_client_extra_is_removed_from_the_record_itself(event_log: EventLog) -> None:
    """Before anything formats it: no later handler or formatter can see it."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = Keep()
    event_log.handler.addFilter(lambda r: seen.append(r) or True)  # after the EventLog filter
    logging.getLogger(eventlog.LOGGER).addHandler(keep)
    try:
        SERVER.warning("203.0.113.7:50000: bad", extra={"client": PEER})
    finally:
        logging.getLogger(eventlog.LOGGER).removeHandler(keep)
    assert seen and all(not hasattr(r, "client") for r in seen)


def test_an_error_with_a_traceback_is_struck(event_log: EventLog) -> None:
    try:
        raise ConnectionError("peer 203.0.113.7 reset the stream")
    except ConnectionError:
        SERVER.error("mitmproxy has crashed!", exc_info=True, extra={"client": PEER})
    (doc,) = event_log.lines()
    assert doc["level"] == "error"
    assert doc["error"] == "ConnectionError"
    assert "peer 203.0.113.0 reset the stream" in str(doc["traceback"])
    assert "client" not in doc
    _no_full_address(event_log.text())


def test_a_warning_without_a_client_extra_is_written(event_log: EventLog) -> None:
    logging.getLogger("mitmproxy.addons.tlsconfig").warning("certificate 203.0.113.7 expired")
    (doc,) = event_log.lines()
    assert doc["msg"] == "certificate 203.0.113.0 expired"


# --- malformed requests: counted, never written -------------------------------------------------


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize(
    "why",
    [
        "Bad HTTP request line: b'GARBAGE /?ip=203.0.113.7'",
        "Bad HTTP request line: b'GET http://203.0.113.7:0/ HTTP/1.1'",
        "Invalid header line: b'no colon 203.0.113.7'",
        "Invalid HTTP/2 request headers: Required pseudo header is missing: b':path'",
    ],
)
def test_a_request_mitmproxy_could_not_parse_counts_as_malformed(
    event_log: EventLog, peer, why: str
) -> None:
    """`<peer>: <why>`, as mitmproxy's HTTP/1 reader (and its HTTP/2 protocol_error) logs it
    when the request never becomes a flow: the line it echoes is never written."""
    SERVER.info(f"{format_address(peer)}: {why}", extra={"client": peer})
    assert event_log.malformed() == 1
    assert event_log.text() == ""


def test_an_http2_protocol_error_counts_as_malformed(event_log: EventLog) -> None:
    SERVER.info("HTTP/2 protocol error: stream 1 reset", extra={"client": PEER})
    assert event_log.malformed() == 1
    assert event_log.text() == ""


def test_each_malformed_request_counts_once(event_log: EventLog) -> None:
    for _ in range(3):
        SERVER.info(f"{format_address(PEER)}: Bad HTTP request line: b'x'", extra={"client": PEER})
    assert totals(event_log.metrics.proxy_exchanges, "result") == {"malformed": 3}


@pytest.mark.parametrize(
    "logger, msg, client",
    [
        # not from the connection handler
        ("mitmproxy.proxy.layers.http", "203.0.113.7:50000: Bad HTTP request line: b'x'", PEER),
        # no client extra: not a connection's record
        ("mitmproxy.proxy.server", "203.0.113.7:50000: Bad HTTP request line: b'x'", None),
        # the head is no peer address
        ("mitmproxy.proxy.server", "Client closed connection before completing: b'GET /'", PEER),
        ("mitmproxy.proxy.server", "server connect origin.internal:8000", PEER),
        ("mitmproxy.proxy.server", "Unexpected data from server: b'x'", PEER),
        ("mitmproxy.proxy.server", "client connect", PEER),
    ],
)
def test_other_info_records_do_not_count(
    event_log: EventLog, logger: str, msg: str, client
) -> None:
    extra = {"client": client} if client is not None else {}
    logging.getLogger(logger).info(msg, extra=extra)
    assert event_log.malformed() == 0
    assert event_log.text() == ""


def test_a_warning_shaped_like_a_malformed_request_is_written_not_counted(
    event_log: EventLog,
) -> None:
    SERVER.warning(f"{format_address(PEER)}: Bad HTTP request line: b'x'", extra={"client": PEER})
    assert event_log.malformed() == 0
    (doc,) = event_log.lines()
    assert doc["msg"] == "203.0.113.0:50000: Bad HTTP request line: b'x'"


# --- sidecar's own records, and the installation --------------------------------------------------


def test_sidecar_records_pass_untouched(event_log: EventLog) -> None:
    own = logging.getLogger("sidecar.proxy.addon")
    own.info("batch of %d records", 3, extra={"client": "sink-a", "records": 3})
    own.warning("sink %s slow", "sqlite-analytics.db")
    first, second = event_log.lines()
    assert first["level"] == "info" and first["msg"] == "batch of 3 records"
    assert first["client"] == "sink-a" and first["records"] == 3  # its extras kept
    assert second["msg"] == "sink sqlite-analytics.db slow"
    assert event_log.malformed() == 0


def test_sidecar_records_below_warning_still_pass(event_log: EventLog) -> None:
    logging.getLogger("sidecar.proxy.master").info("203.0.113.7:50000: looks like a peer")
    (doc,) = event_log.lines()
    assert doc["msg"] == "203.0.113.0:50000: looks like a peer"  # struck by the self-log
    assert event_log.malformed() == 0


def test_mitmproxy_records_go_to_the_self_log_only(event_log: EventLog) -> None:
    logger = logging.getLogger(eventlog.LOGGER)
    logger.addHandler(logging.StreamHandler(io.StringIO()))  # say, mitmproxy's own
    eventlog.install(event_log.handler, event_log.metrics)  # in the test: pytest adds its own
    assert logger.handlers == [event_log.handler]
    assert logger.propagate is False
    assert logger.level == logging.INFO  # INFO records are made, to be counted


def test_install_again_replaces_the_filter_and_handler(event_log: EventLog) -> None:
    other = logging.StreamHandler(io.StringIO())
    logger = logging.getLogger(eventlog.LOGGER)
    logger.addHandler(other)
    metrics = Metrics()
    second = eventlog.install(event_log.handler, metrics)
    assert logger.handlers == [event_log.handler]
    filters = [f for f in event_log.handler.filters if isinstance(f, eventlog.EventLog)]
    assert filters == [second]
    SERVER.info(f"{format_address(PEER)}: Bad HTTP request line: b'x'", extra={"client": PEER})
    assert totals(metrics.proxy_exchanges, "result")["malformed"] == 1  # the new metrics
    assert event_log.malformed() == 0
    SERVER.warning("once 203.0.113.7", extra={"client": PEER})
    assert len(event_log.lines()) == 1


def test_a_lower_level_writes_info_records_struck(event_log: EventLog) -> None:
    eventlog.install(event_log.handler, event_log.metrics, level=logging.INFO)
    SERVER.info("client connect from 203.0.113.7", extra={"client": PEER})
    (doc,) = event_log.lines()
    assert doc["msg"] == "client connect from 203.0.113.0"
    assert "client" not in doc


def test_the_expected_crash_of_a_too_large_chunked_beacon_is_not_written(
    event_log: EventLog,
) -> None:
    try:
        raise NotImplementedError("Can't set a response and enable streaming at the same time.")
    except NotImplementedError:
        SERVER.error("mitmproxy has crashed!", exc_info=True, extra={"client": PEER})
    try:
        raise NotImplementedError("something else")
    except NotImplementedError:
        SERVER.error("mitmproxy has crashed!", exc_info=True, extra={"client": PEER})
    (doc,) = event_log.lines()  # any other crash is written
    assert "something else" in str(doc["traceback"])
