"""The mitmproxy addon: scrub toward the origin, answer beacons, one clean record per exchange.

Hooks, in the order mitmproxy calls them for one request:
- `requestheaders`: the raw request is taken from the flow as it came (exchange.begin). Then
  a beacon path is answered here (beacons.status_for), a request for another host is refused
  (guard, 421), and any other request has its headers and target scrubbed by the header rule
  (privacy.headers) before mitmproxy sends it on.
- `request`: a beacon's body, once read, is kept for the stage (or refused: over 8 KiB).
- `responseheaders`: a response of unknown length, or over `proxy.stream_min_bytes` (which
  mitmproxy then streams), streams through a byte counter: never held whole.
- `response` / `error`: the raw request is finished (status, bytes, time) and scrubbed into a
  CleanRecord, encoded at once and appended to the current batch; `error` covers an origin
  that could not be reached (502), a client that left (499) and what mitmproxy refused.

No hook waits on anything: scrubbing is bounded CPU work per request, and the batch goes to
`App.emit` every `proxy.flush_interval_secs` (or at 256 KiB), which hands it to the deliveries
without blocking (`Delivery.offer`). `running` starts the deliveries; `done` flushes and closes
them on a worker thread, off mitmproxy's event loop.

Options are declared in `load` (defaults from the config: `sidecar_beacon_paths`,
`sidecar_strip_headers`) and validated in `configure` by the config's own checks, so a bad
value is refused with the key named whether it came from the TOML file or `--set`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import replace

import orjson
from mitmproxy import ctx, exceptions, http

from sidecar import config as config_mod
from sidecar.app import App
from sidecar.errors import ConfigError
from sidecar.metrics import PROXY_RESULTS
from sidecar.pipeline import ChunkResult
from sidecar.privacy.headers import HeaderRule
from sidecar.proxy import beacons
from sidecar.proxy.exchange import begin, finish, peer_of
from sidecar.proxy.guard import MISDIRECTED, Guard
from sidecar.proxy.master import SOURCE, proxy_config
from sidecar.record import CleanRecord, RawRequest
from sidecar.reject import INTERNAL_ERROR, Rejected

log = logging.getLogger(__name__)

FLUSH_MAX_BYTES = 256 << 10
#: what a client that left before its answer was complete is recorded with (nginx's 499)
CLIENT_CLOSED = 499
UPSTREAM_ERROR = 502
BAD_REQUEST = 400
_KEY = "sidecar"
_CLIENT_LEFT = "Client disconnected"


class _Counter:
    """A response stream that passes every chunk on and counts its bytes."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, data: bytes) -> bytes:
        self.n += len(data)
        return data


class _Exchange:
    """What the addon keeps on a flow between its hooks."""

    __slots__ = ("beacon", "raw", "result", "sent")

    def __init__(self, raw: RawRequest, result: str, beacon: bool = False) -> None:
        self.raw = raw
        self.result = result  # metrics.PROXY_RESULTS
        self.beacon = beacon
        self.sent: _Counter | None = None


def _answer(status: int) -> http.Response:
    """An answer the proxy makes itself: empty, `Allow` on a 405, closing on a 413."""
    headers = {}
    if status == beacons.METHOD_NOT_ALLOWED:
        headers["allow"] = "GET, POST"
    elif status in (beacons.TOO_LARGE, MISDIRECTED):
        headers["connection"] = "close"
    return http.Response.make(status, b"", headers)


def _encoded(header: tuple[str, str]) -> tuple[bytes, bytes]:
    name, value = header
    return name.encode("utf-8", "surrogateescape"), value.encode("utf-8", "surrogateescape")


