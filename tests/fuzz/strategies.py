"""Planted addresses in every notation, in every field of every format, and the lines around them.

Every generator takes a `Chooser`: hypothesis draws through `HypothesisChooser` (strategies
below), the coverage-guided session and its corpus replay through `BytesChooser` (a fuzzer's
bytes read as choices). One code path makes both, so a corpus file replays the same case.

A `Case` is one chunk of log lines in one format under one config preset, with the `Identity`
of every address planted in it (tests/fuzz/oracle.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import orjson
from hypothesis import strategies as st

from tests.fuzz.oracle import Identity

T = TypeVar("T")


class Chooser(Protocol):
    def integer(self, lo: int, hi: int) -> int: ...
    def choice(self, seq: Sequence[T]) -> T: ...
    def boolean(self) -> bool: ...


class HypothesisChooser:
    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))

    def choice(self, seq: Sequence[T]) -> T:
        return self.data.draw(st.sampled_from(seq))

    def boolean(self) -> bool:
        return self.data.draw(st.booleans())


class BytesChooser:
    """Fuzzer bytes as choices; exhausted input reads as zeros (the first choice)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> int:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return int.from_bytes(chunk.ljust(n, b"\0"), "big")

    def integer(self, lo: int, hi: int) -> int:
        span = hi - lo + 1
        n = max(1, (span.bit_length() + 7) // 8)
        return lo + self._take(n) % span

    def choice(self, seq: Sequence[T]) -> T:
        return seq[self.integer(0, len(seq) - 1)]

    def boolean(self) -> bool:
        return bool(self._take(1) & 1)


# --- config presets ------------------------------------------------------------------------------

TRUSTED_PROXY = "10.20.30.40"  # in ip.trusted_proxies; planted addresses are never in 10/8
FIRST_PARTY = "example-video.eu"
_COMMON_SECTIONS: dict[str, dict[str, Any]] = {
    "query": {"allow": ["q", "ip", "t*"]},
    "referrer": {"first_party_hosts": [FIRST_PARTY]},
}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "default": {
        **_COMMON_SECTIONS,
        "ip": {"trusted_proxies": ["10.0.0.0/8"]},
        "useragent": {"mode": "keep"},
    },
    "strict": {
        **_COMMON_SECTIONS,
        "ip": {"trusted_proxies": ["10.0.0.0/8"], "ipv4_prefix_bits": 16, "ipv6_prefix_bits": 32},
        "useragent": {"mode": "keep"},
    },
    "coarse": {  # user agents reduced to families: can a family name carry an address?
        **_COMMON_SECTIONS,
        "ip": {"trusted_proxies": ["10.0.0.0/8"]},
        "useragent": {"mode": "coarse"},
    },
}


def prefix_bits(preset: str) -> tuple[int, int]:
    ip = PRESETS[preset]["ip"]
    return ip.get("ipv4_prefix_bits", 24), ip.get("ipv6_prefix_bits", 48)


# --- formats -------------------------------------------------------------------------------------

CUSTOM_FORMAT = (
    'log_format fuzz \'$remote_addr - $host [$msec] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" "$http_x_forwarded_for"\';'
)
FORMATS = (
    "combined",
    "common",
    "vhost_combined",
    "vhost_common",
    "nginx-main",
    "nginx-json",
    CUSTOM_FORMAT,
)
HAS_HOST = {"vhost_combined", "vhost_common", "nginx-json", CUSTOM_FORMAT}
HAS_XFF = {"nginx-main", "nginx-json", CUSTOM_FORMAT}
HAS_REFERRER_UA = {"combined", "vhost_combined", "nginx-main", "nginx-json", CUSTOM_FORMAT}


def format_label(fmt: str) -> str:
    return "custom" if fmt == CUSTOM_FORMAT else fmt


# --- addresses -----------------------------------------------------------------------------------


def planted_ipv4(c: Chooser, v4_bits: int) -> int:
    """An IPv4 address whose first struck bit is 1; never in 10/8 (trusted) or 0/8."""
    first = c.integer(1, 223)
    if first in (10, 127):
        first += 1
    rest = [c.integer(0, 255) for _ in range(3)]
    value = (first << 24) | (rest[0] << 16) | (rest[1] << 8) | rest[2]
    return value | (1 << (31 - v4_bits))


