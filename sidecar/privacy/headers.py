"""Header rule: what a request's headers and target may carry toward the origin (`sidecar proxy`).

The origin of a scrubbing proxy must never see a viewer's full address, so:
- The client is decided as in the logs (privacy.ip.ClientIp): the peer, or, when the peer is a
  trusted proxy, the right-most untrusted hop of the `ip.real_ip_header` chain. An IPv4-mapped
  client (`::ffff:a.b.c.d`) is the IPv4 it carries.
- `X-Forwarded-For`, `X-Real-IP` and `Forwarded` are replaced by headers carrying only the
  truncated client (`Forwarded: for="[2001:db8::]"` for IPv6, quoted and bracketed as RFC 7239
  asks). Earlier hops are not kept: left of the client they are the client's own claims (any
  text it likes), right of it our own trusted proxies; the origin needs one answer, and the
  right-most `X-Forwarded-For` hop it sees is the truncated client. Each replacement takes the
  place of the first header of its name, or comes last when the request had none.
- `True-Client-IP`, `CF-Connecting-IP`, `Fastly-Client-IP`, `X-Client-IP` and
  `X-Cluster-Client-IP` are removed, not truncated: they are set by a CDN that sidecar is not,
  so from our peer they are either a copy of the client (already sent, truncated, in the three
  headers above) or a spoof; passing any value on would let an origin trust a claim nobody
  vouches for.
- `Referer` is reduced by the referrer rule of the logs (privacy.referrer: a first-party page
  keeps its path, another site only its host, `third_party = "drop"` nothing) and written back
  as a URL; a referrer reduced to nothing is removed.
- The headers named in `strip` (default `cookie`; names compared case-insensitively) are removed.
- `Host` passes unchanged whatever its value (the origin routes on it).
- Every other header passes in its place, duplicates kept, with every IP literal in its value
  struck (privacy.literals), whoever's address it is.
`scrub_target` strikes IP literals in a request target's path segments and query, keeping every
separator where it was.

Headers are (name, value) pairs of str, as mitmproxy's `Headers.fields` decode them. The rule
never raises on any header text: a client that is no address (`unix:` peer, garbage) gives
None and no forwarding header at all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sidecar.config import OWNED_HEADERS
from sidecar.privacy.ip import ClientIp
from sidecar.privacy.literals import LiteralMasker
from sidecar.privacy.referrer import Referrer
from sidecar.record import RawRequest
from sidecar.reject import Rejected

if TYPE_CHECKING:
    from sidecar.privacy.stage import PrivacyStage

#: CDN client headers: removed toward the origin (see the module doc)
CLIENT_IP_HEADERS = (
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
)
#: headers stripped unless configured otherwise
DEFAULT_STRIP = ("cookie",)
#: headers the rule itself writes or keeps: `strip` may not name them
OWNED = OWNED_HEADERS

_XFF, _XRI, _FWD = 0, 1, 2
_FORWARDING = {"x-forwarded-for": _XFF, "x-real-ip": _XRI, "forwarded": _FWD}
_CANONICAL = ("X-Forwarded-For", "X-Real-IP", "Forwarded")
_SEPARATORS = re.compile(r"([/?&=;#])")
_LEADING = "".join(map(chr, range(0x21)))


class HeaderRule:
    """Rule: `scrub(peer, headers)` -> (truncated client or None, headers toward the origin)."""

    def __init__(
        self,
        client: ClientIp,
        literals: LiteralMasker,
        referrer: Referrer,
        strip: Sequence[str] = DEFAULT_STRIP,
    ) -> None:
        names = {s.strip().lower() for s in strip}
        owned = sorted(names.intersection(OWNED))
        if owned:
            raise ValueError(f"header {owned[0]!r} cannot be stripped: the header rule sets it")
        self.client = client
        self.literals = literals
        self.referrer = referrer
        self.strip = frozenset(names)
        self._drop = self.strip | frozenset(CLIENT_IP_HEADERS)
        self._mask = literals.mask
        self._reduce = referrer.reduce

    @classmethod
    def from_stage(cls, stage: PrivacyStage, strip: Sequence[str] = DEFAULT_STRIP) -> HeaderRule:
        """The rule sharing a privacy stage's client, literal and referrer rules (one config,
        one answer for logs and origin alike)."""
        return cls(stage.client, stage.literal_masker, stage.referrer, strip)

    def scrub(
        self, peer: str, headers: Sequence[tuple[str, str]]
    ) -> tuple[str | None, list[tuple[str, str]]]:
        """(the truncated client, or None when it is no address; the headers to send on)."""
        out: list[tuple[str, str] | None] = []
        slots: list[int | None] = [None, None, None]  # where each forwarding header goes
        names: list[str] = ["", "", ""]
        chains: list[list[str]] = [[], [], []]
        drop = self._drop
        mask = self._mask
        for name, value in headers:
            lower = name.lower()
            which = _FORWARDING.get(lower)
            if which is not None:
                chains[which].append(value)
                if slots[which] is None:
                    slots[which] = len(out)
                    names[which] = name
                    out.append(None)
            elif lower in drop:
                continue
            elif lower == "host":
                out.append((name, value))
            elif lower == "referer":
                reduced = self.referer(value)
                if reduced is not None:
                    out.append((name, reduced))
            else:
                out.append((name, mask(value)))
        client = self._client(peer, chains)
        if client is None:
            return None, [h for h in out if h is not None]
        forwarded = f'for="[{client}]"' if ":" in client else f"for={client}"
        values = (client, client, forwarded)
        for which in (_XFF, _XRI, _FWD):
            slot = slots[which]
            if slot is None:
                out.append((_CANONICAL[which], values[which]))
            else:
                out[slot] = (names[which], values[which])
        return client, out  # type: ignore[return-value]  # every None slot is filled

    def _client(self, peer: str, chains: list[list[str]]) -> str | None:
        raw = RawRequest(
            peer,
            "",
            x_forwarded_for=",".join(chains[_XFF]) or None,
            forwarded=",".join(chains[_FWD]) or None,
            x_real_ip=chains[_XRI][-1] if chains[_XRI] else None,
        )
        try:
            return self.client(raw)[1]
        except Rejected:
            return None

    def referer(self, value: str) -> str | None:
        """A Referer value as the referrer rule reduces it, written back as a URL; None when
        nothing of it survives."""
        host, path = self._reduce(value)
        if not host:
            return None
        if "://" in host:  # a non-HTTP referrer: scheme and host only
            return host + "/"
        scheme = "http" if value.lstrip(_LEADING)[:5].lower() == "http:" else "https"
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}{self._mask(path) if path else '/'}"

    def scrub_target(self, target: str) -> str:
        """A request target (`/path;params?query`) with every IP literal in a path segment,
        parameter, query name or value struck; every separator stays where it was."""
        pieces = _SEPARATORS.split(target)
        mask = self._mask
        for i in range(0, len(pieces), 2):
            if pieces[i]:
                pieces[i] = mask(pieces[i])
        return "".join(pieces)
