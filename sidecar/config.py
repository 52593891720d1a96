"""TOML -> frozen, typed config. Every option is declared here once, with its default and check.

Unknown keys and bad values raise `ConfigError` naming the key (`ip.ipv4_prefix_bits: ...`).
`config/sidecar.toml` documents every key; a test keeps the two in step.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

from sidecar.errors import ConfigError

Check = Callable[[Any], str | None]  # returns an error text, or None when the value is good

DEFAULT_GEOIP_DATABASE = "data/country.mmdb"


def _opt(default: Any, check: Check | None = None) -> Any:
    """Declare an option: its default (a list becomes a tuple, to stay frozen) and its check."""
    if isinstance(default, list):
        default = tuple(default)
    return field(default=default, metadata={"check": check})


def _int_range(lo: int, hi: int) -> Check:
    return lambda v: (
        None if lo <= v <= hi else f"must be an integer from {lo} to {hi}, got {_shown(v)}"
    )


def _one_of(*choices: str) -> Check:
    return lambda v: (
        None if v in choices else f"must be one of {', '.join(map(repr, choices))}, got {_shown(v)}"
    )


MAX_SECS = 86400.0  # one day: longer waits are mistakes, and threading waits overflow past ~1e9


def _secs(allow_zero: bool = False) -> Check:
    """A duration in seconds: greater than 0 (or 0 when `allow_zero`), at most a day."""
    low = "from 0" if allow_zero else "greater than 0 and"

    def check(v: float) -> str | None:
        ok = (v >= 0 if allow_zero else v > 0) and v <= MAX_SECS
        return None if ok else f"must be a number of seconds {low} up to {MAX_SECS:g}, got {v}"

    return check


def _proxies(values: tuple[str, ...]) -> str | None:
    for v in values:
        if v == "unix:":
            continue
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError:
            return f"{v!r} is not an IP address, a CIDR network or 'unix:'"
    return None


def _hosts(values: tuple[str, ...]) -> str | None:
    for v in values:
        if not v or "/" in v or ":" in v or " " in v:
            return f"{v!r} is not a host name (write 'example.com', no scheme, port or path)"
    return None


def _param_names(values: tuple[str, ...]) -> str | None:
    for v in values:
        if not v or "*" in v[:-1] or "&" in v or "=" in v:
            return f"{v!r} is not a parameter name (a trailing '*' matches a prefix)"
    return None


@dataclass(frozen=True)
class InputConfig:
    format: str = _opt("auto")
    max_line_bytes: int = _opt(65536, _int_range(256, 16 * 1024 * 1024))


@dataclass(frozen=True)
class PipeConfig:
    output: str = _opt("jsonl", _one_of("jsonl", "rewrite"))
    workers: int = _opt(1, _int_range(1, 64))
    metrics_textfile_interval_secs: float = _opt(60.0, _secs())


def _host_port(allow_empty: bool) -> Check:
    """`HOST:PORT` (`127.0.0.1:5514`, `[::1]:5514`, `localhost:9187`), or "" when allowed."""

    def check(v: str) -> str | None:
        if allow_empty and v == "":
            return None
        if split_host_port(v) is None:
            return f"must be HOST:PORT (a port from 0, any free one, to 65535), got {_shown(v)}"
        return None

    return check


def split_host_port(value: str) -> tuple[str, int] | None:
    """(`127.0.0.1`, 5514) from `127.0.0.1:5514` (brackets around an IPv6 host); None if bad."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host or "/" in host or " " in host:
        return None
    return host, int(port)


def _paths(values: tuple[str, ...]) -> str | None:
    for v in values:
        if not v.startswith("/") or "?" in v or "#" in v or " " in v:
            return f"{v!r} is not a URL path (write '/beacon', no query)"
    return None


@dataclass(frozen=True)
class ServeConfig:
    """`sidecar serve`: its sources, its HTTP endpoints, its state and its hand-off."""

    syslog_udp: str = _opt("", _host_port(allow_empty=True))
    syslog_unix: str = _opt("")
    unix_socket_mode: int = _opt(0o660, _int_range(0, 0o777))
    unix_socket_group: str = _opt("")
    recv_buffer_bytes: int = _opt(4 << 20, _int_range(4096, 1 << 30))
    follow: tuple[str, ...] = _opt([])
    read_from: str = _opt("end", _one_of("end", "beginning"))
    rotate_wait_secs: float = _opt(5.0, _secs(allow_zero=True))
    glob_interval_secs: float = _opt(1.0, _secs())
    poll_interval_secs: float = _opt(0.25, _secs())
    checkpoint_interval_secs: float = _opt(1.0, _secs())
    stdin: bool = _opt(False)
    http: str = _opt("127.0.0.1:9187", _host_port(allow_empty=True))
    state_dir: str = _opt("data/state")
    flush_interval_secs: float = _opt(0.05, _secs())
    flush_max_bytes: int = _opt(256 << 10, _int_range(1024, 64 << 20))
    handoff_max_bytes: int = _opt(64 << 20, _int_range(1 << 16, 1 << 40))
    shutdown_grace_secs: float = _opt(30.0, _secs())


