"""Where lines come from: files and stdin (pipe); syslog, followed files and stdin (serve).

A serve source hands raw lines to `emit(lines, ack)`: one or more whole lines, each ending in
b"\\n", and an `ack` called once (on the event loop) when their records are delivered or
spooled, or None when there is nothing to acknowledge (a datagram)."""

from collections.abc import Callable

Ack = Callable[[], None]
Emit = Callable[[bytes, Ack | None], None]
