"""Country from the full client IP, in any MaxMind-format database; then the IP is forgotten.

Only an ISO 3166-1 alpha-2 code of a country leaves this module (`EU`, `AP` and the like are
not countries: null): never a city, a subdivision, coordinates,
a postal code or an ASN, whatever the database holds (City databases are read the same way).
Layouts read: MaxMind/DB-IP (`country.iso_code`, optionally `registered_country.iso_code`)
and IPinfo lite (`country_code`).

Answers are cached per struck prefix when the database's network for the address is no
longer than that prefix (then every address in it has the same answer); addresses in finer
networks are looked up each time, so the cache never changes an answer.
"""

from __future__ import annotations

from ipaddress import IPv4Address

import maxminddb

from sidecar.errors import ConfigError
from sidecar.privacy.ip import Address, Masker

# Codes some databases use that name no country: the EU, "Asia/Pacific", unknown. Those with a
# digit (anonymous proxies A1, satellite A2, anycast A3, O1, Tor exits T1) are no ISO code at
# all and fail `_iso`'s letters-only check before this set is asked.
NOT_COUNTRIES = frozenset({"EU", "AP", "ZZ", "XX"})


def _iso(value: object) -> str | None:
    if isinstance(value, dict):
        code = value.get("iso_code")
        if isinstance(code, str) and len(code) == 2 and code.isascii() and code.isalpha():
            code = code.upper()
            return None if code in NOT_COUNTRIES else code
    return None


def country_of(record: object, fallback_registered_country: bool = False) -> str | None:
    """The ISO code in one database record, or None."""
    if not isinstance(record, dict):
        return None
    code = _iso(record.get("country"))
    if code is None and isinstance(record.get("country_code"), str):  # IPinfo lite
        code = _iso({"iso_code": record["country_code"]})
    if code is None and fallback_registered_country:
        code = _iso(record.get("registered_country"))
    return code


class CountryLookup:
    """Looks up the country of an address; `country(addr, struck)` -> ISO code or None."""

    def __init__(
        self,
        path: str,
        masker: Masker,
        fallback_registered_country: bool = False,
        from_truncated: bool = False,
        cache_entries: int = 65536,
    ) -> None:
        try:
            self._reader = maxminddb.open_database(path)
        except FileNotFoundError:
            raise ConfigError(
                f"geoip.database: {path!r} not found; build the embedded one with "
                "`sidecar geoip build` or point geoip.database at a country .mmdb"
            ) from None
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise ConfigError(
                f"geoip.database: {path!r} is not a readable MaxMind DB ({type(exc).__name__})"
            ) from None
        self.path = path
        self.metadata = self._reader.metadata()
        self.masker = masker
        self.fallback = fallback_registered_country
        self.from_truncated = from_truncated
        self.cache: dict[str, str | None] = {}  # struck prefix -> answer (see module doc)
        self._cache_entries = cache_entries

    def close(self) -> None:
        self._reader.close()

    def country(self, addr: Address, struck: str) -> str | None:
        cache = self.cache
        if struck in cache:
            return cache[struck]
        if addr.version == 6 and int(addr) >> 112 == 0x2002:  # 6to4: the IPv4 it carries
            addr = IPv4Address((int(addr) >> 80) & 0xFFFFFFFF)
        bits = self.masker.ipv4_bits if addr.version == 4 else self.masker.ipv6_bits
        query = self.masker.mask_address(addr) if self.from_truncated else addr
        record, prefix_len = self._reader.get_with_prefix_len(query)
        code = country_of(record, self.fallback)
        if self.from_truncated or prefix_len <= bits:
            if len(cache) >= self._cache_entries:
                cache.clear()
            cache[struck] = code
        return code
