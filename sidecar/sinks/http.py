"""`http:URL`: batches of clean records POSTed as NDJSON (`application/x-ndjson`).

2xx: delivered. A connection error, a timeout, 401, 403, 408, 429 or 5xx: unavailable,
retried from the spool. Any other status: refused, to the dead-letter file with the
response's first bytes.
"""

from __future__ import annotations

import base64

from sidecar.config import SinkConfig
from sidecar.record import CleanBatch
from sidecar.sinks.base import Sink, SinkRejected, SinkUnavailable
from sidecar.sinks.httpclient import HttpClient, HttpFailure, gzip_bytes, retryable


def auth_header(config: SinkConfig) -> dict[str, str]:
    """Basic auth from `user` and `password` (or the environment variable `password_env`)."""
    if not config.user:
        return {}
    token = base64.b64encode(f"{config.user}:{config.secret()}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class HttpSink(Sink):
    scheme = "http"

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.client = HttpClient(config.url.partition(":")[2], config.timeout_secs)
        self.headers = {"Content-Type": "application/x-ndjson", **auth_header(config)}
        self.gzipped = self.client.gzip(config.compression)
        if self.gzipped:
            self.headers["Content-Encoding"] = "gzip"
        self.concurrency = config.concurrency

    def write_batch(self, batch: CleanBatch) -> None:
        body = batch.data
        if self.gzipped:
            body = gzip_bytes(body)
        try:
            status, text = self.client.request("POST", "", body, self.headers)
        except HttpFailure as exc:
            raise SinkUnavailable(f"http: {exc}") from None
        if 200 <= status < 300:
            return
        if retryable(status):
            raise SinkUnavailable(f"http: status {status}")
        raise SinkRejected(f"http: status {status}: {text[:500]}", "other")

    def close(self) -> None:
        self.client.close()
