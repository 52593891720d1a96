"""The one way a CleanRecord is made: every field through the check its content kind names.

`record.SCHEMA` gives each field a content kind; `RecordFactory` turns that declaration into one
generated function (as dataclasses generate `__init__`) that applies, to every value:
- `text`: the free-text scrubber: invisible characters (controls, format characters, line and
  paragraph separators, lone surrogates) removed, at most `MAX_TEXT_CHARS` characters kept, IP
  literals in every notation struck (privacy.literals);
- `host`: the host rule (privacy.host); `referrer_host`: the same, behind a checked scheme;
- closed vocabularies (`method`, `protocol`, `country`, `family`, `device`): the value when it
  is in the vocabulary (or, for families, of the strict family shape), else null (`Other` for a
  family);
- `address`, `time`, `number`: values the masker, the timestamp readers and the number parsers
  made, never input text.
A kind without a check here fails at import, so a new field (CMCD, beacons, proxy headers)
cannot reach a record unchecked. Free text is struck here only, once (the stage hands the
referrer's path and the kept query over unstruck); hosts and families, which their rules have
already read, are checked again at the cost of a cache look-up.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable

from sidecar.cache import bounded
from sidecar.privacy.geo import NOT_COUNTRIES
from sidecar.privacy.host import HostRule
from sidecar.privacy.literals import LiteralMasker
from sidecar.privacy.useragent import BROWSER_NAMES, DEVICE_CLASSES, OS_NAMES, family_or_other
from sidecar.record import FIELDS, METHODS, PROTOCOLS, SCHEMA, CleanRecord

#: the longest free-text value kept (nginx's default large_client_header_buffers is 8 KiB)
MAX_TEXT_CHARS = 8192

COUNTRIES = (
    frozenset(a + b for a in string.ascii_uppercase for b in string.ascii_uppercase) - NOT_COUNTRIES
)
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]{0,31}")


def visible(text: str) -> str:
    """Text without invisible characters (controls, format characters, separators other than
    space, surrogates, unassigned code points)."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(c for c in text if c.isprintable())


_FAMILIES = BROWSER_NAMES | OS_NAMES


def is_family(value: str) -> bool:
    """Whether a browser or OS family is one of the parser's fixed names or has the strict
    shape of a name (privacy.useragent)."""
    return family_or_other(value, _FAMILIES) == value


class RecordFactory:
    """`make(*values)` -> CleanRecord, values in `FIELDS` order, each through its content check."""

    def __init__(self, literals: LiteralMasker, hosts: HostRule) -> None:
        self.literals = literals
        self.hosts = hosts
        self._family = bounded(lambda name: family_or_other(name, _FAMILIES), 4096, 64)
        checks: dict[str, Callable | frozenset | None] = {
            "text": self.text,
            "host": hosts.scrub,
            "referrer_host": self.referrer_host,
            "method": METHODS,
            "protocol": PROTOCOLS,
            "country": COUNTRIES,
            "device": frozenset(DEVICE_CLASSES),
            "family": self._family,
            "address": None,
            "time": None,
            "number": None,
        }
        namespace: dict[str, object] = {"CleanRecord": CleanRecord}
        lines = [f"def make({', '.join(FIELDS)}):", "    return CleanRecord("]
        for name, field in SCHEMA.items():
            if field.content not in checks:
                raise AssertionError(f"schema field {name}: no check for {field.content!r}")
            check = checks[field.content]
            namespace[f"_{name}"] = check
            if check is None:
                expr = name
            elif isinstance(check, frozenset):
                expr = f"{name} if {name} in _{name} else None"
            else:
                expr = f"_{name}({name}) if {name} else None"
            lines.append(f"        {name}=({expr}),")
        lines.append("    )")
        source = "\n".join(lines)
        exec(compile(source, "<sidecar.privacy.clean.make>", "exec"), namespace)
        self.make: Callable[..., CleanRecord] = namespace["make"]  # type: ignore[assignment]
        self.make.source = source  # type: ignore[attr-defined]

    def text(self, value: str) -> str:
        """The one free-text scrubber."""
        value = visible(value)
        if len(value) > MAX_TEXT_CHARS:
            value = value[:MAX_TEXT_CHARS]
        return self.literals.mask(value)

    def referrer_host(self, value: str) -> str | None:
        scheme, sep, host = value.rpartition("://")
        if sep and _SCHEME.fullmatch(scheme) is None:
            return None
        if ":" in host:
            host = f"[{host}]"
        struck = self.hosts.scrub(host)
        if struck is None:
            return None
        struck = struck.strip("[]")
        return f"{scheme}://{struck}" if sep else struck
