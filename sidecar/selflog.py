"""The daemon's own log: one JSON object per line on stderr, IP literals struck. Configured here.

`configure()` is the one place logging is set up for the daemons (`serve`, later `proxy`). It
installs on the `sidecar` logger (not the root logger, which belongs to whoever embeds us; it
stops propagating there) a handler that writes each record as one line:

    {"ts": "2026-12-01T13:00:00.123Z", "level": "warning", "logger": "sidecar.sinks.delivery",
     "msg": "...", "sink": "sqlite-analytics.db", "records": 3}

then `"error": "TypeName"` and `"traceback": "..."` when an exception is logged, `"stack"` for
`stack_info`. Fields passed as `extra={...}` become keys of their own (None, bool, int, float
and str as they are, a short list or tuple of those as an array, anything else as its `str()`);
an extra named like one of the keys above is written as `extra.NAME` rather than over it.

Defence in depth, since messages are the caller's and a caller can slip: the formatted message,
every string extra, the traceback (which holds the exception's message) and the stack pass
through the project's one IP literal scrubber (privacy.literals, with the configured prefix
bits), and are cut (`MAX_MSG_CHARS`, `MAX_TRACE_CHARS`), so a line holds no whole address and
stays short. Control characters are escaped: orjson escapes U+0000-U+001F; this module also
escapes DEL, the C1 controls (U+0080-U+009F, CSI among them) and U+2028/U+2029, so a line can
neither break into two for a line reader nor drive a terminal. A record that cannot be
formatted (bad `%` arguments) is written with its template and `"bad_args": true`, never with
the arguments, and a handler failure writes nothing (logging's own fallback would print the
record's arguments to stderr).
"""

from __future__ import annotations

import logging
import math
import sys
import time
import traceback
from typing import Any, TextIO

import orjson

from sidecar.config import IpConfig
from sidecar.privacy.ip import Masker
from sidecar.privacy.literals import LiteralMasker

LOGGER = "sidecar"
MAX_MSG_CHARS = 2000  # the message and each string extra
MAX_TRACE_CHARS = 8000  # a traceback or stack: its end is kept (the exception comes last)
MAX_KEY_CHARS = 64
MAX_ITEMS = 100  # a list or tuple of scalars up to this long is written as an array
_SCAN_FACTOR = 4  # text is cut to this many times its bound before the scrubber reads it

_RESERVED = ("ts", "level", "logger", "msg", "error", "traceback", "stack", "bad_args")
#: a LogRecord's own attributes: everything else in its __dict__ came from `extra=`
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
#: characters a line reader or a terminal acts on that orjson writes as they are
_ESCAPES = {c: f"\\u{c:04x}" for c in (*range(0x7F, 0xA0), 0x2028, 0x2029)}
#: what the part of an address literal after a cut can be written with
_TOKEN_CHARS = "0123456789abcdefABCDEFxX.:%[]"
_SCALARS = frozenset({str, int, float, bool, type(None)})
_INT64 = (-(1 << 63), (1 << 64) - 1)


#: libraries whose warnings a daemon also writes (asyncio's transport errors can name a peer's
#: address: struck like ours), as JSON lines, from WARNING up
LIBRARY_LOGGERS = ("asyncio",)


def configure(
    stream: TextIO | None = None, level: int = logging.INFO, ip: IpConfig | None = None
) -> logging.Handler:
    """Send the `sidecar` loggers' records, from `level` up, to `stream` (stderr by default,
    looked up at the call) as JSON lines; addresses struck with `ip`'s prefix bits (24/48 by
    default). Calling it again replaces the handler (one handler, never two)."""
    ip = ip or IpConfig()
    literals = LiteralMasker(Masker(ip.ipv4_prefix_bits, ip.ipv6_prefix_bits), cache_entries=1024)
    handler = JsonLineHandler(stream if stream is not None else sys.stderr, literals)
    for name in (LOGGER, *LIBRARY_LOGGERS):
        logger = logging.getLogger(name)
        _remove_handlers(logger)
        logger.addHandler(handler)
        logger.setLevel(level if name == LOGGER else max(level, logging.WARNING))
        logger.propagate = False
    return handler


def reset() -> None:
    """Undo `configure` (tests, and an embedding program that wants its own logging back)."""
    for name in (LOGGER, *LIBRARY_LOGGERS):
        logger = logging.getLogger(name)
        _remove_handlers(logger)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def _remove_handlers(logger: logging.Logger) -> None:
    for h in list(logger.handlers):
        if isinstance(h, JsonLineHandler):
            logger.removeHandler(h)
            h.close()


class JsonLineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler writing `JsonFormatter` lines that never reports its own failures
    on stderr (logging's report would print the record's message and arguments)."""

    def __init__(self, stream: TextIO, literals: LiteralMasker) -> None:
        super().__init__(stream)
        self.setFormatter(JsonFormatter(literals))

    def handleError(self, record: logging.LogRecord) -> None:
        pass


class JsonFormatter(logging.Formatter):
    """A LogRecord as one JSON object (no newline); every free-text part struck and cut."""

    def __init__(self, literals: LiteralMasker) -> None:
        super().__init__()
        self.literals = literals

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": str(record.levelname).lower(),
            "logger": self._text(str(record.name), MAX_KEY_CHARS * 2),
        }
        try:
            msg, bad_args = record.getMessage(), False
        except Exception:
            msg, bad_args = _safe_str(record.msg), True
        doc["msg"] = self._text(msg, MAX_MSG_CHARS)
        if bad_args:
            doc["bad_args"] = True
        for key, value in record.__dict__.items():
            if key in _STANDARD:
                continue
            name = self._text(_safe_str(key), MAX_KEY_CHARS)
            if name in _RESERVED or name in doc:
                name = f"extra.{name}"
            doc[name] = self._value(value)
        if record.exc_info and record.exc_info[0] is not None:
            doc["error"] = self._text(_safe_str(record.exc_info[0].__name__), MAX_KEY_CHARS * 2)
            doc["traceback"] = self._tail(_format_exception(record.exc_info))
        if record.stack_info:
            doc["stack"] = self._tail(_safe_str(record.stack_info))
        return _dumps(doc)

    def _value(self, value: Any) -> Any:
        kind = type(value)
        if value is None or kind is bool:
            return value
        if kind is int:
            return value if _INT64[0] <= value <= _INT64[1] else self._text(str(value), 64)
        if kind is float:
            return value if math.isfinite(value) else str(value)
        if (
            kind in (list, tuple)
            and len(value) <= MAX_ITEMS
            and all(type(v) in _SCALARS for v in value)
        ):
            return [self._value(v) for v in value]  # names of sources or sinks: an array
        return self._text(_safe_str(value), MAX_MSG_CHARS)

    def _text(self, text: str, limit: int) -> str:
        """Struck, then cut to `limit` characters (cut first, loosely, to bound the scan)."""
        struck = self.literals.mask(text[: limit * _SCAN_FACTOR])  # cached when short
        if len(struck) > limit:
            return struck[: limit - 1] + "…"
        return struck

    def _tail(self, text: str) -> str:
        """Struck, then cut to its last `MAX_TRACE_CHARS` characters. Cut loosely first, the
        token the cut falls in is dropped whole: its leading groups would be no prefix."""
        if len(text) > MAX_TRACE_CHARS * _SCAN_FACTOR:
            text = text[-MAX_TRACE_CHARS * _SCAN_FACTOR :]
            text = text[len(text) - len(text.lstrip(_TOKEN_CHARS)) :]
        struck = self.literals.strike(text)
        if len(struck) > MAX_TRACE_CHARS:
            return "…" + struck[-(MAX_TRACE_CHARS - 1) :]
        return struck


def _timestamp(record: logging.LogRecord) -> str:
    seconds = int(record.created)
    millis = min(999, int((record.created - seconds) * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _format_exception(exc_info: Any) -> str:
    try:
        return "".join(traceback.format_exception(*exc_info)).rstrip("\n")
    except Exception:
        return f"{exc_info[0].__name__}: (the traceback could not be formatted)"


def _safe_str(value: object) -> str:
    try:
        return value if type(value) is str else str(value)  # type: ignore[return-value]
    except Exception:
        return f"<{type(value).__name__} that cannot be shown>"


def _dumps(doc: dict[str, Any]) -> str:
    try:
        raw = orjson.dumps(doc)
    except orjson.JSONEncodeError:  # a lone surrogate in a string: written as its escape
        raw = orjson.dumps({k: _no_surrogates(v) for k, v in doc.items()})
    text = raw.decode()
    return text.translate(_ESCAPES) if not text.isascii() else text


def _no_surrogates(value: Any) -> Any:
    if type(value) is str:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value
