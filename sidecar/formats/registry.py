"""Format names -> parsers: the built-in names, or an nginx log_format string."""

from __future__ import annotations

import os
import re

from sidecar.errors import UsageError
from sidecar.formats.base import LineFormat
from sidecar.formats.clf import TEMPLATES, clf_format
from sidecar.formats.log_format import compile_log_format
from sidecar.formats.nginx_json import JsonFormat

NAMES: tuple[str, ...] = ("auto", *TEMPLATES, "nginx-json")


_DIRECTIVE = re.compile(r"^\s*(log_format\s[^;]*;)", re.MULTILINE)


def _first_log_format(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            text = "".join(line for line in fh if not line.lstrip().startswith("#"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--format: cannot read {path!r} ({type(exc).__name__})") from None
    m = _DIRECTIVE.search(text)
    if m is None:
        raise UsageError(f"--format: {path!r} holds no log_format directive")
    return m.group(1)


def resolve(spec: str) -> LineFormat | None:
    """The format a `--format` value names; None for `auto` (detect from the first lines).

    A value is a built-in name, an nginx log_format directive or template (it has a `$`), or
    the path of an nginx config file whose first log_format directive is used."""
    if spec == "auto":
        return None
    if spec in TEMPLATES:
        return clf_format(spec)
    if spec == "nginx-json":
        return JsonFormat()
    if "$" in spec:
        return compile_log_format(spec)
    if os.path.isfile(spec):  # an nginx config file: its first log_format directive
        return compile_log_format(_first_log_format(spec))
    raise UsageError(
        f"--format: unknown format {spec!r}; use one of {', '.join(NAMES)} "
        "or an nginx log_format string"
    )