def planted_ipv6(c: Chooser, v6_bits: int) -> int:
    """A global-looking IPv6 address (2001..3fff, not 6to4) whose first struck bit is 1."""
    first = c.integer(0x2001, 0x3FFF)
    if first == 0x2002:
        first = 0x2001
    groups = [first, c.choice((0xDB8, 0xABC, 0x4860, 0x1A2B))]
    for _ in range(6):
        groups.append(0 if c.integer(0, 2) == 0 else c.integer(1, 0xFFFF))
    value = 0
    for g in groups:
        value = (value << 16) | g
    return value | (1 << (127 - v6_bits))


def _case(c: Chooser, text: str) -> str:
    return "".join(ch.upper() if ch.isalpha() and c.boolean() else ch for ch in text)


def _part(c: Chooser, b: int, octal_ok: bool = True) -> str:
    kind = c.integer(0, 3 if octal_ok else 2)
    if kind == 0:
        return str(b)
    if kind == 1:  # decimal with leading zeros (read as decimal by the spec)
        return "0" * c.integer(1, 2) + str(b)
    if kind == 2:
        return _case(c, "0x" + "0" * c.integer(0, 1) + format(b, "x"))
    return "0" + format(b, "o")


def _whatwg_part(c: Chooser, b: int) -> str:
    kind = c.integer(0, 2)
    if kind == 0:
        return str(b)
    return _case(c, hex(b)) if kind == 1 else "0" + format(b, "o")


def ipv4_free_text(c: Chooser, value: int) -> tuple[str, str]:
    """(text, notation) of an IPv4 address as free text may hold it."""
    b = value.to_bytes(4, "big")
    kind = c.integer(0, 4)
    if kind == 0:
        return ".".join(map(str, b)), "v4-dotted"
    if kind == 4:
        return _case(c, "0x" + format(value, "08x" if c.boolean() else "x")), "v4-hex32"
    return ".".join(_part(c, x) for x in b), "v4-mixed-parts"


_FULLWIDTH_DOTS = ("\uff0e", "\u3002", "\uff61")


def ipv4_host(c: Chooser, value: int) -> tuple[str, str]:
    """(text, notation) of an IPv4 address as a host may hold it (WHATWG / UTS 46 forms too)."""
    kind = c.integer(0, 6)
    if kind == 0:
        return ipv4_free_text(c, value)
    if kind == 1:
        return str(value), "host-v4-integer"
    if kind == 2:  # 1 to 4 parts, mixed radix, the last one filling the rest
        n = c.integer(1, 4)
        b = value.to_bytes(4, "big")
        # WHATWG reads a leading 0 as octal: no zero-padded decimals in the head parts
        head = [_part(c, x) if n == 4 else _whatwg_part(c, x) for x in b[: n - 1]]
        last = int.from_bytes(b[n - 1 :], "big")
        lk = c.integer(0, 2)
        last_text = (
            str(last) if lk == 0 else _case(c, hex(last)) if lk == 1 else "0" + format(last, "o")
        )
        text = ".".join([*head, last_text])
        return text + ("." if c.boolean() else ""), f"host-v4-whatwg-{n}-parts"
    if kind == 3:  # fullwidth digits and dots
        digits = ".".join(map(str, value.to_bytes(4, "big")))
        out = []
        for ch in digits:
            if ch == ".":
                out.append(c.choice((".", *_FULLWIDTH_DOTS)))
            else:
                out.append(chr(0xFF10 + int(ch)) if c.boolean() else ch)
        return "".join(out), "host-v4-fullwidth"
    if kind == 4:
        return "-".join(map(str, value.to_bytes(4, "big"))) + ".example.net", "host-v4-dash-label"
    if kind == 5:
        return ipv6_text(c, (0xFFFF << 32) | value, v4_tail=True)[0], "host-v4-mapped"
    return ".".join(map(str, value.to_bytes(4, "big"))) + ".", "host-v4-trailing-dot"


