"""The HTTP endpoints of a daemon (`sidecar serve`, later `proxy`): /metrics, /healthz, /readyz.

- `GET /metrics`: the registry in the Prometheus text format, from prometheus_client's own WSGI
  app, which does the Accept negotiation (OpenMetrics for `Accept: application/openmetrics-text`,
  the classic 0.0.4 text format without an Accept header), gzip and `?name[]=` filters.
- `GET /healthz`: 200 `ok` while the process runs.
- `GET /readyz`: 200 `{"ready": true}`, or 503 `{"ready": false, "not_ready": {what: why}}` from
  the `readiness()` callback (sources bound, sinks accepting, spools below their bound).
- `HEAD` on each of them; any other method 405 with `Allow`; any other path 404.

The server is prometheus_client's thread-per-request WSGI server, on its own daemon thread: a
slow or stuck client holds only its own thread (and for at most `CLIENT_TIMEOUT_SECS` of
silence), never another scrape and never the daemon's event loop; at most `MAX_CLIENTS`
connections are served at once, so a flood of idle ones cannot grow the threads without bound
(one over the bound is closed unanswered). It is silent: no access log
line (a request line names the scraper's address), no traceback on stderr (an error is logged
through `logging` without the client's address), and the `Server` header says `sidecar` only.
"""

from __future__ import annotations

import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from sidecar.config import split_host_port
from sidecar.errors import UsageError

log = logging.getLogger(__name__)

WHERE = "serve.http (--http)"
CLIENT_TIMEOUT_SECS = 10.0  # a connection silent this long is closed (its thread ends)
MAX_CLIENTS = 64  # connections served at once; one more is closed unanswered
ALLOW = "GET, HEAD"
SERVER = "sidecar"

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Readiness = Callable[[], dict[str, str]]


def parse_address(address: str) -> tuple[str, int]:
    """(`host`, port) from `HOST:PORT` (port 0: any free one)."""
    parsed = split_host_port(address)
    if parsed is None:
        raise UsageError(f"{WHERE}: must be HOST:PORT (a port from 0 to 65535), got {address!r}")
    return parsed


class _Handler(WSGIRequestHandler):
    """wsgiref's request handler made silent (as prometheus_client's own is), with a client
    timeout, no stderr and no version in the `Server` header."""

    timeout = CLIENT_TIMEOUT_SECS

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the access log line: it would name the client's address

    def version_string(self) -> str:
        return SERVER  # on the error pages http.server writes itself (400, 414)

    def get_stderr(self) -> Any:
        return _DISCARD  # wsgiref writes an application's traceback here


class _Discard:
    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass


_DISCARD = _Discard()


class _Server(ThreadingWSGIServer):
    """Binds without a reverse DNS lookup, reports handler errors without the client, and
    serves at most `max_clients` connections at once (a thread each: a flood of idle
    connections must not grow the daemon's threads without bound)."""

    max_clients = MAX_CLIENTS

    def server_activate(self) -> None:
        self._slots = threading.BoundedSemaphore(self.max_clients)
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # no thread started: nothing else will give the slot back
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            self._slots.release()

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks socket.getfqdn(host): a reverse lookup at every start
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()  # type: ignore[no-untyped-call]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints the client's address and a traceback to stderr
        log.warning("http: a request failed", exc_info=True)


class Endpoints:
    """The daemon's HTTP endpoints on `address`, served on a daemon thread once started."""

    def __init__(self, address: str, registry: CollectorRegistry, readiness: Readiness) -> None:
        self.address = address
        self.host, self._port = parse_address(address)
        self.readiness = readiness
        self._metrics = make_wsgi_app(registry)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        """The bound port (the one chosen by the kernel when the address said port 0)."""
        return self._server.server_port if self._server is not None else self._port

    def start(self) -> None:
        """Bind now (UsageError naming serve.http when it cannot), then serve on a thread."""
        with self._lock:
            if self._server is not None:
                return
            self._server = self._bind()
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="sidecar-http",
                daemon=True,
            )
            self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port; idempotent."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        server.shutdown()  # returns once serve_forever has left its loop
        server.server_close()
        if thread is not None:
            thread.join()

    def _bind(self) -> _Server:
        where = f"{WHERE}: cannot listen on {self.address}"
        try:
            infos = socket.getaddrinfo(
                self.host or None, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            family, _, _, _, sockaddr = infos[0]
        except (socket.gaierror, IndexError) as e:
            raise UsageError(f"{where}: unknown host") from e

        class Server(_Server):
            address_family = family
            max_clients = MAX_CLIENTS

        try:
            server = Server(sockaddr[:2], _Handler)
        except OSError as e:
            reason = os.strerror(e.errno) if e.errno else str(e)
            raise UsageError(f"{where}: {reason[:1].lower()}{reason[1:]}") from e
        server.set_app(self._route)
        return server

    # --- the WSGI router ------------------------------------------------------------------
    def _route(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        try:
            if path == "/metrics":
                page = self._metrics_page if method in ("GET", "HEAD") else _not_allowed
            elif path == "/healthz":
                page = _healthz if method in ("GET", "HEAD") else _not_allowed
            elif path == "/readyz":
                page = self._readyz if method in ("GET", "HEAD") else _not_allowed
            else:
                page = _not_found
            status, headers, body = page(environ)
        except Exception:
            log.exception("http: %s failed", path if path in _PATHS else "a request")
            status, headers, body = _text("500 Internal Server Error", "internal error\n")
        headers = [(k, v) for k, v in headers if k.lower() not in ("content-length", "server")]
        headers += [("Content-Length", str(len(body))), ("Server", SERVER)]
        start_response(status, headers)
        return [] if method == "HEAD" else [body]

    def _metrics_page(self, environ: Environ) -> tuple[str, list[tuple[str, str]], bytes]:
        # prometheus_client's app answers GET only: a HEAD is asked as a GET, its body dropped
        got: list[Any] = []

        def keep(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            got[:] = [status, list(headers)]

        body = b"".join(self._metrics({**environ, "REQUEST_METHOD": "GET"}, keep))
        return got[0], got[1], body

    def _readyz(self, _environ: Environ) -> tuple[str, list[tuple[str, str]], bytes]:
        try:
            not_ready = dict(self.readiness())
        except Exception:
            log.exception("http: the readiness check failed")
            not_ready = {"readiness": "the check failed"}
        if not_ready:
            status, doc = "503 Service Unavailable", {"ready": False, "not_ready": not_ready}
        else:
            status, doc = "200 OK", {"ready": True}
        body = orjson.dumps(doc, default=str, option=orjson.OPT_NON_STR_KEYS) + b"\n"
        return status, [("Content-Type", "application/json"), ("Cache-Control", "no-store")], body


_PATHS = ("/metrics", "/healthz", "/readyz")


def _text(status: str, text: str) -> tuple[str, list[tuple[str, str]], bytes]:
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")]
    return status, headers, text.encode()


def _healthz(_environ: Environ) -> tuple[str, list[tuple[str, str]], bytes]:
    return _text("200 OK", "ok\n")


def _not_found(_environ: Environ) -> tuple[str, list[tuple[str, str]], bytes]:
    return _text("404 Not Found", "not found: the paths are /metrics, /healthz, /readyz\n")


def _not_allowed(_environ: Environ) -> tuple[str, list[tuple[str, str]], bytes]:
    status, headers, body = _text("405 Method Not Allowed", f"method not allowed: {ALLOW}\n")
    return status, [*headers, ("Allow", ALLOW)], body
