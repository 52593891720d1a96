"""The daemons' event loop and signals: uvloop where it is installed (a dependency where it
builds); SIGTERM/SIGINT stop, SIGHUP reloads, and a second signal never cuts the flush."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


def run(main: Coroutine[Any, Any, int]) -> int:
    """Run a daemon's main coroutine to its exit code on a fresh uvloop (else asyncio) loop."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        runner = asyncio.Runner()
    with runner:
        return runner.run(main)


class Stop:
    """A daemon's stop: `stop(why)` once (a signal, the end of stdin), `await wait()`.

    `install(loop, reload)` routes SIGTERM and SIGINT to `stop` and SIGHUP to `reload`;
    `uninstall(loop)` takes them back and ignores all three, so that a second TERM does not
    cut the flush that follows."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self) -> None:
        self.requested = False
        self._event = asyncio.Event()

    def install(self, loop: asyncio.AbstractEventLoop, reload: Callable[[], None]) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, reload)

    def uninstall(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in self.SIGNALS:
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)

    def stop(self, why: str = "stop") -> None:
        if not self.requested:
            self.requested = True
            log.info("stopping", extra={"reason": why})
            self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
