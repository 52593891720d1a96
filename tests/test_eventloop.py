"""The daemons' event loop runner."""

from __future__ import annotations

import asyncio

import uvloop

from sidecar import eventloop


def test_run_gives_the_exit_code_on_a_uvloop_loop() -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        return 7 if isinstance(loop, uvloop.Loop) else 1

    assert eventloop.run(main()) == 7


def test_stop_once_on_sigterm_then_signals_are_ignored() -> None:
    import os
    import signal

    reloads: list[int] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        stop = eventloop.Stop()
        stop.install(loop, lambda: reloads.append(1))
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), 5)
        stop.stop("again")  # once only
        stop.uninstall(loop)
        os.kill(os.getpid(), signal.SIGTERM)  # ignored now: the flush goes on
        await asyncio.sleep(0.05)
        return 3 if stop.requested else 1

    try:
        assert eventloop.run(main()) == 3
    finally:
        for sig in eventloop.Stop.SIGNALS:
            signal.signal(
                sig, signal.SIG_DFL if sig != signal.SIGINT else signal.default_int_handler
            )
    assert reloads == [1]
