"""The embedded mitmproxy master, and the run of `sidecar proxy`.

`mitmdump` loads about 35 addons (a console, a flow saver, replay, scripting, ...), and every
one of them is called on every hook of every flow. A reverse proxy needs four: the proxy
server (`Proxyserver`), the layer decisions (`NextLayer`), TLS (`TlsConfig`) and ours
(`addon.Sidecar`). So `sidecar proxy` embeds mitmproxy's `Master` with those only, on a uvloop
event loop, which about doubles what one core carries (bench/proxy.py measures it).

mitmproxy's options come from the config (`options_for`): reverse mode to `proxy.upstream`,
the listen address, `keep_host_header` (the origin sees the Host the client sent), streaming
from `proxy.stream_min_bytes`, the TLS certificate, and `confdir` under the state directory
(mitmproxy's CA is written there, never to ~/.mitmproxy). Connections to the origin are made
lazily: a beacon, answered by the proxy itself, never opens one.

The run (`ProxyRun`): start the sinks, the endpoints (/metrics, /healthz, /readyz), then the
listener. SIGTERM/SIGINT: stop listening, let in-flight exchanges finish (up to
`proxy.shutdown_grace_secs`), flush the records, close the sinks, write `--stats`, exit 0.
SIGHUP reloads the config file as `serve` does: privacy rules, sinks, beacon paths, strip list.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from sidecar import config as config_mod
from sidecar import eventloop
from sidecar.app import App, sink_configs
from sidecar.errors import ConfigError, SidecarError, UsageError
from sidecar.metrics import totals
from sidecar.output import write_json_document

log = logging.getLogger(__name__)

#: the metrics' `source` of the proxy's records
SOURCE = "proxy"


def proxy_config(cfg: config_mod.Config) -> config_mod.Config:
    """The config a proxy's privacy stage runs on: its beacons are `proxy.beacon_paths`."""
    if cfg.beacon.paths == cfg.proxy.beacon_paths:
        return cfg
    return replace(cfg, beacon=replace(cfg.beacon, paths=cfg.proxy.beacon_paths))


def upstream_address(url: str) -> tuple[str, int]:
    """(host, port) of `proxy.upstream` (the scheme's port when none is given)."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ConfigError("proxy.upstream: required, e.g. --upstream http://origin.internal:8000")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def options_for(cfg: config_mod.Config) -> dict[str, Any]:
    """mitmproxy's options for this config (set after the addons that declare them)."""
    p = cfg.proxy
    split = config_mod.split_host_port(p.listen)
    assert split is not None  # checked by the config
    host, port = split
    return {
        "mode": [f"reverse:{p.upstream.rstrip('/')}"],
        "listen_host": host,
        "listen_port": port,
        "confdir": p.confdir,
        "keep_host_header": True,
        "connection_strategy": "lazy",
        "stream_large_bodies": str(p.stream_min_bytes),
        "certs": [f"*={p.tls_cert}"] if p.tls_cert else [],
    }


def make_master(cfg: config_mod.Config, app: App, loop: asyncio.AbstractEventLoop):
    """A mitmproxy Master with a reverse proxy's addons only, and ours."""
    from mitmproxy import exceptions, master, options
    from mitmproxy.addons import next_layer, proxyserver, tlsconfig

    from sidecar.proxy.addon import Sidecar

    if cfg.proxy.tls_cert and not os.path.isfile(cfg.proxy.tls_cert):
        raise ConfigError(f"proxy.tls_cert: {cfg.proxy.tls_cert!r} is not a file (in {cfg.source})")
    m = master.Master(options.Options(), event_loop=loop)
    addon = Sidecar(app, upstream_address(cfg.proxy.upstream))
    m.addons.add(proxyserver.Proxyserver(), next_layer.NextLayer(), tlsconfig.TlsConfig(), addon)
    try:
        m.options.update(**options_for(cfg))
    except exceptions.OptionsError as exc:  # a certificate mitmproxy cannot read
        key = "proxy.tls_cert" if cfg.proxy.tls_cert else "proxy"
        raise ConfigError(f"{key}: {exc} (in {cfg.source})") from None
    return m, addon