class Sidecar:
    """The addon. `app` is a daemon App (its emit never blocks) on `proxy_config(cfg)`."""

    def __init__(self, app: App, upstream: tuple[str, int]) -> None:
        self.app = app
        self.metrics = app.metrics
        self.guard = Guard(*upstream)
        self.rules_changed()
        self.stream_min_bytes = app.cfg.proxy.stream_min_bytes
        self.flush_interval_secs = app.cfg.proxy.flush_interval_secs
        self._exchanges = self.metrics.proxy_exchanges
        self._results = {r: self._exchanges.labels(r) for r in PROXY_RESULTS}
        self._seconds = self.metrics.proxy_request_seconds
        self._out = bytearray()
        self._records: list[CleanRecord] = []  # for a sink's rollup (SQLite), if one keeps it
        self._n = 0
        self._flusher: asyncio.Task | None = None
        self.closed: dict[str, dict] = {}  # what each sink delivered, once done() closed them

    # --- options ----------------------------------------------------------------------------
    def load(self, loader) -> None:
        p = self.app.cfg.proxy
        loader.add_option(
            "sidecar_beacon_paths", Sequence[str], list(p.beacon_paths),
            "Paths the proxy answers itself (204) and records as player beacons; never "
            "forwarded to the origin (proxy.beacon_paths).",
        )  # fmt: skip
        loader.add_option(
            "sidecar_strip_headers", Sequence[str], list(p.strip_headers),
            "Request headers removed before the request goes to the origin "
            "(proxy.strip_headers).",
        )  # fmt: skip

    def configure(self, updated: set[str]) -> None:
        if not updated & {"sidecar_beacon_paths", "sidecar_strip_headers"}:
            return
        opts = ctx.options
        try:
            cfg = config_mod.override(self.app.cfg, {
                "proxy.beacon_paths": tuple(opts.sidecar_beacon_paths),
                "proxy.strip_headers": tuple(opts.sidecar_strip_headers),
            })  # fmt: skip
        except ConfigError as exc:
            raise exceptions.OptionsError(str(exc)) from None
        if cfg.proxy.beacon_paths != self.app.cfg.proxy.beacon_paths:
            self.flush()  # the batch so far carries the old stage's counts
            self.app.reload(proxy_config(cfg), self.app.sink_configs)
        self.app.cfg = replace(self.app.cfg, proxy=cfg.proxy)
        self.rules_changed()

    def rules_changed(self) -> None:
        """Take the App's current privacy stage and `[proxy]` rules (after `App.reload`)."""
        p = self.app.cfg.proxy
        self.stage = self.app.stage
        self.rule = HeaderRule.from_stage(self.stage, p.strip_headers)
        self.beacon_paths = frozenset(p.beacon_paths)

    # --- lifespan ---------------------------------------------------------------------------
    def running(self) -> None:
        self.app.metrics.add_source(SOURCE)
        self.app.start()
        self._flusher = asyncio.get_running_loop().create_task(self._flush_every())

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_secs)
            self.flush()

    async def done(self) -> None:
        """Flush what is batched and close the sinks on a worker thread (not on the loop)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        self.flush()
        self.closed = await asyncio.to_thread(self.app.close)

    # --- hooks ------------------------------------------------------------------------------
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        peer = peer_of(flow)
        raw = begin(flow, peer)
        if flow.error is not None:  # mitmproxy refused it (CONNECT, smuggling headers)
            result = "connect" if req.method == "CONNECT" else "malformed"
            flow.metadata[_KEY] = _Exchange(raw, result)
            return
        if raw.path in self.beacon_paths:
            status = beacons.status_for(req)
            ex = _Exchange(raw, beacons.RESULTS[status], beacon=True)
            flow.metadata[_KEY] = ex
            length = beacons.declared_length(req)
            if length is not None and length > self.stream_min_bytes:
                flow.kill()  # never read: mitmproxy would have to stream it somewhere
                return
            req.stream = False
            flow.response = _answer(status)
            return
        if self.guard.refuse(req):
            flow.metadata[_KEY] = _Exchange(raw, "absolute_form")
            req.stream = False
            flow.response = _answer(MISDIRECTED)
            return
        rule = self.rule
        _, headers = rule.scrub(peer, req.headers.items(multi=True))
        req.headers = http.Headers(list(map(_encoded, headers)))
        req.path = rule.scrub_target(req.path)
        flow.metadata[_KEY] = _Exchange(raw, "forwarded")

    def request(self, flow: http.HTTPFlow) -> None:
        ex = flow.metadata.get(_KEY)
        if ex is None or not ex.beacon or ex.result != "beacon" or flow.request.method != "POST":
            return
        body = flow.request.raw_content
        if body and len(body) > beacons.MAX_PAYLOAD_BYTES:  # no Content-Length said so
            ex.result = beacons.RESULTS[beacons.TOO_LARGE]
            flow.response = _answer(beacons.TOO_LARGE)
            return
        ex.raw.body = beacons.body_text(flow.request)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        ex = flow.metadata.get(_KEY)
        resp = flow.response
        if ex is None or ex.result != "forwarded" or resp is None:
            return
        if resp.stream or "content-length" not in resp.headers:
            ex.sent = _Counter()
            resp.stream = ex.sent

    def response(self, flow: http.HTTPFlow) -> None:
        ex = flow.metadata.pop(_KEY, None)
        if ex is None:
            return
        resp = flow.response
        sent = ex.sent.n if ex.sent is not None else len(resp.raw_content or b"")
        self._record(ex, resp.status_code, sent, resp.timestamp_end, flow)

    def error(self, flow: http.HTTPFlow) -> None:
        ex = flow.metadata.pop(_KEY, None)
        if ex is None:
            return
        resp = flow.response
        left = flow.error is not None and flow.error.msg.startswith(_CLIENT_LEFT)
        if ex.result == "forwarded":
            if left:
                ex.result = "aborted"
            elif resp is None:
                ex.result = "upstream_error"
        if ex.result == "aborted":
            status = CLIENT_CLOSED
        elif ex.result == "upstream_error":
            status = UPSTREAM_ERROR
        elif resp is not None:  # the answer had begun (an origin that broke off mid-body)
            status = resp.status_code
        elif ex.beacon:  # killed unread on its Content-Length
            status = beacons.TOO_LARGE
        else:  # what mitmproxy refused: CONNECT, smuggling headers
            status = BAD_REQUEST
        sent = ex.sent.n if ex.sent is not None else 0
        self._record(ex, status, sent, None, flow)

    # --- records ----------------------------------------------------------------------------
    def _record(
        self, ex: _Exchange, status: int, sent: int, end: float | None, flow: http.HTTPFlow
    ) -> None:
        self._results[ex.result].inc()
        start = flow.request.timestamp_start
        now = end if end is not None else time.time()
        self._seconds.observe(max(now - start, 0.0))
        try:
            record = self.stage.scrub(finish(ex.raw, status, sent, now, start))
            data = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        except Rejected as exc:  # a peer that is no address (a unix socket)
            self.app.reject(exc.reason, 1, SOURCE)
            return
        except Exception:  # what no rule meant: this exchange's record only, never its text
            self.app.reject(INTERNAL_ERROR, 1, SOURCE)
            return
        self._out += data
        self._n += 1
        self._records.append(record)
        if len(self._out) >= FLUSH_MAX_BYTES:
            self.flush()

    def flush(self) -> None:
        """Hand the batched records to the App (never blocks: Delivery.offer)."""
        if not self._n:
            return
        records, self._records = self._records, []
        summarize = self.app.summarizer()
        summary = summarize(records) if summarize is not None else None
        result = ChunkResult(
            bytes(self._out), self._n, self._n, {}, summary=summary,
            counts=self.stage.take_counts(),
        )  # fmt: skip
        self._out = bytearray()
        self._n = 0
        self.app.emit(result, None, SOURCE)