def ipv6_text(c: Chooser, value: int, v4_tail: bool | None = None) -> tuple[str, str]:
    """(text, notation): compressed or not, leading zeros, any case, maybe an IPv4 tail."""
    groups = [(value >> (16 * (7 - i))) & 0xFFFF for i in range(8)]
    tail = c.boolean() if v4_tail is None else v4_tail
    texts = [
        format(g, "04x") if c.integer(0, 3) == 0 else format(g, "x")
        for g in groups[: 6 if tail else 8]
    ]
    if tail:
        texts.append(".".join(map(str, (value & 0xFFFFFFFF).to_bytes(4, "big"))))
    # compress one run of zero groups (of the hex groups), when there is one and we want to
    zeros = [i for i, g in enumerate(groups[: 6 if tail else 8]) if g == 0]
    notation = "v6-full"
    if zeros and c.integer(0, 3) != 0:
        start = c.choice(zeros)
        end = start
        while end + 1 < len(texts) and end + 1 in zeros and not (tail and end + 1 >= 6):
            end += 1
        end = c.integer(start, end)
        left, right = ":".join(texts[:start]), ":".join(texts[end + 1 :])
        text = f"{left}::{right}"
        notation = "v6-compressed"
    else:
        text = ":".join(texts)
    text = _case(c, text) if c.boolean() else text
    return text, notation + ("-v4tail" if tail else "")


def ipv6_decorated(c: Chooser, value: int) -> tuple[str, str]:
    text, notation = ipv6_text(c, value)
    kind = c.integer(0, 4)
    if kind == 1:
        return f"[{text}]", notation + "-brackets"
    if kind == 2:
        return f"[{text}]:{c.choice((80, 443, 8443))}", notation + "-brackets-port"
    if kind == 3:
        return text + c.choice(("%eth0", "%25eth0", "%1", "%en0")), notation + "-zone"
    return text, notation


@dataclass
class Plant:
    text: str
    notation: str
    identities: list[Identity]


