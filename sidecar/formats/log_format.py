"""nginx `log_format` strings compiled to parsers.

Takes a whole directive (`log_format main escape=json '...' '...';`) or a bare template
(`$remote_addr - $remote_user [$time_local] "$request" ...`). Each variable becomes a regex group
whose pattern stops at the literal that follows it (nginx escapes `"` inside values, so a quoted
value never holds one). A template shaped like a JSON object becomes a JSON parser that knows
which key holds which variable.
"""

from __future__ import annotations

import re
import shlex

from sidecar.errors import UsageError
from sidecar.formats.base import LineFormat, Literal, Segment, Variable
from sidecar.formats.fields import TIME_VARS, body_decoder, canonical, make_builder
from sidecar.record import RawRequest
from sidecar.reject import FORMAT_MISMATCH, Rejected
from sidecar.timestamps import make_reader

_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
# `"key": "$var"` or `"key": $var`, the value being that one variable and nothing else
_JSON_PAIR = re.compile(r'"([^"]+)"\s*:\s*(?:"\$\{?(\w+)\}?"|\$\{?(\w+)\}?)\s*[,}]')


def parse_directive(text: str) -> tuple[str, str, str]:
    """`log_format NAME [escape=...] 'part' ...;` -> (name, escape, template).

    A bare template (no `log_format` keyword) is accepted as it is, named `custom`."""
    stripped = text.strip()
    if not stripped.startswith("log_format"):
        return "custom", "default", stripped
    try:
        words = shlex.split(stripped.rstrip(";").rstrip(), posix=True)
    except ValueError as exc:
        raise UsageError(f"cannot read the log_format directive ({exc})") from None
    if len(words) < 3:
        raise UsageError("a log_format directive needs a name and a format string")
    name, rest = words[1], words[2:]
    escape = "default"
    if rest and rest[0].startswith("escape="):
        escape = rest.pop(0).partition("=")[2]
        if escape not in ("default", "json", "none"):
            raise UsageError(f"escape={escape} is not default, json or none")
    return name, escape, "".join(rest)


def tokenize(template: str) -> tuple[Segment, ...]:
    segments: list[Segment] = []
    pos = 0
    for m in _VARIABLE.finditer(template):
        if m.start() > pos:
            segments.append(Literal(template[pos : m.start()]))
        name = m.group(1) or m.group(2)
        segments.append(Variable(name, canonical(name)))
        pos = m.end()
    if pos < len(template):
        segments.append(Literal(template[pos:]))
    return tuple(segments)


def _value_pattern(var: Variable, after: Segment | None, escape: str, tail: bool) -> str:
    if after is None:
        return r"[^ \t]*" if tail else ".*"  # with trailing fields allowed, stop at a blank
    if isinstance(after, Variable) or not after.text:
        return ".*?"
    delim = after.text[0]
    if escape == "json" and delim == '"':
        return r'(?:[^"\\]|\\.)*'
    if delim == " " and var.canonical == "time_local":
        return r"[^ ]+ [^ ]+"
    if delim == " " and var.canonical == "request":
        return r"[^ ]+ [^ ]+(?: HTTP/[0-9.]+)?"
    return f"[^{re.escape(delim)}]*"


class TemplateFormat(LineFormat):
    """A text format given by an nginx log_format template."""

    def __init__(
        self,
        name: str,
        template: str,
        escape: str = "default",
        tolerate_tail: bool = False,
    ) -> None:
        self.name = name
        self.escape = escape
        self.template = template
        self.segments = tokenize(template)
        names = {s.canonical for s in self.segments if isinstance(s, Variable)}
        missing = [
            what
            for what, ok in (
                ("$remote_addr", "remote_addr" in names),
                ("time ($time_local, $time_iso8601 or $msec)", names & set(TIME_VARS)),
                ("$status", "status" in names),
            )
            if not ok
        ]
        if missing:
            listed = ", no ".join(missing[:-1]) + (" and no " if len(missing) > 1 else "")
            raise UsageError(f"log_format {name} has no {listed}{missing[-1]}")
        parts: list[str] = []
        index: dict[str, int] = {}  # canonical name -> regex group number - 1
        for i, seg in enumerate(self.segments):
            if isinstance(seg, Literal):
                parts.append(re.escape(seg.text))
                continue
            after = self.segments[i + 1] if i + 1 < len(self.segments) else None
            pattern = _value_pattern(seg, after, escape, tolerate_tail)
            if seg.canonical and seg.canonical not in index:
                index[seg.canonical] = len(index)
                parts.append(f"({pattern})")
            else:
                parts.append(f"(?:{pattern})")
        if tolerate_tail:
            parts.append(r"(?:[ \t].*)?")
        self._match = re.compile("".join(parts)).fullmatch
        readers = {n: make_reader(n if n != "time" else "auto") for n in TIME_VARS if n in index}
        self._build = make_builder(index, readers, body_decoder(escape))

    def parse(self, line: str) -> RawRequest:
        m = self._match(line)
        if m is None:
            raise Rejected(FORMAT_MISMATCH)
        return self._build(m.groups())


def compile_log_format(text: str) -> LineFormat:
    """A parser for an nginx log_format directive or template (text or JSON-shaped)."""
    name, escape, template = parse_directive(text)
    if template.lstrip().startswith("{"):
        from sidecar.formats.nginx_json import JsonFormat

        # a key whose value is not exactly one variable ("$request_method $uri") is not read
        keys = {key: quoted or bare for key, quoted, bare in _JSON_PAIR.findall(template)}
        if not keys:
            raise UsageError(f'log_format {name} is JSON with no "key":"$variable" pair')
        return JsonFormat(name, {key: canonical(var) for key, var in keys.items()})
    return TemplateFormat(name, template, escape)
