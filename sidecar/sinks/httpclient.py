"""A small keep-alive HTTP/1.1 client over the standard library's http.client, for the
ClickHouse and HTTP sinks: one persistent connection, reopened after any failure."""

from __future__ import annotations

import http.client
import ipaddress
import threading
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

try:  # ISA-L's deflate: gzip-compatible and 5x faster than zlib at level 1 (PSF/BSD licences)
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - a platform without isal wheels
    import zlib as _deflate


def gzip_packer():
    """A streaming gzip compressor (`.compress(piece)`, `.flush()`) at the fastest level."""
    return _deflate.compressobj(1, _deflate.DEFLATED, 31)  # 31: gzip framing


def gzip_bytes(data: bytes) -> bytes:
    packer = gzip_packer()
    return packer.compress(data) + packer.flush()


# 401/403: credentials (being) fixed; the data waits for them rather than being refused
_RETRY_STATUSES = frozenset({401, 403, 408, 425, 429})


def retryable(status: int) -> bool:
    """Whether an HTTP answer means "not now" (retry from the spool) rather than "never"."""
    return status >= 500 or status in _RETRY_STATUSES


class HttpFailure(Exception):
    """No answer: the connection failed, was reset or timed out (worth a retry)."""


class HttpClient:
    """One keep-alive connection per thread that uses it (senders may run side by side)."""

    def __init__(self, url: str, timeout_secs: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.base_path = parts.path or "/"
        self.base_query = parts.query
        self.timeout = timeout_secs
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    @property
    def loopback(self) -> bool:
        """Whether the server is on this machine (where compression only costs CPU)."""
        host = self.host.strip("[]").lower()
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def gzip(self, compression: str) -> bool:
        """Whether to gzip request bodies: `gzip`, `none`, or `auto` (gzip unless loopback)."""
        return compression == "gzip" or (compression == "auto" and not self.loopback)

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            conn = self._local.conn = cls(self.host, self.port, timeout=self.timeout)
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(
        self,
        method: str,
        query: str,
        body: bytes | Callable[[], Iterable[bytes]] | None,
        headers: dict[str, str],
    ) -> tuple[int, str]:
        """(status, body text). A query string is appended to the URL's own. A callable body
        makes a fresh iterable of pieces for each attempt, sent with chunked encoding."""
        path = self.base_path
        q = "&".join(p for p in (self.base_query, query) if p)
        if q:
            path += "?" + q
        for attempt in (1, 2):  # a keep-alive connection the server closed: once more, fresh
            conn = self._connection()
            try:
                if callable(body):
                    conn.request(method, path, body=body(), headers=headers, encode_chunked=True)
                else:
                    conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                text = resp.read().decode("utf-8", "replace")
                if resp.getheader("Connection", "").lower() == "close":
                    self._drop()
                return resp.status, text
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self._drop()
                if attempt == 2:
                    raise HttpFailure(
                        f"{type(exc).__name__} from {self.host}:{self.port}"
                    ) from None
            except (TimeoutError, OSError, http.client.HTTPException) as exc:
                self._drop()
                raise HttpFailure(f"{type(exc).__name__}: {exc}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()
