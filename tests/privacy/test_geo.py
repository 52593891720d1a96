"""privacy.geo: the country, and only the country, from MaxMind-format databases."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from sidecar.errors import ConfigError
from sidecar.privacy.geo import CountryLookup, country_of
from sidecar.privacy.ip import Masker
from tests.conftest import GEOIP

COUNTRY_DBS = ["GeoIP2-Country-Test.mmdb", "GeoLite2-Country-Test.mmdb", "GeoIP2-City-Test.mmdb"]


def lookup(path: Path | str, **kw) -> CountryLookup:
    return CountryLookup(str(path), Masker(), **kw)


@pytest.mark.parametrize("db", COUNTRY_DBS)
@pytest.mark.parametrize(
    "address, country",
    [
        ("81.2.69.160", "GB"),
        ("2.125.160.216", "GB"),
        ("89.160.20.112", "SE"),
        ("216.160.83.56", "US"),
        ("2001:218::1", "JP"),
        ("::ffff:81.2.69.160", "GB"),  # mapped: read as the IPv4 (parse_ip does this)
        ("2002:5102:45a0::1", "GB"),  # 6to4 of 81.2.69.160
        ("1.0.0.1", None),  # a miss
        ("10.0.0.1", None),  # private
        ("2a02:d500::1", None),  # a network with a continent but no country
        ("214.1.1.1", None),  # anycast: traits only, no country
    ],
)
def test_country_from_official_test_databases(db: str, address: str, country: str | None) -> None:
    from sidecar.privacy.ip import parse_ip

    addr = parse_ip(address)
    assert addr is not None
    assert lookup(GEOIP / db).country(addr, Masker().mask(addr)) == country


def test_registered_country_is_not_the_country() -> None:
    # 81.2.69.160: located in GB, registered to a US organisation
    geo = lookup(GEOIP / "GeoIP2-Country-Test.mmdb", fallback_registered_country=True)
    assert geo.country(ip_address("81.2.69.160"), "81.2.69.0") == "GB"


@pytest.mark.parametrize(
    "record, fallback, country",
    [
        ({"country": {"iso_code": "de"}}, False, "DE"),
        ({"registered_country": {"iso_code": "FR"}}, False, None),
        ({"registered_country": {"iso_code": "FR"}}, True, "FR"),
        ({"country_code": "NL", "country": "Netherlands", "asn": "AS1"}, False, "NL"),  # IPinfo
        ({"country": {"iso_code": "XYZ"}}, False, None),
        ({"country": {"iso_code": "EU"}}, False, None),  # not a country
        ({"country": {"iso_code": "A1"}}, False, None),
        ({"country": {"iso_code": 12}}, False, None),
        ({"country": "Germany"}, False, None),
        ("GB", False, None),
        (None, False, None),
        ({"city": {"names": {"en": "London"}}, "location": {"latitude": 51.5}}, True, None),
    ],
)
def test_only_an_iso_code_comes_out_of_a_record(record, fallback, country) -> None:
    assert country_of(record, fallback) == country


def _tiny_db(path: Path, networks: dict[str, dict]) -> Path:
    """A small .mmdb built with the project's own writer library."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="test", languages=["en"],
                        description={"en": "test"})  # fmt: skip
    for cidr, record in networks.items():
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(str(path))
    return path


def test_cache_never_changes_an_answer_for_networks_finer_than_the_prefix(tmp_path: Path) -> None:
    db = _tiny_db(
        tmp_path / "fine.mmdb",
        {
            "192.0.2.0/25": {"country": {"iso_code": "NL"}},
            "192.0.2.128/25": {"country": {"iso_code": "BE"}},
            "198.51.100.0/24": {"country": {"iso_code": "DE"}},
            "2001:db8:1::/56": {"country": {"iso_code": "AT"}},
            "2001:db8:1:100::/56": {"country": {"iso_code": "CH"}},
        },
    )
    geo = lookup(db)
    for _ in range(3):  # again and again, with a warm cache
        assert geo.country(ip_address("192.0.2.10"), "192.0.2.0") == "NL"
        assert geo.country(ip_address("192.0.2.200"), "192.0.2.0") == "BE"
        assert geo.country(ip_address("198.51.100.7"), "198.51.100.0") == "DE"
        assert geo.country(ip_address("2001:db8:1::1"), "2001:db8:1::") == "AT"
        assert geo.country(ip_address("2001:db8:1:100::1"), "2001:db8:1::") == "CH"
    assert "198.51.100.0" in geo.cache  # a whole /24: cached
    assert "192.0.2.0" not in geo.cache  # split below /24: never cached


def test_lookup_from_the_truncated_address(tmp_path: Path) -> None:
    db = _tiny_db(tmp_path / "t.mmdb", {"192.0.2.0/25": {"country": {"iso_code": "NL"}},
                                        "192.0.2.128/25": {"country": {"iso_code": "BE"}}})  # fmt: skip
    geo = lookup(db, from_truncated=True)
    assert geo.country(ip_address("192.0.2.200"), "192.0.2.0") == "NL"  # the struck address


def test_cache_stays_bounded(tmp_path: Path) -> None:
    db = _tiny_db(tmp_path / "b.mmdb", {"0.0.0.0/1": {"country": {"iso_code": "NL"}}})
    geo = CountryLookup(str(db), Masker(), cache_entries=10)
    for i in range(100):
        geo.country(ip_address(f"10.0.{i}.1"), f"10.0.{i}.0")
    assert len(geo.cache) <= 10


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found"),
        (b"not a database", "not a readable MaxMind DB"),
        (b"", "not a readable"),
    ],
)
def test_a_missing_or_broken_database_is_a_config_error(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "country.mmdb"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as exc:
        lookup(path)
    assert "geoip.database" in str(exc.value) and message in str(exc.value)
