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
