"""The Common Log Format family, as nginx log_format templates.

`$remote_ident` stands for Apache's `%l` (always `-` in nginx). Trailing fields after a known
format are tolerated and dropped (Apache's and Icecast's extended variants).
"""

from __future__ import annotations

from sidecar.formats.log_format import TemplateFormat

_COMMON = (
    '$remote_addr $remote_ident $remote_user [$time_local] "$request" $status $body_bytes_sent'
)
_COMBINED = _COMMON + ' "$http_referer" "$http_user_agent"'

TEMPLATES: dict[str, str] = {
    "common": _COMMON,
    "combined": _COMBINED,
    "vhost_combined": "$host " + _COMBINED,
    "vhost_common": "$host " + _COMMON,
    # nginx's documented `main` format: combined plus X-Forwarded-For
    "nginx-main": _COMBINED + ' "$http_x_forwarded_for"',
}


def clf_format(name: str) -> TemplateFormat:
    return TemplateFormat(name, TEMPLATES[name], tolerate_tail=True)
