"""Client IP rules: read an address however a log or header writes it, strike its tail.

- IPv4 keeps `ipv4_prefix_bits` (24), IPv6 keeps `ipv6_prefix_bits` (48).
- IPv4-mapped (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`) addresses are the IPv4 they
  carry; a 6to4 address (`2002:AABB:CCDD::/48`, which holds a whole IPv4) has that IPv4 masked.
- Ports, brackets, quotes (RFC 7239) and zone ids (`fe80::1%eth0`) are read and dropped.
- Anything that is not an address (`unix:`, `unknown`, a host name, `-`) is None: never passed on.
- Trusted proxies pick the client from X-Forwarded-For / Forwarded / X-Real-IP as nginx's
  `real_ip` module does with `real_ip_recursive on`.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)

from sidecar.cache import bounded
from sidecar.record import RawRequest
from sidecar.reject import BAD_IP, Rejected

Address = IPv4Address | IPv6Address

_V4_ALL = (1 << 32) - 1
_V6_ALL = (1 << 128) - 1
_NAT64 = 0x0064FF9B << 96  # 64:ff9b::/96 (RFC 6052 well-known prefix)
_6TO4 = 0x2002  # 2002::/16 (RFC 3056): bits 16..48 are an IPv4 address


def parse_ip(token: str) -> Address | None:
    """The address in `token`, or None when it holds none.

    Reads `1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]`, `[2001:db8::1]:443`, `fe80::1%eth0`,
    `"[2001:db8::1]:80"` (RFC 7239 quoting). IPv4-mapped and NAT64 addresses come back as the
    IPv4Address they carry.
    """
    t = token.strip()
    if len(t) >= 2 and t[0] == '"' and t[-1] == '"':
        t = t[1:-1]
    if not t:
        return None
    if t[0] == "[":
        end = t.find("]")
        if end < 0:
            return None
        rest = t[end + 1 :]
        if rest and not (rest[0] == ":" and _is_port(rest[1:])):
            return None
        t = t[1:end]
        if ":" not in t:
            return None
    elif t.count(":") == 1:  # IPv4 with a port
        t, _, port = t.partition(":")
        if not _is_port(port):
            return None
    pct = t.find("%")
    if pct >= 0:
        if ":" not in t:  # zone ids exist on IPv6 only
            return None
        t = t[:pct]
    try:
        addr = ip_address(t)
    except ValueError:
        return None
    if addr.version == 6:
        n = int(addr)
        if n >> 32 == 0xFFFF:  # ::ffff:0:0/96
            return IPv4Address(n & _V4_ALL)
        if n >> 32 == _NAT64 >> 32:
            return IPv4Address(n & _V4_ALL)
    return addr


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5


class Masker:
    """Strikes the tail of an address: `mask(addr)` gives the kept prefix as text."""

    __slots__ = ("_v4_mask", "_v6_mask", "ipv4_bits", "ipv6_bits", "v4_byte_masks")

    def __init__(self, ipv4_bits: int = 24, ipv6_bits: int = 48) -> None:
        self.ipv4_bits = ipv4_bits
        self.ipv6_bits = ipv6_bits
        self._v4_mask = _V4_ALL ^ ((1 << (32 - ipv4_bits)) - 1)
        self._v6_mask = _V6_ALL ^ ((1 << (128 - ipv6_bits)) - 1)
        #: the prefix as a mask per octet, first to last (24 bits: 255, 255, 255, 0)
        self.v4_byte_masks = tuple((self._v4_mask >> s) & 0xFF for s in (24, 16, 8, 0))

    def mask_int_v4(self, n: int) -> int:
        return n & self._v4_mask

    def mask(self, addr: Address) -> str:
        n = int(addr)
        if addr.version == 4:
            return str(IPv4Address(n & self._v4_mask))
        if n >> 112 == _6TO4:
            v4 = ((n >> 80) & _V4_ALL) & self._v4_mask
            n = (_6TO4 << 112) | (v4 << 80)  # nothing after the embedded IPv4 survives
        return str(IPv6Address(n & self._v6_mask))

    def mask_address(self, addr: Address) -> Address:
        """The struck address as an address object (for lookups from the truncated IP)."""
        return ip_address(self.mask(addr))


class TrustedProxies:
    """A CIDR table (plus `unix:`) deciding which hop of a forwarded chain is the client."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.unix = "unix:" in entries
        nets = [ip_network(e, strict=False) for e in entries if e != "unix:"]
        self._v4: tuple[IPv4Network, ...] = tuple(n for n in nets if n.version == 4)
        self._v6: tuple[IPv6Network, ...] = tuple(n for n in nets if n.version == 6)
        self.empty = not (self.unix or nets)

    def __contains__(self, addr: Address) -> bool:
        nets = self._v4 if addr.version == 4 else self._v6
        return any(addr in n for n in nets)

    def trusts_token(self, token: str) -> bool:
        if token.startswith("unix:"):
            return self.unix
        addr = parse_ip(token)
        return addr is not None and addr in self


def forwarded_for(header: str) -> list[str]:
    """The `for=` values of an RFC 7239 Forwarded header, first hop first.

    nginx logs a quote inside a value as `\\x22`; it is read as the quote it stands for."""
    hops = []
    for element in header.replace("\\x22", '"').split(","):
        for pair in element.split(";"):
            name, _, value = pair.strip().partition("=")
            if name.lower() == "for":
                hops.append(value.strip())
    return hops


def chain_of(raw: RawRequest, header: str) -> list[str]:
    if header == "x-forwarded-for":
        value = raw.x_forwarded_for
        return [h.strip() for h in value.split(",")] if value and value != "-" else []
    if header == "forwarded":
        return forwarded_for(raw.forwarded) if raw.forwarded and raw.forwarded != "-" else []
    value = raw.x_real_ip
    return [value.strip()] if value and value != "-" else []


class ClientIp:
    """Rule: the client of a request (trusted proxies), as (full address, struck text).

    The full address is for the country lookup only; the struck text is `client_ip`."""

    def __init__(
        self,
        masker: Masker,
        trusted: TrustedProxies,
        real_ip_header: str = "x-forwarded-for",
        cache_entries: int = 65536,
    ) -> None:
        self.masker = masker
        self.trusted = trusted
        self.header = real_ip_header
        self.resolve = bounded(self._resolve_uncached, cache_entries, 128)

    def _resolve_uncached(self, token: str) -> tuple[Address, str] | None:
        addr = parse_ip(token)
        if addr is None:
            return None
        return addr, self.masker.mask(addr)

    def client_token(self, raw: RawRequest) -> str:
        remote = raw.remote_addr
        if self.trusted.empty or not self.trusted.trusts_token(remote):
            return remote
        client = remote
        for hop in reversed(chain_of(raw, self.header)):
            addr = parse_ip(hop)
            if addr is None:
                break  # garbage in the chain: keep the last hop we could trust
            client = hop
            if addr not in self.trusted:
                break
        return client

    def __call__(self, raw: RawRequest) -> tuple[Address, str]:
        """(full address, struck text); `Rejected(bad_ip)` when the client is not an address."""
        resolved = self.resolve(raw.remote_addr if self.trusted.empty else self.client_token(raw))
        if resolved is None:
            raise Rejected(BAD_IP)
        return resolved
