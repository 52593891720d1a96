"""JSON access logs: one object per line, as nginx writes with `log_format ... escape=json`.

With a key map (from a compiled log_format, or learned by detection from the first line) the
keys mean what the map says; otherwise each key is read through formats/fields.py's aliases
(`remote_addr` or `ip`, `time_iso8601` or `date`, ...). Nested objects are not read.

A value read that holds a control character (C0 but tab, DEL, C1, U+2028/U+2029), escaped
(`\u0000`, `\n`) or raw, rejects the line as `binary`, as raw control bytes in a text line do:
the pipeline's byte check sees the escapes only. Only lines with a backslash or a non-ASCII
character can hold one, so other lines are not searched. The one exception is
`request_body` (a beacon's body: a pretty-printed JSON body holds newlines): it never reaches a
record as it is, and the keys the privacy stage takes out of it go through its text scrubber.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import orjson

from sidecar.formats.base import LineFormat, Variable
from sidecar.formats.fields import TIME_VARS, canonical, make_builder
from sidecar.record import RawRequest
from sidecar.reject import BINARY, FORMAT_MISMATCH, Rejected
from sidecar.timestamps import make_reader

_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


class JsonFormat(LineFormat):
    def __init__(self, name: str = "nginx-json", keys: dict[str, str | None] | None = None) -> None:
        self.name = name
        self.escape = "json"
        self.keys = dict(keys or {})
        self.segments = tuple(Variable(k, c) for k, c in self.keys.items())
        self._read_ts = {n: make_reader("auto") for n in TIME_VARS}
        # one generated builder per set of names a line carries (usually one set per log)
        self._builders: dict[tuple[str, ...], Callable[[Sequence[str | None]], RawRequest]] = {}
        # the keys of a line -> (the keys read, the names they are read as), for lines whose
        # values are all strings (nginx's escape=json writes only strings)
        self._plans: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[str, ...]]] = {}

    def parse(self, line: str) -> RawRequest:
        if line[:1] != "{":
            raise Rejected(FORMAT_MISMATCH)
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise Rejected(FORMAT_MISMATCH) from None
        if not isinstance(obj, dict):
            raise Rejected(FORMAT_MISMATCH)
        plan = self._plans.get(tuple(obj))  # the same keys line after line: read them so
        if plan is not None:
            take, names = plan
            got = [obj[k] for k in take]
            if all(type(v) is str for v in got):
                return self._build(line, names, got)
        keys = self.keys
        values: dict[str, str] = {}
        kept: list[str] = []
        for key, value in obj.items():
            name = keys[key] if key in keys else canonical(key)
            if name is None or name in values:
                continue
            kept.append(key)
            if value is None or isinstance(value, dict | list):
                continue
            values[name] = value if isinstance(value, str) else str(value)
        if len(self._plans) < 64 and len(kept) == len(values):
            self._plans[tuple(obj)] = (tuple(kept), tuple(values))
        return self._build(line, tuple(values), list(values.values()))

    def _build(self, line: str, names: tuple[str, ...], values: list[str]) -> RawRequest:
        if (not line.isascii() or "\\" in line) and any(
            _CONTROL.search(v) for n, v in zip(names, values, strict=True) if n != "request_body"
        ):
            raise Rejected(BINARY)
        build = self._builders.get(names)
        if build is None:
            build = self._builder(names)
        return build(values)

    def _builder(self, names: tuple[str, ...]) -> Callable[[Sequence[str | None]], RawRequest]:
        try:
            build = make_builder({n: i for i, n in enumerate(names)}, self._read_ts)
        except ValueError:  # an object without a client, time and status
            raise Rejected(FORMAT_MISMATCH) from None
        if len(self._builders) >= 64:  # a log whose keys vary without end: stay bounded
            self._builders.clear()
        self._builders[names] = build
        return build

    def learn_keys(self, line: str) -> JsonFormat:
        """A JsonFormat whose rewrite shape is the keys of this (first) line, in order."""
        obj = orjson.loads(line)
        return JsonFormat(self.name, {k: canonical(k) for k in obj if isinstance(k, str)})