class ProxyRun:
    """`sidecar proxy` from a checked config: run() -> exit code."""

    def __init__(
        self,
        cfg: config_mod.Config,
        sink_urls: tuple[str, ...] = (),
        stats_path: str | None = None,
        config_path: str | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        upstream_address(cfg.proxy.upstream)  # required: refused before anything starts
        self.cfg = proxy_config(cfg)
        self.sink_urls = sink_urls
        self.config_path = config_path  # what SIGHUP reads again, with the same flags
        self.overrides = overrides or {}
        self.app = App(self.cfg, self._sinks(self.cfg), daemon=True, source=SOURCE)
        self.stats_path = stats_path
        self.endpoints: Any = None
        self.stopping = eventloop.Stop()
        self.master: Any = None
        self.listening = False

    def run(self) -> int:
        return eventloop.run(self.main())

    async def main(self) -> int:
        from sidecar import selflog
        from sidecar.proxy import eventlog

        loop = asyncio.get_running_loop()
        handler = selflog.configure(ip=self.cfg.ip)
        eventlog.install(handler, self.app.metrics)
        try:
            self.master, self.addon = make_master(self.cfg, self.app, loop)
            self._open_endpoints()
        except BaseException:
            self.app.close(replay=False)
            raise
        running = loop.create_task(self.master.run())
        try:
            await self._listening(running)
        except BaseException:
            self.master.shutdown()
            await asyncio.gather(running, return_exceptions=True)
            if self.endpoints is not None:
                self.endpoints.close()
            raise
        self.stopping.install(loop, self.reload)
        port = self.endpoints.port if self.endpoints else None
        log.info("started", extra={"listen": self.cfg.proxy.listen, "http_port": port,
                                   "sinks": [d.label for d in self.app.deliveries]})  # fmt: skip
        await self.stopping.wait()
        return await self._shutdown(running)

    async def _listening(self, running: asyncio.Task) -> None:
        """Wait until the listener is up; a listener that cannot bind is a usage error."""
        ps = self.master.addons.get("proxyserver")
        while not ps.is_running:
            if running.done():
                running.result()
                raise UsageError("sidecar proxy stopped before it listened")
            await asyncio.sleep(0.01)
        for server in ps.servers:
            if server.last_exception is not None:
                raise UsageError(f"--listen {self.cfg.proxy.listen}: {server.last_exception}")
        self.listening = True

    async def _shutdown(self, running: asyncio.Task) -> int:
        loop = asyncio.get_running_loop()
        self.stopping.uninstall(loop)
        started = time.monotonic()
        grace = self.cfg.proxy.shutdown_grace_secs
        ps = self.master.addons.get("proxyserver")
        await ps.servers.update([])  # no new connections; the open ones finish their exchange
        self.listening = False
        deadline = started + grace / 2  # the other half for flushing and closing the sinks
        while ps.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        code = 0
        if ps.connections:
            log.warning("connections still open at shutdown; closing them",
                        extra={"connections": len(ps.connections)})  # fmt: skip
        self.master.shutdown()
        try:  # done(): the records flushed, the sinks closed on a worker thread
            left = max(grace - (time.monotonic() - started), 0.1)
            await asyncio.wait_for(asyncio.shield(running), left)
        except TimeoutError:
            log.error("shutdown took longer than proxy.shutdown_grace_secs; exiting anyway")
            code = 1
        if self.endpoints is not None:
            self.endpoints.close()
        self._write_stats(self.addon.closed)
        log.info("stopped", extra={"secs": round(time.monotonic() - started, 3),
                                   **self.app.stats.as_dict()})  # fmt: skip
        return code

    # --- reload (SIGHUP) --------------------------------------------------------------------
    def reload(self) -> None:
        """SIGHUP: new privacy rules, sinks, beacon paths and strip list from the config file
        (nothing in flight lost); an invalid file is refused, logged with its key, and the
        running config stays. `listen`, `upstream`, TLS and `[storage]` need a restart."""
        metrics = self.app.metrics
        try:
            cfg = proxy_config(config_mod.load(self.config_path, self.overrides))
            upstream_address(cfg.proxy.upstream)
            self.addon.flush()  # what came before the signal goes out under the old rules
            self.app.reload(cfg, self._sinks(cfg))
        except SidecarError as exc:
            metrics.config_reloads.labels("refused").inc()
            log.error("reload refused; the running config stays", extra={"reason": str(exc)})
            return
        restart = [k for k in ("listen", "upstream", "tls_cert", "confdir", "stream_min_bytes")
                   if getattr(cfg.proxy, k) != getattr(self.cfg.proxy, k)]  # fmt: skip
        if restart:
            log.warning("reload: these [proxy] keys take effect at the next start",
                        extra={"keys": restart})  # fmt: skip
        self.app.cfg = replace(self.app.cfg, proxy=cfg.proxy)
        self.addon.rules_changed()
        metrics.config_reloads.labels("ok").inc()
        log.info("reloaded", extra={"config": cfg.source,
                                    "sinks": [d.label for d in self.app.deliveries]})  # fmt: skip

    # --- parts ------------------------------------------------------------------------------
    def _sinks(self, cfg: config_mod.Config) -> list[config_mod.SinkConfig]:
        return sink_configs(self.sink_urls, cfg, default=cfg.storage.default_sink)

    def _open_endpoints(self) -> None:
        if not self.cfg.proxy.http:
            return
        from sidecar.endpoints import Endpoints

        self.endpoints = Endpoints(self.cfg.proxy.http, self.app.metrics.registry, self.not_ready)
        self.endpoints.start()

    def not_ready(self) -> dict[str, str]:
        """/readyz: {} while the listener is up and every sink is well (endpoints' thread)."""
        out: dict[str, str] = {}
        if self.stopping.requested:
            out["sidecar"] = "shutting down"
        elif not self.listening:
            out["proxy"] = "not listening"
        out.update(self.app.not_ready())
        return out

    def _write_stats(self, sink_stats: dict) -> None:
        if self.stats_path is None:
            return
        doc = self.app.snapshot()
        doc["exchanges"] = totals(self.app.metrics.proxy_exchanges, "result")
        if sink_stats:
            doc["sinks"] = sink_stats
        write_json_document(self.stats_path, doc)
