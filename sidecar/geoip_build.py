"""`sidecar geoip build`: the embedded country database, from Debian's `tor-geoipdb`.

Debian's tor-geoipdb ships IPFire Location country ranges (CC BY-SA 4.0) as
`/usr/share/tor/geoip` (`INTLOW,INTHIGH,CC`) and `/usr/share/tor/geoip6` (`LOW,HIGH,CC`).
This turns them into a MaxMind DB with the standard `country.iso_code` layout, written by the
`mmdb-writer` library, so the same reader code serves it, GeoLite2, DB-IP and IPinfo files.
"""

from __future__ import annotations

import collections
import os
import tempfile
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet, iprange_to_cidrs

from sidecar.errors import UsageError

DATABASE_TYPE = "sidecar-Country"
ATTRIBUTION = (
    "Country data: IPFire Location database, (c) IPFire Project, https://location.ipfire.org/,\n"
    "licensed CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/); converted by\n"
    "Tor's geoip-db-tool and packaged by Debian as tor-geoipdb. The .mmdb built from it is an\n"
    "adapted database and is shared under the same licence, CC BY-SA 4.0."
)

Range = tuple[int, int, str]  # first, last (inclusive, as integers), ISO code ("??": none)


def read_ranges(path: Path, version: int) -> Iterator[Range]:
    """The ranges of one tor geoip file, comments skipped."""
    with path.open(encoding="ascii") as fh:
        for line in fh:
            if not line.strip() or line.startswith("#"):
                continue
            low, high, cc = line.strip().split(",")
            if version == 4:
                yield int(low), int(high), cc
            else:
                yield int(IPv6Address(low)), int(IPv6Address(high)), cc


def _merged(ranges: Iterator[Range]) -> Iterator[Range]:
    """Adjacent ranges of the same country joined: fewer networks to insert, same answers."""
    current: Range | None = None
    for r in ranges:
        if current and r[2] == current[2] and r[0] == current[1] + 1:
            current = (current[0], r[1], r[2])
            continue
        if current:
            yield current
        current = r
    if current:
        yield current


def build(source_dir: str, output: str) -> str:
    """Build the database; returns a one-line summary. UsageError when the source is missing."""
    src = Path(source_dir)
    files = {4: src / "geoip", 6: src / "geoip6"}
    for path in files.values():
        if not path.is_file():
            raise UsageError(
                f"geoip build: {path} not found; install Debian's tor-geoipdb "
                "(apt-get install tor-geoipdb) or pass --source-dir"
            )
    started = time.monotonic()
    by_country: dict[str, list] = collections.defaultdict(list)
    counts = {4: 0, 6: 0}
    for version, path in files.items():
        make = IPv4Address if version == 4 else IPv6Address
        for low, high, cc in _merged(read_ranges(path, version)):
            counts[version] += 1
            if cc != "??":
                by_country[cc].extend(iprange_to_cidrs(str(make(low)), str(make(high))))
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type=DATABASE_TYPE,
        languages=["en"],
        description={"en": "Country ranges from IPFire Location (CC BY-SA 4.0) via tor-geoipdb"},
    )
    for cc in sorted(by_country):
        writer.insert_network(IPSet(by_country[cc]), {"country": {"iso_code": cc}})
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".country-", suffix=".mmdb")
    os.close(fd)
    try:
        writer.to_db_file(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the database is public data
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return (
        f"built {out} ({out.stat().st_size:,} bytes) from {counts[4]:,} IPv4 and {counts[6]:,} "
        f"IPv6 ranges, {len(by_country)} countries, in {time.monotonic() - started:.0f} s"
    )