def _upstream(v: str) -> str | None:
    scheme, sep, rest = v.partition("://")
    host = rest.split("/", 1)[0]
    if v == "" or (
        sep
        and scheme in ("http", "https")
        and host
        and "@" not in host
        and " " not in v
        and rest.strip("/") == host
    ):
        return None
    return f"must be an origin URL, http://HOST[:PORT] or https://HOST[:PORT], got {_shown(v)}"


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: headers the proxy's header rule sets or keeps itself: `proxy.strip_headers` may not name them
OWNED_HEADERS = ("host", "x-forwarded-for", "x-real-ip", "forwarded")


def _header_names(values: tuple[str, ...]) -> str | None:
    for v in values:
        if not _TOKEN.match(v):
            return f"{v!r} is not a header name"
        if v.lower() in OWNED_HEADERS:
            return f"{v!r} cannot be stripped: the proxy sets it itself (the truncated client)"
    return None


@dataclass(frozen=True)
class ProxyConfig:
    """`sidecar proxy`: where it listens, the origin behind it, what it answers itself."""

    listen: str = _opt("127.0.0.1:8080", _host_port(allow_empty=False))
    upstream: str = _opt("", _upstream)
    http: str = _opt("127.0.0.1:9188", _host_port(allow_empty=True))
    beacon_paths: tuple[str, ...] = _opt(["/beacon"], _paths)
    strip_headers: tuple[str, ...] = _opt(["cookie"], _header_names)
    stream_min_bytes: int = _opt(1 << 20, _int_range(1024, 1 << 40))
    tls_cert: str = _opt("")
    confdir: str = _opt("data/state/mitmproxy")
    flush_interval_secs: float = _opt(0.25, _secs())
    shutdown_grace_secs: float = _opt(30.0, _secs())


@dataclass(frozen=True)
class BeaconConfig:
    paths: tuple[str, ...] = _opt(["/beacon"], _paths)
    allow: tuple[str, ...] = _opt(
        ["event", "media", "position_secs", "duration_secs", "bitrate_kbps", "stall_secs",
         "error", "player", "CMCD"],
        _param_names,
    )  # fmt: skip


@dataclass(frozen=True)
class IpConfig:
    ipv4_prefix_bits: int = _opt(24, _int_range(0, 32))
    ipv6_prefix_bits: int = _opt(48, _int_range(0, 128))
    trusted_proxies: tuple[str, ...] = _opt([], _proxies)
    real_ip_header: str = _opt(
        "x-forwarded-for", _one_of("x-forwarded-for", "forwarded", "x-real-ip")
    )


@dataclass(frozen=True)
class GeoipConfig:
    database: str = _opt(DEFAULT_GEOIP_DATABASE)
    fallback_registered_country: bool = _opt(False)
    lookup: str = _opt("full", _one_of("full", "truncated"))
    cache_entries: int = _opt(65536, _int_range(0, 10_000_000))


@dataclass(frozen=True)
class ReferrerConfig:
    first_party_hosts: tuple[str, ...] = _opt([], _hosts)
    third_party: str = _opt("host", _one_of("host", "drop"))


@dataclass(frozen=True)
class PathConfig:
    keep_params: bool = _opt(False)


@dataclass(frozen=True)
class QueryConfig:
    allow: tuple[str, ...] = _opt([], _param_names)


@dataclass(frozen=True)
class UseragentConfig:
    mode: str = _opt("coarse", _one_of("coarse", "drop", "keep"))
    cache_entries: int = _opt(65536, _int_range(0, 10_000_000))


SINK_SCHEMES = ("stdout", "sqlite", "clickhouse", "jsonl", "http")
DEFAULT_SINK = "sqlite:data/analytics.db"


_SECRET_PARAM = re.compile(r"(?i)([?&;][^=&#;]*(?:pass|key|token|secret|auth|sig)[^=&#;]*=)[^&#;]*")


# where the authority starts: `scheme://` or `sink:http(s)://` (not `sink:user://`)
_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?:https?:)?//")


