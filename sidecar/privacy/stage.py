"""The privacy stage: a chain of small processors, built from config, RawRequest -> CleanRecord.

Each processor is a callable `(raw, out)` that fills its fields of `out` from the raw record
(structlog's processor chain is the model). The order is fixed and meaningful: the client IP is
resolved before the country is looked up from it; IP literals are struck after every other
rule has shaped the free-text fields. Nothing but the `CleanRecord` leaves `scrub`.
"""

from __future__ import annotations

from collections.abc import Callable

from sidecar.config import Config
from sidecar.privacy.geo import Country, CountryLookup
from sidecar.privacy.ip import ClientIp, Masker, TrustedProxies
from sidecar.privacy.literals import LiteralMasker, Literals
from sidecar.privacy.query import Query
from sidecar.privacy.referrer import Referrer
from sidecar.privacy.useragent import UserAgent
from sidecar.record import CleanRecord, RawRequest

Processor = Callable[[RawRequest, dict], None]


def open_country_lookup(config: Config, masker: Masker) -> CountryLookup | None:
    """The configured database, or None when `geoip.database` is empty (country always null)."""
    g = config.geoip
    if not g.database:
        return None
    return CountryLookup(
        g.database,
        masker,
        fallback_registered_country=g.fallback_registered_country,
        from_truncated=g.lookup == "truncated",
        cache_entries=g.cache_entries,
    )


class PrivacyStage:
    """`scrub(raw)` -> CleanRecord; raises `Rejected` (reason `bad_ip`) for a line it must skip."""

    def __init__(self, config: Config, lookup: CountryLookup | None = None) -> None:
        self.masker = Masker(config.ip.ipv4_prefix_bits, config.ip.ipv6_prefix_bits)
        self.literal_masker = LiteralMasker(self.masker)
        self.processors: tuple[Processor, ...] = (
            ClientIp(
                self.masker, TrustedProxies(config.ip.trusted_proxies), config.ip.real_ip_header
            ),
            Country(lookup),
            Referrer(config.referrer.first_party_hosts, config.referrer.third_party),
            Query(config.query.allow),
            Literals(self.literal_masker),
            UserAgent(config.useragent.mode, config.useragent.cache_entries),
        )

    def scrub(self, raw: RawRequest) -> CleanRecord:
        out = {
            "ts": raw.ts,
            "method": raw.method,
            "host": raw.host,
            "path": raw.path,
            "protocol": raw.protocol,
            "status": raw.status,
            "bytes": raw.bytes,
            "request_time": raw.request_time,
        }
        for processor in self.processors:
            processor(raw, out)
        return CleanRecord(**out)
