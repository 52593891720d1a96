"""A real origin on loopback for the proxy's tests: it answers with what it received.

- `GET /echo...` (any path but the segment's): a JSON object of what reached the origin: the
  method, the request target (path and query as sent), and every header as a [name, value]
  pair, in order. Every request is also kept in `Origin.seen` (the beacon tests check that
  none reached it).
- `GET /slow`: the same, after `X-Delay-Secs` seconds (default 1).
- `GET /segment.ts`: `segment_bytes` of a fixed pseudo-random pattern (a video segment),
  written in 64 KiB pieces with a Content-Length; `GET /chunked.ts` the same, chunked.

A ThreadingHTTPServer with HTTP/1.1 keep-alive, in a thread of the test process, on an IPv4 or
IPv6 loopback address.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PIECE = 64 << 10


def segment(size: int) -> bytes:
    """The segment's bytes: a repeated SHA-256 stream (no run a compressor would shorten)."""
    out = bytearray()
    block = hashlib.sha256(b"segment").digest() * (PIECE // 32)
    while len(out) < size:
        out += block
    return bytes(out[:size])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        body = self._read_body()
        seen = {"method": self.command, "target": self.path, "headers": list(self.headers.items()),
                "body_bytes": len(body)}  # fmt: skip
        self.server.seen.append(seen)
        if self.path.startswith("/slow"):  # an exchange still in flight at SIGTERM
            time.sleep(float(self.headers.get("x-delay-secs") or 1.0))
        if self.path.startswith("/segment.ts") or self.path.startswith("/chunked.ts"):
            self._segment(chunked=self.path.startswith("/chunked.ts"))
            return
        data = json.dumps(seen).encode()
        self.send_response(int(self.headers.get("x-want-status") or 200))
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _segment(self, chunked: bool) -> None:
        data = self.server.segment
        self.send_response(200)
        self.send_header("content-type", "video/mp2t")
        if chunked:
            self.send_header("transfer-encoding", "chunked")
        else:
            self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command == "HEAD":
            return
        view = memoryview(data)
        for i in range(0, len(data), PIECE):
            piece = view[i : i + PIECE]
            if chunked:
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            else:
                self.wfile.write(piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: list
    segment: bytes


class Origin:
    """`with Origin() as o:` an origin on `o.url` (`http://127.0.0.1:PORT`)."""

    def __init__(self, host: str = "127.0.0.1", segment_bytes: int = 4 << 20) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_cls = type("_S", (_Server,), {"address_family": family})
        self.server = server_cls((host, 0), _Handler)
        self.server.seen = []
        self.server.segment = segment(segment_bytes)
        self.port = self.server.server_address[1]
        bracketed = f"[{host}]" if ":" in host else host
        self.url = f"http://{bracketed}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def seen(self) -> list[dict]:
        return self.server.seen

    @property
    def segment(self) -> bytes:
        return self.server.segment

    def __enter__(self) -> Origin:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
