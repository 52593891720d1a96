"""Format names -> parsers: the built-in names, or an nginx log_format string."""

from __future__ import annotations

from sidecar.errors import UsageError
from sidecar.formats.base import LineFormat
from sidecar.formats.clf import TEMPLATES, clf_format
from sidecar.formats.log_format import compile_log_format
from sidecar.formats.nginx_json import JsonFormat

NAMES: tuple[str, ...] = ("auto", *TEMPLATES, "nginx-json")


def resolve(spec: str) -> LineFormat | None:
    """The format a `--format` value names; None for `auto` (detect from the first lines)."""
    if spec == "auto":
        return None
    if spec in TEMPLATES:
        return clf_format(spec)
    if spec == "nginx-json":
        return JsonFormat()
    if "$" in spec:
        return compile_log_format(spec)
    raise UsageError(
        f"--format: unknown format {spec!r}; use one of {', '.join(NAMES)} "
        "or an nginx log_format string"
    )