def redact_url(url: str) -> str:
    """A URL fit for messages, file names and metric labels: userinfo and secret query
    parameters (`password=`, `api_key=`, `token=`, `secret=`, `auth=`, ...) replaced by `***`.

    The userinfo is all before the last `@` ahead of the query, so a password holding `@` or
    `/` is hidden whole; without a `scheme://` (a mistyped `clickhouse:user:pw@host`), all
    after the first `:` is."""
    cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    head, tail = url[:cut], url[cut:]
    at = head.rfind("@")
    if at >= 0:
        authority = _AUTHORITY.match(head)
        start = authority.end() if authority and authority.end() <= at else head.find(":") + 1
        head = head[:start] + "***" + head[at:]
    return head + _SECRET_PARAM.sub(r"\1***", tail)


def _sink_url(url: str) -> str | None:
    scheme, sep, rest = url.partition(":")
    url = redact_url(url)
    if not sep or scheme not in SINK_SCHEMES:
        return f"{url!r} is not a sink URL (one of {', '.join(s + ':' for s in SINK_SCHEMES)})"
    if scheme in ("sqlite", "jsonl") and not rest:
        return f"{url!r} names no file ({scheme}:PATH)"
    if scheme in ("clickhouse", "http") and not rest.startswith(("http://", "https://")):
        return f"{url!r}: {scheme}: takes an http:// or https:// URL"
    return None


_NAME_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _sink_name(v: str) -> str | None:
    if v == "" or (_NAME_SHAPE.match(v) and ".." not in v):
        return None
    return f"must be 1 to 64 letters, digits, '.', '_' or '-' (a folder, a label), got {_shown(v)}"


@dataclass(frozen=True)
class StorageConfig:
    """Where clean records go, and how they are kept safe on the way."""

    default_sink: str = _opt(DEFAULT_SINK, _sink_url)
    spool_dir: str = _opt("data/spool")
    spool_max_bytes: int = _opt(1 << 30, _int_range(1024, 1 << 50))
    spool_full: str = _opt("drop_oldest", _one_of("drop_oldest", "drop_newest"))
    dead_letter_dir: str = _opt("data/dead-letter")
    retention_months: int = _opt(25, _int_range(1, 1200))
    retry_initial_secs: float = _opt(0.5, _secs())
    retry_max_secs: float = _opt(30.0, _secs())
    shutdown_timeout_secs: float = _opt(10.0, _secs(allow_zero=True))


@dataclass(frozen=True)
class SinkConfig:
    """One `[[sinks]]` entry (or one `--sink URL`, with these defaults)."""

    url: str = _opt("", _sink_url)
    name: str = _opt("", _sink_name)
    batch_max_rows: int = _opt(100_000, _int_range(1, 1_000_000))
    batch_max_bytes: int = _opt(16 << 20, _int_range(1024, 1 << 30))
    batch_timeout_secs: float = _opt(1.0, _secs())
    timeout_secs: float = _opt(30.0, _secs())
    compression: str = _opt("auto", _one_of("auto", "gzip", "none"))
    concurrency: int = _opt(3, _int_range(1, 16))
    user: str = _opt("")
    password: str = _opt("")
    password_env: str = _opt("")
    max_file_bytes: int = _opt(256 << 20, _int_range(1024, 1 << 50))

    def secret(self) -> str:
        """The password: `password`, else the environment variable named by `password_env`."""
        return self.password or (environ(self.password_env) or "" if self.password_env else "")


