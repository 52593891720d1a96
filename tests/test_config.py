"""config: TOML -> frozen typed config; every key documented; bad input named precisely."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from sidecar import config
from sidecar.errors import ConfigError
from tests.conftest import PROJECT

DOCUMENTED = PROJECT / "config" / "sidecar.toml"


def test_the_documented_file_holds_every_key_with_its_default() -> None:
    with DOCUMENTED.open("rb") as fh:
        documented = tomllib.load(fh)
    assert documented == config.defaults_as_mapping()
    assert config.load(DOCUMENTED) == dataclasses.replace(config.Config(), source=str(DOCUMENTED))


def test_every_key_has_a_comment() -> None:
    lines = DOCUMENTED.read_text().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[i - 1].startswith("#"), f"{line!r} has no comment above it"


def test_defaults_need_no_file() -> None:
    cfg = config.load(None)
    assert cfg.ip.ipv4_prefix_bits == 24 and cfg.ip.ipv6_prefix_bits == 48
    assert cfg.geoip.database == "data/country.mmdb"
    assert cfg.query.allow == () and cfg.useragent.mode == "coarse"


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.Config().ip.ipv4_prefix_bits = 32  # type: ignore[misc]


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[ip]\nipv4_prefix_bit = 24", "unknown key 'ip.ipv4_prefix_bit'"),
        ("[ip]\nipv4_prefix_bit = 24", "did you mean 'ipv4_prefix_bits'?"),
        ("[ipp]\nx = 1", "unknown key 'ipp'"),
        ("[ip]\nipv4_prefix_bits = 33", "ip.ipv4_prefix_bits: must be an integer from 0 to 32"),
        ("[ip]\nipv6_prefix_bits = -1", "ip.ipv6_prefix_bits: must be an integer from 0 to 128"),
        ("[ip]\nipv4_prefix_bits = \"24\"", "ip.ipv4_prefix_bits: must be an integer"),
        ("[ip]\nipv4_prefix_bits = true", "ip.ipv4_prefix_bits: must be an integer"),
        ("[ip]\ntrusted_proxies = \"10.0.0.0/8\"", "ip.trusted_proxies: must be a list"),
        ("[ip]\ntrusted_proxies = [\"10.0.0.0/33\"]", "ip.trusted_proxies: '10.0.0.0/33' is not"),
        ("[ip]\nreal_ip_header = \"x-client-ip\"", "ip.real_ip_header: must be one of"),
        ("[geoip]\nfallback_registered_country = 1", "geoip.fallback_registered_country: must "
                                                      "be true or false"),
        ("[geoip]\nlookup = \"city\"", "geoip.lookup: must be one of 'full', 'truncated'"),
        ("[referrer]\nthird_party = \"path\"", "referrer.third_party: must be one of"),
        ("[referrer]\nfirst_party_hosts = [\"https://x.eu/\"]", "referrer.first_party_hosts: "),
        ("[query]\nallow = [\"a=b\"]", "query.allow: 'a=b' is not a parameter name"),
        ("[useragent]\nmode = \"full\"", "useragent.mode: must be one of"),
        ("[pipe]\nworkers = 0", "pipe.workers: must be an integer from 1 to 64"),
        ("[pipe]\noutput = \"csv\"", "pipe.output: must be one of"),
        ("ip = 3", "ip: must be a table"),
        ("[ip\n", "is not valid TOML"),
    ],
)  # fmt: skip
def test_bad_config_names_the_key(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as exc:
        config.load(path)
    assert message in str(exc.value)
    assert exc.value.exit_code == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "nope.toml")


def test_overrides_are_checked_like_the_file() -> None:
    cfg = config.override(config.Config(), {"geoip.database": "x.mmdb", "pipe.workers": 2})
    assert cfg.geoip.database == "x.mmdb" and cfg.pipe.workers == 2
    with pytest.raises(ConfigError, match=r"pipe\.workers"):
        config.override(config.Config(), {"pipe.workers": 0})
