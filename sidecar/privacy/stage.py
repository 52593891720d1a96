"""The privacy stage: RawRequest -> CleanRecord, every field of the clean record made here.

Each rule lives in its own module, is configured from its own config section and tested on its
own (ip, geo, host, referrer, query, beacon, literals, useragent). This module composes them and
is the one place that says where each clean field comes from; the record itself is made by the
record factory (privacy.clean), which puts every field through the check its schema kind names
(free text through the one scrubber, hosts through the host rule, closed vocabularies), so
nothing handed to it unchecked can reach a record. Order matters once: the client is resolved
(trusted proxies) before its country is looked up from the full address, which is then dropped
with the raw record. A request to a beacon path (after the path's own cleaning) keeps its
allowlisted payload, query and body, by the beacon rule; any other keeps its query by the query
rule, and its body never.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sidecar.config import Config
from sidecar.privacy.beacon import MAX_PAYLOAD_BYTES, Beacon
from sidecar.privacy.clean import RecordFactory
from sidecar.privacy.geo import CountryLookup
from sidecar.privacy.host import HostRule
from sidecar.privacy.ip import ClientIp, Masker, TrustedProxies
from sidecar.privacy.literals import LiteralMasker
from sidecar.privacy.query import Query
from sidecar.privacy.referrer import Referrer
from sidecar.privacy.useragent import UserAgent
from sidecar.record import CleanRecord, RawRequest

_MISS = object()
#: referrer kinds, as metrics name them (indexes into the stage's per-chunk tally)
REFERRER_KINDS = ("first_party", "third_party", "none", "dropped")
_FIRST, _THIRD, _NO_REFERRER, _DROPPED, _IPV6 = range(5)


@dataclass(slots=True)
class StageCounts:
    """What the stage saw in one chunk: records by country (None: no country) and by status
    class (the hundreds digit), referrers by kind, and clients that were IPv6 addresses."""

    countries: dict[str | None, int] = field(default_factory=dict)
    status_classes: dict[int, int] = field(default_factory=dict)
    referrers: dict[str, int] = field(default_factory=dict)
    ipv6: int = 0


_PATH_PARAMS = re.compile(r";[^/]*")  # `;jsessionid=...` after a path segment
_NONE3 = (None, None, None)


def open_country_lookup(config: Config, masker: Masker | None = None) -> CountryLookup | None:
    """The configured database, or None when `geoip.database` is empty (country always null)."""
    g = config.geoip
    if not g.database:
        return None
    return CountryLookup(
        g.database,
        masker or Masker(config.ip.ipv4_prefix_bits, config.ip.ipv6_prefix_bits),
        fallback_registered_country=g.fallback_registered_country,
        from_truncated=g.lookup == "truncated",
        cache_entries=g.cache_entries,
    )


class PrivacyStage:
    """`scrub(raw)` -> CleanRecord; raises `Rejected` (reason `bad_ip`) for a line it must skip."""

    def __init__(self, config: Config, lookup: CountryLookup | None = None) -> None:
        self.masker = Masker(config.ip.ipv4_prefix_bits, config.ip.ipv6_prefix_bits)
        self.literal_masker = LiteralMasker(self.masker, cache_entries=8192)
        self.hosts = HostRule(self.masker, self.literal_masker)
        self.factory = RecordFactory(self.literal_masker, self.hosts)
        self.client = ClientIp(
            self.masker, TrustedProxies(config.ip.trusted_proxies), config.ip.real_ip_header
        )
        self.lookup = lookup
        self.referrer = Referrer(
            config.referrer.first_party_hosts,
            config.referrer.third_party,
            cache_entries=8192,
            host=self.hosts.scrub,  # the path's literals: struck by the factory, once
        )
        self.query = Query(config.query.allow)  # its values: struck by the factory
        self.beacon = Beacon(
            config.beacon.paths,
            config.beacon.allow,
            strike=self.factory.text,  # each kept pair settled under the factory's scrubber
            max_payload_bytes=min(MAX_PAYLOAD_BYTES, config.input.max_line_bytes),
        )
        self.keep_path_params = config.path.keep_params
        self.useragent = UserAgent(config.useragent.mode, config.useragent.cache_entries)
        # hot-path bindings: scrub runs once per line
        self._client = self.client.__call__
        self._countries = lookup.cache if lookup is not None else {}
        self._country = lookup.country if lookup is not None else (lambda addr, struck: None)
        self._reduce = self.referrer.reduce
        self._filter = self.query.filter if self.query.enabled else None
        self._beacon_paths = self.beacon.paths
        self._payload = self.beacon.payload
        self._make = self.factory.make
        self._coarse = self.useragent.coarse if self.useragent.mode != "drop" else None
        self._keep_ua = self.useragent.mode == "keep"
        self._countries_seen: dict[str | None, int] = {}
        self._status_seen: dict[int, int] = {}
        self._referrers_seen = [0] * 5
        if self._coarse is not None:  # load ua-parser's rules now: once, before workers fork
            self._coarse("Mozilla/5.0")

    def scrub(self, raw: RawRequest) -> CleanRecord:
        # client address: struck; its country from the full address
        addr, client_ip = self._client(raw)  # Rejected(bad_ip) for a client that is no address
        country = self._countries.get(client_ip, _MISS)
        if country is _MISS:
            country = self._country(addr, client_ip)
        # free text and hosts are struck by the record factory; here: what each field keeps
        path = raw.path
        if path and not self.keep_path_params and ";" in path:
            path = _PATH_PARAMS.sub("", path) or "/"
        referrer = raw.referrer
        if referrer:
            referrer_host, referrer_path = self._reduce(referrer)
            kind = _FIRST if referrer_path is not None else _THIRD if referrer_host else _DROPPED
        else:
            referrer_host = referrer_path = None
            kind = _NO_REFERRER
        query = raw.query
        if path in self._beacon_paths:  # a beacon: its payload, query and body, allowlisted
            query = self._payload(query, raw.body)
        elif query is not None:
            query = self._filter(query) if self._filter is not None else None
        # user agent: families only
        ua = raw.user_agent
        coarse = self._coarse
        browser, os_family, device = coarse(ua) if ua and coarse is not None else _NONE3
        record = self._make(
            ts=raw.ts,
            client_ip=client_ip,
            country=country,
            method=raw.method,
            host=raw.host,
            path=path,
            query=query,
            protocol=raw.protocol,
            status=raw.status,
            bytes=raw.bytes,
            request_time=raw.request_time,
            referrer_host=referrer_host,
            referrer_path=referrer_path,
            ua_browser=browser,
            ua_os=os_family,
            ua_device=device,
            user_agent=ua if self._keep_ua else None,
        )
        # what the metrics count, per line in plain dicts and lists (taken once per chunk)
        seen = self._countries_seen
        seen[country] = seen.get(country, 0) + 1
        seen = self._status_seen
        status = raw.status // 100
        seen[status] = seen.get(status, 0) + 1
        self._referrers_seen[kind] += 1
        if ":" in client_ip:
            self._referrers_seen[_IPV6] += 1
        return record

    def take_counts(self) -> StageCounts:
        """What scrub saw since the last call (records by country and status class, IPv6
        clients, referrer kinds), and start again: the pipeline sends it with each chunk."""
        r = self._referrers_seen
        counts = StageCounts(self._countries_seen, self._status_seen,
                             dict(zip(REFERRER_KINDS, r[:4], strict=True)), r[_IPV6])  # fmt: skip
        self._countries_seen, self._status_seen, self._referrers_seen = {}, {}, [0] * 5
        return counts