@dataclass(frozen=True)
class Config:
    input: InputConfig = field(default_factory=InputConfig)
    pipe: PipeConfig = field(default_factory=PipeConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    beacon: BeaconConfig = field(default_factory=BeaconConfig)
    ip: IpConfig = field(default_factory=IpConfig)
    geoip: GeoipConfig = field(default_factory=GeoipConfig)
    referrer: ReferrerConfig = field(default_factory=ReferrerConfig)
    path: PathConfig = field(default_factory=PathConfig)
    query: QueryConfig = field(default_factory=QueryConfig)
    useragent: UseragentConfig = field(default_factory=UseragentConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    sinks: tuple[SinkConfig, ...] = ()
    source: str = "(defaults)"  # where the config came from, for messages


SECTIONS: dict[str, type] = {
    f.name: f.type if isinstance(f.type, type) else get_type_hints(Config)[f.name]
    for f in fields(Config)
    if f.name not in ("source", "sinks")
}


def sink_config(url: str, config: Config | None = None) -> SinkConfig:
    """The `[[sinks]]` entry with this URL, or a SinkConfig with defaults; the URL is checked."""
    for entry in config.sinks if config is not None else ():
        if entry.url == url:
            return entry
    return _build_section("--sink", SinkConfig, {"url": url}, "the command line")


_WANTED: dict[Any, str] = {
    bool: "true or false",
    int: "an integer",
    float: "a finite number",
    str: "a string",
    tuple[str, ...]: "a list of strings",
}
_SECRET_KEY = re.compile(r"(?i)password|secret|token|key")
_SHOWN_CHARS = 60


def is_secret_key(key: str) -> bool:
    """A key that holds a secret (or names one): its value never appears in a message."""
    return _SECRET_KEY.search(key) is not None


def _shown(value: Any) -> str:
    """A value as messages quote it: repr, cut short (a config value may be long)."""
    text = repr(value) if not isinstance(value, int | float) else _number(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _number(value: int | float) -> str:
    try:
        return repr(value)
    except ValueError:  # an integer past Python's digit limit for str()
        return "a very long integer"


def _type_error(value: Any, want: Any) -> str | None:
    """What is wrong with a value's type (None: nothing); a float must be finite (no inf, nan)."""
    if want not in _WANTED:
        raise AssertionError(f"no type check for {want}")  # a programming error, not user input
    if want is bool:
        ok = isinstance(value, bool)
    elif want is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif want is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and _finite(value)
    elif want is str:
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    return None if ok else f"must be {_WANTED[want]}, got {_shown(value)}"


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _unknown(key: str, known: list[str], where: str) -> ConfigError:
    hint = difflib.get_close_matches(key.rsplit(".", 1)[-1], known, n=1)
    more = f" (did you mean '{hint[0]}'?)" if hint else ""
    return ConfigError(f"unknown key '{key}' in {where}{more}")


def _build_section(name: str, cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{name}: must be a table ([{name}]) in {where}")
    hints = get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise _unknown(f"{name}.{key}", known, where)
        want = hints[key]
        error = _type_error(value, want)
        if error is None and want == tuple[str, ...]:
            value = tuple(value)
        if error is None and want is float:
            value = float(value)
        check = next(f for f in fields(cls) if f.name == key).metadata.get("check")
        if error is None and check is not None:
            error = check(value)
        if error is not None:
            if is_secret_key(key):  # the checks quote values: say what is wanted, not what came
                wanted = _WANTED[want] if _type_error(value, want) else "a valid value"
                error = f"must be {wanted} (the value is not shown: it is a secret)"
            raise ConfigError(f"{name}.{key}: {error} (in {where})")
        values[key] = value
    return cls(**values)


def from_mapping(data: Mapping[str, Any], where: str = "(command line)") -> Config:
    """Build a Config from a parsed TOML document; every key is checked."""
    sections: dict[str, Any] = {}
    for name, value in data.items():
        if name == "sinks":
            sections["sinks"] = _build_sinks(value, where)
            continue
        if name not in SECTIONS:
            raise _unknown(name, [*SECTIONS, "sinks"], where)
        sections[name] = _build_section(name, SECTIONS[name], value, where)
    return Config(**sections, source=where)


def _build_sinks(value: Any, where: str) -> tuple[SinkConfig, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"sinks: must be a list of [[sinks]] tables (in {where})")
    sinks = []
    for i, entry in enumerate(value):
        sink = _build_section(f"sinks[{i}]", SinkConfig, entry, where)
        if not sink.url:
            raise ConfigError(f"sinks[{i}].url: every [[sinks]] entry needs a url (in {where})")
        sinks.append(sink)
    return tuple(sinks)


def load(path: str | os.PathLike[str] | None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read a TOML config file (None: the built-in defaults), then apply the command line's
    `overrides` (dotted keys; a None value is a flag not given)."""
    cfg = _load_file(path)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    return override(cfg, given) if given else cfg


def _load_file(path: str | os.PathLike[str] | None) -> Config:
    if path is None:
        return Config()
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(p)!r} not found") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(p)!r} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:  # its messages give a place, never the text
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
    except ValueError:  # an integer past Python's digit limit (4300)
        raise ConfigError(f"config file {str(p)!r} holds an integer too long to read") from None
    return from_mapping(data, where=str(p))


def override(config: Config, dotted: Mapping[str, Any]) -> Config:
    """Apply command-line values (`{"geoip.database": "x.mmdb"}`), checked like file values."""
    for key, value in dotted.items():
        section, _, name = key.partition(".")
        current = getattr(config, section)
        merged = {f.name: getattr(current, f.name) for f in fields(current)}
        merged[name] = value
        checked = _build_section(section, type(current), merged, "the command line")
        config = replace(config, **{section: checked})
    return config


def environ(name: str) -> str | None:
    """The one place that reads the environment (for secrets such as passwords)."""
    return os.environ.get(name)


def defaults_as_mapping() -> dict[str, dict[str, Any]]:
    """Every section and key with its default, for docs and the config-file test."""
    out: dict[str, dict[str, Any]] = {}
    for name, cls in SECTIONS.items():
        inst = cls()
        out[name] = {
            f.name: list(v) if isinstance(v := getattr(inst, f.name), tuple) else v
            for f in fields(cls)
        }
    return out
