"""geoip_build: the embedded country database answers exactly what its source ranges say."""

from __future__ import annotations

import itertools
import random
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import maxminddb
import pytest

from sidecar.geoip_build import ATTRIBUTION, build, read_ranges
from tests.conftest import run_sidecar

TOR = Path("/usr/share/tor")


def _iso(reader: maxminddb.Reader, addr) -> str | None:
    record = reader.get(addr)
    return record["country"]["iso_code"] if record else None


def test_build_from_tor_format(tmp_path: Path) -> None:
    src = tmp_path / "tor"
    src.mkdir()
    (src / "geoip").write_text(
        "# comment\n"
        f"{int(IPv4Address('192.0.2.0'))},{int(IPv4Address('192.0.2.127'))},NL\n"
        f"{int(IPv4Address('192.0.2.128'))},{int(IPv4Address('192.0.2.255'))},BE\n"
        f"{int(IPv4Address('198.51.100.0'))},{int(IPv4Address('198.51.100.10'))},??\n"
    )
    (src / "geoip6").write_text("# comment\n2001:db8::,2001:db8:0:ffff:ffff:ffff:ffff:ffff,DE\n")
    out = tmp_path / "data" / "country.mmdb"
    summary = build(str(src), str(out))
    assert "3 IPv4 and 1 IPv6 ranges, 3 countries" in summary
    reader = maxminddb.open_database(str(out))
    assert reader.metadata().database_type == "sidecar-Country"
    assert _iso(reader, "192.0.2.0") == "NL" and _iso(reader, "192.0.2.127") == "NL"
    assert _iso(reader, "192.0.2.128") == "BE" and _iso(reader, "192.0.2.255") == "BE"
    assert _iso(reader, "198.51.100.5") is None  # "??": no country
    assert _iso(reader, "2001:db8::1") == "DE" and _iso(reader, "2001:db8:1::1") is None
    assert out.stat().st_mode & 0o044  # readable by the service user


def test_build_without_source_is_a_usage_error(tmp_path: Path) -> None:
    out = run_sidecar("geoip", "build", "--source-dir", str(tmp_path), "--output",
                      str(tmp_path / "x.mmdb"))  # fmt: skip
    assert out.returncode == 2
    assert b"tor-geoipdb" in out.stderr


def test_attribution_names_source_and_licence() -> None:
    for needed in ("IPFire", "CC BY-SA 4.0", "creativecommons.org/licenses/by-sa/4.0", "Debian"):
        assert needed in ATTRIBUTION


def _sample(ranges: list, n: int, rng: random.Random) -> list:
    picked = rng.sample(ranges, min(n, len(ranges)))
    out = []
    for low, high, cc in picked:
        out += [(low, cc), (high, cc), (rng.randint(low, high), cc)]
    return out


@pytest.mark.parametrize("version, name", [(4, "geoip"), (6, "geoip6")])
def test_embedded_database_matches_its_source(embedded_db: Path, version: int, name: str) -> None:
    source = TOR / name
    if not source.is_file():
        pytest.fail(f"{source} missing: the test setup installs Debian's tor-geoipdb")
    ranges = list(read_ranges(source, version))
    rng = random.Random(20261125)
    reader = maxminddb.open_database(str(embedded_db))
    make = IPv4Address if version == 4 else IPv6Address
    mismatches = []
    for value, cc in _sample(ranges, 20000, rng):
        want = None if cc == "??" else cc
        got = _iso(reader, make(value))
        if got != want:
            mismatches.append((str(make(value)), want, got))
    assert not mismatches, mismatches[:10]
    # the gaps between ranges have no country
    gaps = [(a[1] + 1, b[0] - 1) for a, b in itertools.pairwise(ranges) if b[0] > a[1] + 1]
    for low, high in rng.sample(gaps, min(2000, len(gaps))):
        assert _iso(reader, make(low)) is None and _iso(reader, make(high)) is None