def plant(c: Chooser, preset: str, host: bool = False) -> Plant:
    """One planted address (or prefix) in any notation."""
    v4_bits, v6_bits = prefix_bits(preset)
    kind = c.integer(0, 9)
    if kind <= 2:
        v = planted_ipv4(c, v4_bits)
        text, notation = ipv4_host(c, v) if host else ipv4_free_text(c, v)
        return Plant(text, notation, [Identity(4, v, 32, v4_bits)])
    if kind <= 4:
        v = planted_ipv6(c, v6_bits)
        text, notation = ipv6_decorated(c, v)
        return Plant(text, notation, [Identity(6, v, 128, v6_bits)])
    if kind == 5:  # IPv4-mapped or NAT64: the IPv4 they carry
        v = planted_ipv4(c, v4_bits)
        prefix = c.choice(((0xFFFF << 32), (0x0064FF9B << 96)))
        text, notation = ipv6_text(c, prefix | v)
        name = "v6-mapped" if prefix == 0xFFFF << 32 else "v6-nat64"
        return Plant(text, f"{name}/{notation}", [Identity(4, v, 32, v4_bits)])
    if kind == 6:  # 6to4: 2002:AABB:CCDD::/48 holds a whole IPv4
        v = planted_ipv4(c, v4_bits)
        n = (0x2002 << 112) | (v << 80) | c.integer(1, 0xFFFF)
        text, notation = ipv6_text(c, n, v4_tail=False)
        idents = [Identity(4, v, 32, v4_bits)]
        if 16 + v4_bits < v6_bits:  # its IPv6 prefix holds no more than the struck IPv4
            idents.append(Identity(6, n, 128, 16 + v4_bits))
        return Plant(text, f"v6-6to4/{notation}", idents)
    if kind == 7 and v4_bits < 24:  # a cut-off IPv4: three dotted parts
        v = planted_ipv4(c, v4_bits) & 0xFFFFFF00
        b = v.to_bytes(4, "big")[:3]
        text = ".".join(_part(c, x) for x in b)
        return Plant(text, "v4-prefix-3-parts", [Identity(4, v, 24, v4_bits)])
    if kind <= 8:  # a cut-off IPv6: 3 to 7 groups, more than the prefix
        v = planted_ipv6(c, v6_bits)
        k = c.integer(v6_bits // 16 + 1, 7)
        groups = [format((v >> (16 * (7 - i))) & 0xFFFF, "x") for i in range(k)]
        mask = ((1 << (16 * k)) - 1) << (16 * (8 - k))
        return Plant(
            ":".join(groups), f"v6-prefix-{k}-groups", [Identity(6, v & mask, 16 * k, v6_bits)]
        )
    v = planted_ipv4(c, v4_bits)  # the plain forms, most common in logs
    return Plant(
        ".".join(map(str, v.to_bytes(4, "big"))), "v4-dotted", [Identity(4, v, 32, v4_bits)]
    )


def client_plant(c: Chooser, preset: str) -> Plant:
    """An address as a client field (remote_addr, X-Forwarded-For) writes it."""
    v4_bits, v6_bits = prefix_bits(preset)
    kind = c.integer(0, 5)
    if kind <= 1:
        v = planted_ipv4(c, v4_bits)
        text = ".".join(map(str, v.to_bytes(4, "big")))
        if kind == 1:
            text += f":{c.integer(1, 65535)}"
        return Plant(text, "client-v4" + ("-port" if kind else ""), [Identity(4, v, 32, v4_bits)])
    if kind <= 3:
        v = planted_ipv6(c, v6_bits)
        text, notation = ipv6_decorated(c, v)
        return Plant(text, "client-" + notation, [Identity(6, v, 128, v6_bits)])
    if kind == 4:
        v = planted_ipv4(c, v4_bits)
        text, notation = ipv6_text(c, (0xFFFF << 32) | v)
        return Plant(text, "client-v6-mapped", [Identity(4, v, 32, v4_bits)])
    return plant(c, preset)  # anything else: a bad_ip reject, struck in --rejects


# --- encodings and separators --------------------------------------------------------------------

SEPARATORS = (*tuple("/?&=;,[]()_-~+ :@#!$'"), "")
_FILLER = "abcdefghijklmnopqrstuvwxyzVX0123456789"


def percent_encode(c: Chooser, text: str) -> tuple[str, int]:
    """Some characters percent-encoded (mixed-case hex), then the escapes encoded again: up to
    4 levels (`.` -> `%2E` -> `%252E` -> `%25252E` -> `%2525252E`)."""
    levels = c.choice((0, 0, 1, 1, 2, 3, 4))
    out = text
    for level in range(levels):
        pieces = []
        for ch in out:
            encode = (ch == "%" and level > 0) or (ch not in "%" and c.integer(0, 2) == 0)
            if encode:
                pieces.extend(_case(c, f"%{b:02X}") for b in ch.encode())
            else:
                pieces.append(ch)
        out = "".join(pieces)
    return out, levels


def filler(c: Chooser, max_len: int = 5) -> str:
    return "".join(c.choice(_FILLER) for _ in range(c.integer(0, max_len)))


def surround(c: Chooser, text: str, forbidden: str = "") -> str:
    """`text` with separators (or nothing: glued) and filler text on either side."""
    seps = [s for s in SEPARATORS if s not in forbidden or s == ""]
    return filler(c) + c.choice(seps) + text + c.choice(seps) + filler(c)


def _maybe_surround(c: Chooser, text: str, forbidden: str) -> str:
    """A host: the address alone (the WHATWG forms are addresses only as a whole host), or
    with separators and filler around it (the free-text forms)."""
    return surround(c, text, forbidden) if c.boolean() else text


# --- lines ---------------------------------------------------------------------------------------

FIELDS = (
    "path",
    "query",
    "referrer_path",
    "referrer_host",
    "referrer_query",
    "user_agent",
    "host",
    "request_host",
    "xff",
    "remote_addr",
    "garbage",
)
HOST_FIELDS = {"referrer_host", "host", "request_host"}
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


@dataclass
class Case:
    preset: str
    fmt: str
    lines: list[str]
    identities: list[Identity] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # field:notation[:levels], per plant

    def chunk(self) -> bytes:
        return "".join(line + "\n" for line in self.lines).encode("utf-8", "surrogateescape")

    def as_json(self) -> dict[str, Any]:  # write with the stdlib json: lines may hold surrogates
        return {
            "preset": self.preset,
            "format": self.fmt,
            "lines": self.lines,
            "identities": [vars(i) for i in self.identities],
            "notes": self.notes,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Case:
        idents = [Identity(**i) for i in doc["identities"]]
        return cls(doc["preset"], doc["format"], list(doc["lines"]), idents, list(doc["notes"]))


def available_fields(fmt: str) -> list[str]:
    out = ["path", "query", "request_host", "remote_addr", "garbage"]
    if fmt in HAS_REFERRER_UA:
        out += ["referrer_path", "referrer_host", "referrer_query", "user_agent"]
    if fmt in HAS_HOST:
        out.append("host")
    if fmt in HAS_XFF:
        out.append("xff")
    return out


def _render(fmt: str, f: dict[str, str]) -> str:
    request = f"{f['method']} {f['target']} {f['protocol']}"
    if fmt == "nginx-json":
        obj = {
            "remote_addr": f["remote_addr"],
            "time_local": f["time_local"],
            "host": f["host"],
            "request": request,
            "status": int(f["status"]),
            "body_bytes_sent": int(f["bytes"]),
            "http_referer": f["referrer"],
            "http_user_agent": f["user_agent"],
            "http_x_forwarded_for": f["xff"],
        }
        return orjson.dumps(obj).decode()
    if fmt == CUSTOM_FORMAT:
        return (
            f'{f["remote_addr"]} - {f["host"]} [{f["msec"]}] "{request}" {f["status"]} '
            f'{f["bytes"]} "{f["referrer"]}" "{f["user_agent"]}" "{f["xff"]}"'
        )
    common = f'{f["remote_addr"]} - - [{f["time_local"]}] "{request}" {f["status"]} {f["bytes"]}'
    if fmt in ("combined", "vhost_combined", "nginx-main"):
        common += f' "{f["referrer"]}" "{f["user_agent"]}"'
    if fmt == "nginx-main":
        common += f' "{f["xff"]}"'
    if fmt.startswith("vhost_"):
        common = f"{f['host']} {common}"
    return common


def _garbage(c: Chooser, text: str) -> str | bytes:
    kind = c.integer(0, 5)
    if kind == 0:
        return f"this is not a log line from {text}"
    if kind == 1:
        return f'{text} - - [99/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 1 "-" "-"'
    if kind == 2:
        return f"\x01\x02{text}\x7f"
    if kind == 3:
        return f"{text} \udcff\udcfe tail"  # not UTF-8 once encoded (surrogateescape)
    if kind == 4:
        # over-long, or just under ("y": no address character, the oracle stays fast)
        return "y" * c.integer(65536 - 60, 65536 + 10) + text
    return f'{text} - - [24/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" abc def'


def make_line(c: Chooser, preset: str, fmt: str) -> tuple[str, Plant, str]:
    """One line of `fmt` with one planted address in a field; (line, plant, note)."""
    field_name = c.choice(available_fields(fmt))
    host_mode = field_name in HOST_FIELDS
    if field_name in ("remote_addr", "xff"):
        p = client_plant(c, preset)
    else:
        p = plant(c, preset, host=host_mode)
    text, levels = (
        percent_encode(c, p.text) if field_name not in ("remote_addr", "xff") else (p.text, 0)
    )
    json = fmt == "nginx-json"
    # text formats: no `"` anywhere, no blank in unquoted fields or the request target
    no_blank = "" if json else " "
    f = {
        "remote_addr": "192.0.2.1",
        "time_local": "24/Nov/2026:10:00:00 +0100",
        "msec": "1795510800.123",
        "method": "GET",
        "target": "/v/abc/seg_1.m4s",
        "protocol": "HTTP/1.1",
        "status": "200",
        "bytes": str(c.integer(0, 10_000_000)),
        "referrer": "-",
        "user_agent": UA,
        "host": "cdn.example-video.eu",
        "xff": "-",
    }
    if field_name == "path":
        f["target"] = "/" + surround(c, text, no_blank + "?#")
    elif field_name == "query":
        name = c.choice(("q", "ip", "t1", "token"))
        f["target"] = f"/v/abc/master.m3u8?{name}=" + surround(c, text, no_blank + "#&")
    elif field_name == "request_host":
        f["target"] = "http://" + _maybe_surround(c, text, " /?#@") + "/v/x.ts"
    elif field_name == "referrer_path":
        f["referrer"] = f"https://www.{FIRST_PARTY}/" + surround(c, text, "?#")
    elif field_name == "referrer_host":
        userinfo = c.choice(("", "user@", "u:p@"))
        port = c.choice(("", ":8080"))
        f["referrer"] = f"https://{userinfo}" + _maybe_surround(c, text, " /?#@:") + f"{port}/page"
    elif field_name == "referrer_query":
        f["referrer"] = "https://search.example.org/results?q=" + surround(c, text)
    elif field_name == "user_agent":
        f["user_agent"] = c.choice((UA + " ", "curl/8.0 ", "")) + surround(c, text)
    elif field_name == "host":
        f["host"] = _maybe_surround(c, text, no_blank)
    elif field_name == "xff":
        f["remote_addr"] = TRUSTED_PROXY
        f["xff"] = c.choice(("", "198.51.100.1, ")) + text + c.choice(("", ", 10.1.1.1"))
    elif field_name == "remote_addr":
        f["remote_addr"] = text
    line = _garbage(c, surround(c, text)) if field_name == "garbage" else _render(fmt, f)
    note = f"{field_name}:{p.notation}" + (f":pct{levels}" if levels else "")
    return line, p, note


def make_case(c: Chooser, max_lines: int = 3) -> Case:
    preset = c.choice(tuple(PRESETS))
    fmt = c.choice(FORMATS)
    case = Case(preset, fmt, [])
    for _ in range(c.integer(1, max_lines)):
        line, p, note = make_line(c, preset, fmt)
        case.lines.append(line)
        case.identities.extend(p.identities)
        case.notes.append(note)
    if c.integer(0, 3) == 0:
        case.lines.append(c.choice(("", "   ", "-")))
    return case


@st.composite
def cases(draw: st.DrawFn, max_lines: int = 3) -> Case:
    return make_case(HypothesisChooser(draw(st.data())), max_lines)


def v4_identity(value: int) -> Identity:
    """The oracle's identity of an IPv4 address struck to /24 (the default)."""
    return Identity(4, value, 32, 24)


def v6_identity(value: int) -> Identity:
    """The oracle's identity of an IPv6 address struck to /48 (the default)."""
    return Identity(6, value, 128, 48)


@st.composite
def client_address(draw: st.DrawFn, decorated: bool = False) -> tuple[str, Identity]:
    """A client address as a connection's peer (decorated=False) or as a forwarding hop may
    write it (a port, brackets, IPv6 spellings), IPv4-mapped ones included, and its identity."""
    from ipaddress import IPv4Address, IPv6Address

    c = HypothesisChooser(draw(st.data()))
    kind = draw(st.sampled_from(("v4", "v6", "mapped")))
    if kind == "v4":
        value = planted_ipv4(c, 24)
        text = str(IPv4Address(value))
        if decorated and draw(st.booleans()):
            text += f":{draw(st.integers(1, 65535))}"
        return text, v4_identity(value)
    if kind == "mapped":
        value = planted_ipv4(c, 24)
        text = f"::ffff:{IPv4Address(value)}"
        if decorated and draw(st.booleans()):
            text = f"[{text}]:{draw(st.integers(1, 65535))}"
        return text, v4_identity(value)
    value = planted_ipv6(c, 48)
    text = ipv6_decorated(c, value)[0] if decorated else str(IPv6Address(value))
    return text, v6_identity(value)


@st.composite
def forwarding_hops(
    draw: st.DrawFn, trusted: st.SearchStrategy[str], max_hops: int
) -> tuple[list[str], list[Identity]]:
    """A forwarding chain as clients and proxies write it, left to right: client hops
    (`client_address(decorated=True)`), one in four a hop of ours (`trusted`), and maybe one
    hop that is no address; with the identities of the client hops."""
    hops: list[str] = []
    identities: list[Identity] = []
    for _ in range(draw(st.integers(0, max_hops))):
        if draw(st.integers(0, 3)) == 0:
            hops.append(draw(trusted))
        else:
            hop, ident = draw(client_address(decorated=True))
            hops.append(hop)
            identities.append(ident)
    if draw(st.booleans()):
        hops.insert(draw(st.integers(0, len(hops))), draw(st.sampled_from(("unknown", "-", "x"))))
    return hops, identities
