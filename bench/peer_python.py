"""The same job as `sidecar pipe`, hand-tuned for combined-format nginx logs, in plain Python.

    python bench/peer_python.py --geoip data/country.mmdb < access.log > clean.jsonl

Reads stdin, writes one JSON record per line with sidecar's keys, in sidecar's order: timestamp
to RFC 3339 UTC with milliseconds, client IP struck to its /24 (IPv4, IPv4-mapped) or /48
(IPv6), country looked up with the full address (cached per struck prefix when the database
network is no longer than the prefix, so the cache never changes an answer; codes that name
no country, like EU, are null), query dropped, referrer reduced to its host. No user-agent
parsing: the ua_* fields are null. Lines the regex does not read are skipped. One core: a
baseline of what plain Python does.

Hand-tuning: one regex match per line (the user agent is not scanned), caches per client
address, per timestamp text and per referrer holding ready JSON fragments (made by orjson),
and each record written from a template. A path goes through orjson only when it holds a
backslash: nginx writes `"` and control bytes as `\\xHH`, so nothing else needs escaping.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime, timedelta
from ipaddress import IPv6Address

import maxminddb
import orjson

# re.match at the start of a line; what follows the referrer (the user agent) is not read.
LINE = re.compile(
    r'(\S+) \S+ \S+ \[(.{26})\] "([A-Z]+) ([^ ?#"]*)\S* (HTTP/[0-9.]+)" ([1-5][0-9]{2}) '
    r'(0|[1-9][0-9]*|-) "([^"]*)" "'
)
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTHS = {m: i for i, m in enumerate(MONTH_NAMES, 1)}
V6_MASK = ~((1 << 80) - 1)  # keep 48 bits
# codes that name no country (as sidecar: the EU, Asia/Pacific, proxies, satellite, unknown)
NOT_COUNTRIES = frozenset({"EU", "AP", "A1", "A2", "A3", "O1", "T1", "ZZ", "XX"})
CACHE_ENTRIES = 65536
CHUNK_BYTES = 1 << 20


def utc_ms(time_local: str) -> str:
    """`24/Nov/2026:10:00:00 +0100` -> `2026-11-24T09:00:00.000Z`."""
    s = time_local
    dt = datetime(
        int(s[7:11]), MONTHS[s[3:6]], int(s[0:2]), int(s[12:14]), int(s[15:17]), int(s[18:20])
    )
    offset = timedelta(hours=int(s[22:24]), minutes=int(s[24:26]))
    dt = dt - offset if s[21] == "+" else dt + offset
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T"
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}.000Z"
    )


def referrer_host(referrer: str) -> str | None:
    """`https://user@WWW.Example.com:8443/a?b` -> `www.example.com`; None for `-` or no host.
    Other schemes keep theirs, as sidecar does: `android-app://com.example.app`."""
    scheme, sep, rest = referrer.partition("://")
    if not sep:
        return None
    host = rest
    for stop in "/?#":
        host = host.partition(stop)[0]
    host = host.rpartition("@")[2].partition(":")[0].rstrip(".").lower()
    if not host:
        return None
    scheme = scheme.lower()
    return host if scheme in ("http", "https") else f"{scheme}://{host}"


def json_text(value: str | None) -> str:
    return orjson.dumps(value).decode()


class Clients:
    """Full address text -> struck prefix and country; countries are cached per prefix."""

    def __init__(self, geoip: str | None) -> None:
        self.reader = maxminddb.open_database(geoip) if geoip else None
        self.by_prefix: dict[str, str | None] = {}

    def fragment(self, ip: str) -> str:
        """`"client_ip":"203.0.113.0","country":"DE",` for one address."""
        if ip.startswith("::ffff:") and "." in ip:
            ip = ip[7:]
        if ":" in ip:
            prefix, bits = str(IPv6Address(int(IPv6Address(ip)) & V6_MASK)), 48
        else:
            prefix, bits = ip[: ip.rindex(".")] + ".0", 24
        if prefix in self.by_prefix:
            country = self.by_prefix[prefix]
        else:
            country = None
            if self.reader is not None:
                record, prefix_len = self.reader.get_with_prefix_len(ip)
                if record:
                    country = record.get("country", {}).get("iso_code")
                    if country in NOT_COUNTRIES:
                        country = None
                if prefix_len <= bits:
                    if len(self.by_prefix) >= CACHE_ENTRIES:
                        self.by_prefix.clear()
                    self.by_prefix[prefix] = country
        return f'"client_ip":{json_text(prefix)},"country":{json_text(country)},'


class Scrubber:
    """Text of whole lines -> JSON lines."""

    def __init__(self, geoip: str | None) -> None:
        self.clients = Clients(geoip)
        self.by_address: dict[str, str] = {}
        self.times: dict[str, str] = {}
        self.referrers: dict[str, str] = {}

    def lines(self, text: str) -> str:
        match = LINE.match
        clients, times, referrers = self.by_address, self.times, self.referrers
        out = []
        for line in text.split("\n"):
            m = match(line)
            if m is None:
                continue  # not a combined line (or the empty tail after the last newline)
            ip, tl, method, path, protocol, status, size, ref = m.groups()
            client = clients.get(ip)
            if client is None:
                if len(clients) >= CACHE_ENTRIES:
                    clients.clear()
                client = clients[ip] = self.clients.fragment(ip)
            ts = times.get(tl)
            if ts is None:
                if len(times) >= 4096:
                    times.clear()
                ts = times[tl] = json_text(utc_ms(tl))
            ref_host = referrers.get(ref)
            if ref_host is None:
                if len(referrers) >= CACHE_ENTRIES:
                    referrers.clear()
                ref_host = referrers[ref] = json_text(referrer_host(ref))
            path = json_text(path or "/") if "\\" in path or not path else f'"{path}"'
            out.append(
                f'{{"ts":{ts},{client}"method":"{method}","host":null,"path":{path},'
                f'"query":null,"protocol":"{protocol}","status":{status},'
                f'"bytes":{"0" if size == "-" else size},"request_time":null,'
                f'"referrer_host":{ref_host},"referrer_path":null,"ua_browser":null,'
                '"ua_os":null,"ua_device":null,"user_agent":null}\n'
            )
        return "".join(out)


def run(geoip: str | None, stdin, stdout) -> None:
    scrub = Scrubber(geoip).lines
    pending = b""
    while data := stdin.read(CHUNK_BYTES):
        data = pending + data
        cut = data.rfind(b"\n") + 1
        pending = data[cut:]
        if cut:
            stdout.write(scrub(data[:cut].decode("utf-8", "replace")).encode())
    if pending:
        stdout.write(scrub(pending.decode("utf-8", "replace") + "\n").encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geoip", metavar="PATH", help="country database (.mmdb)")
    args = parser.parse_args(argv)
    run(args.geoip, sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
