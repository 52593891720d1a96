"""What every sink is: it writes batches of clean records and says how a failure should be met.

- `SinkUnavailable`: the store is down, slow or busy. The batch is kept (disk spool) and retried.
- `SinkRejected`: the store refused the batch (schema drift, a value it cannot read). Retrying
  would fail again: the batch goes to the dead-letter file with the store's message.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import PurePath
from urllib.parse import parse_qsl, urlsplit

from sidecar.config import SinkConfig, redact_url
from sidecar.errors import SidecarError
from sidecar.record import CleanBatch, CleanRecord, as_batch


class SinkUnavailable(SidecarError):
    """The store could not take the batch now; try again later."""


class SinkRejected(SidecarError):
    """The store refused the batch; `reason` is one of metrics.DEAD_LETTER_REASONS."""

    def __init__(self, message: str, reason: str = "other") -> None:
        super().__init__(message)
        self.reason = reason


class Sink(ABC):
    """A store of clean records. `write` is all-or-nothing for a batch."""

    #: the URL scheme (`sqlite`, `clickhouse`, ...)
    scheme: str
    #: whether storage commands (init, prune, report) apply
    queryable = False

    def __init__(self, config: SinkConfig) -> None:
        self.config = config
        self.url = config.url
        #: the sink's name: its spool folder, dead-letter file and metric label
        self.id = sink_name(config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {redact_url(self.url)}>"

    def open(self) -> None:  # noqa: B027 - optional hook
        """Connect or open files; raise SinkUnavailable when the store is not there yet."""

    def write(self, batch: CleanBatch | Sequence[CleanRecord]) -> None:
        """Store the whole batch, or raise SinkUnavailable / SinkRejected and store none of it."""
        self.write_batch(as_batch(batch))

    @abstractmethod
    def write_batch(self, batch: CleanBatch) -> None:
        """`write`, for a CleanBatch (JSON lines of clean records)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release what `open` took."""


def sink_name(config: SinkConfig) -> str:
    """`[[sinks]] name`, else a default from the scheme and what the sink stores into, never its
    host (an address in a metric label) nor its credentials (a rotated password would orphan
    the spool): `clickhouse-analytics.requests`, `sqlite-analytics.db`, `jsonl-out.jsonl`,
    `http-ingest`, `stdout`."""
    if config.name:
        return config.name
    scheme, _, rest = config.url.partition(":")
    if scheme in ("sqlite", "jsonl"):
        what = PurePath(rest).name
    elif scheme == "clickhouse":
        params = dict(parse_qsl(urlsplit(rest).query))
        what = f"{params.get('database', 'default')}.{params.get('table', 'requests')}"
    elif scheme == "http":
        what = urlsplit(rest).path.rstrip("/").rpartition("/")[2]
    else:
        what = ""
    what = re.sub(r"[^A-Za-z0-9._-]+", "-", what).strip(".-")[:48]
    return f"{scheme}-{what}" if what else scheme


def legacy_sink_id(url: str) -> str:
    """The name sinks had before `name` (a hash of the whole URL): spool folders named so are
    adopted by the sink's named folder at start (sinks/delivery.py), so nothing is orphaned.

    `clickhouse-127.0.0.1-8123-1a2b3c4d`: readable, stable, and free of any password."""
    scheme, _, rest = url.partition(":")
    clean = re.sub(r"[?#].*", "", redact_url(rest))  # no query: settings are not a name
    words = re.sub(r"[^A-Za-z0-9.]+", "-", re.sub(r"^https?://", "", clean)).strip("-")[:40]
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    return f"{scheme}-{words}-{digest}" if words else f"{scheme}-{digest}"
