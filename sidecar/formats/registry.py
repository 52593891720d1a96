"""Format names -> parsers: the built-in names, or an nginx log_format string."""

from __future__ import annotations

import os
import re

from sidecar.errors import ConfigError, UsageError
from sidecar.formats.base import LineFormat
from sidecar.formats.clf import TEMPLATES, clf_format
from sidecar.formats.log_format import compile_log_format
from sidecar.formats.nginx_json import JsonFormat

NAMES: tuple[str, ...] = ("auto", *TEMPLATES, "nginx-json")


_DIRECTIVE = re.compile(r"^\s*(log_format\s[^;]*;)", re.MULTILINE)


def _first_log_format(path: str) -> str:
    """The first log_format directive of an nginx config file (a ValueError says why not)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = "".join(line for line in fh if not line.lstrip().startswith("#"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path!r} ({type(exc).__name__})") from None
    m = _DIRECTIVE.search(text)
    if m is None:
        raise ValueError(f"{path!r} holds no log_format directive")
    return m.group(1)


def resolve(spec: str, key: str = "--format", where: str | None = None) -> LineFormat | None:
    """The format a `--format` value (or `input.format`) names; None for `auto` (detected from
    the first lines).

    A value is a built-in name, an nginx log_format directive or template (it has a `$`), or
    the path of an nginx config file whose first log_format directive is used. A bad value is
    a UsageError naming `key`, the flag or config key it came from, and the file (`where`)."""
    try:
        return _resolve(spec)
    except (UsageError, ValueError) as exc:
        error = UsageError if key.startswith("--") else ConfigError  # exit 2 either way
        raise error(f"{key}: {exc}{f' (in {where})' if where else ''}") from None


def _resolve(spec: str) -> LineFormat | None:
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
    raise ValueError(
        f"unknown format {spec!r}: use one of {', '.join(NAMES)}, an nginx log_format string, "
        "or the path of an nginx config file holding one"
    )
