"""A small keep-alive HTTP/1.1 client over the standard library's http.client, for the
ClickHouse and HTTP sinks: one persistent connection, reopened after any failure."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit


class HttpFailure(Exception):
    """No answer: the connection failed, was reset or timed out (worth a retry)."""


class HttpClient:
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
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self._conn = cls(self.host, self.port, timeout=self.timeout)
        return self._conn

    def request(
        self, method: str, query: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, str]:
        """(status, body text). A query string is appended to the URL's own."""
        path = self.base_path
        q = "&".join(p for p in (self.base_query, query) if p)
        if q:
            path += "?" + q
        for attempt in (1, 2):  # a keep-alive connection the server closed: once more, fresh
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                text = resp.read().decode("utf-8", "replace")
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, text
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                if attempt == 2:
                    raise HttpFailure(
                        f"{type(exc).__name__} from {self.host}:{self.port}"
                    ) from None
            except (TimeoutError, OSError, http.client.HTTPException) as exc:
                self.close()
                raise HttpFailure(f"{type(exc).__name__}: {exc}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
