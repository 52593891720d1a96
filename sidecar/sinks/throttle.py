"""Log warnings at most once per interval for each kind, with a count of the ones held back.

An outage repeats the same failure for every batch (store unavailable, spool unwritable); one
line per batch would flood stderr and bury everything else. A `ThrottledLog` lets the first
message of a kind through, holds back the same kind for `interval_secs`, and says how many it
held back with the next one it lets through. The messages themselves are the caller's: they name
a sink and an error kind, never data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

INTERVAL_SECS = 10.0


class ThrottledLog:
    def __init__(
        self,
        logger: logging.Logger,
        interval_secs: float = INTERVAL_SECS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval_secs
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}  # kind -> when one was last let through
        self._held: dict[str, int] = {}  # kind -> held back since then

    def log(self, level: int, kind: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        """Log `msg % args` unless a message of `kind` went out less than `interval` ago;
        whether it went out."""
        with self._lock:
            now = self.clock()
            last = self._last.get(kind)
            if last is not None and now - last < self.interval:
                self._held[kind] = self._held.get(kind, 0) + 1
                return False
            self._last[kind] = now
            held = self._held.pop(kind, 0)
        if held:
            msg += " (%d more like this in the last %.0f s)"
            args = (*args, held, now - last)  # type: ignore[operator]
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def warning(self, kind: str, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, kind, msg, *args)

    def error(self, kind: str, msg: str, *args: object) -> bool:
        return self.log(logging.ERROR, kind, msg, *args)

    def exception(self, kind: str, msg: str, *args: object) -> bool:
        """`error` with the traceback of the exception being handled."""
        return self.log(logging.ERROR, kind, msg, *args, exc_info=True)
