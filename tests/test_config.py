"""config: TOML -> frozen typed config; every key documented; bad input named precisely."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

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


# --- secrets: a value given to a key that holds one never appears in a message ---------------

SECRET_KEYS = ("password", "password_env")
ANY_VALUE = st.one_of(
    st.integers(),
    st.floats(),
    st.booleans(),
    st.lists(st.one_of(st.text(), st.integers()), min_size=1),
    st.dictionaries(st.text(min_size=1), st.integers(), min_size=1),
)


def _withholds(message: str, value: object) -> bool:
    return str(value) not in message and repr(value) not in message


@settings(max_examples=200)
@given(key=st.sampled_from(SECRET_KEYS), value=ANY_VALUE)
def test_a_bad_secret_value_is_never_shown(key: str, value: object) -> None:
    # values whose text is a word of the message itself ('0' in 'sinks[0]') say nothing
    assume(len(str(value)) >= 4 and len(repr(value)) >= 4)
    with pytest.raises(ConfigError) as exc:
        config.from_mapping({"sinks": [{"url": "stdout:", key: value}]}, where="t.toml")
    message = str(exc.value)
    assert f"sinks[0].{key}: must be a string" in message
    assert _withholds(message, value), message


def test_the_sink_password_from_the_issue_is_withheld() -> None:
    with pytest.raises(ConfigError) as exc:
        config.from_mapping({"sinks": [{"url": "stdout:", "password": 12345678}]})
    assert "12345678" not in str(exc.value) and "sinks[0].password" in str(exc.value)


@dataclasses.dataclass(frozen=True)
class _FutureSection:  # keys a later version may add: named like a secret, with a check
    api_token: int = config._opt(0, config._int_range(0, 5))
    signing_key: str = config._opt("a", config._one_of("a", "b"))
    client_secret: float = config._opt(1.0, config._secs())


@settings(max_examples=200)
@given(
    key_value=st.one_of(
        st.tuples(st.just("api_token"), st.integers(min_value=1000)),
        st.tuples(st.just("signing_key"), st.text(min_size=4).filter(lambda t: t not in "ab")),
        st.tuples(st.just("client_secret"), st.floats(min_value=1e6, allow_infinity=True)),
    )
)
def test_any_key_named_like_a_secret_withholds_its_value(key_value: tuple[str, object]) -> None:
    key, value = key_value
    message = _future_error(key, value)
    assert f"future.{key}:" in message
    # the same words as for another value failing the same check: nothing of the value in them
    other = math.inf if value == math.inf else _OTHER_BAD[key]
    assert message == _future_error(key, other), message
    assume(_withholds(_future_error(key, other), value))  # a value that is a word of the text
    assert _withholds(message, value), message


_OTHER_BAD = {"api_token": 99999, "signing_key": "zzzz", "client_secret": 1e7}


def _future_error(key: str, value: object) -> str:
    with pytest.raises(ConfigError) as exc:
        config._build_section("future", _FutureSection, {key: value}, "t.toml")
    return str(exc.value)


@pytest.mark.parametrize(
    "key, secret",
    [("password", True), ("password_env", True), ("api_token", True), ("client_secret", True),
     ("signing_key", True), ("user", False), ("url", False), ("timeout_secs", False)],
)  # fmt: skip
def test_is_secret_key(key: str, secret: bool) -> None:
    assert config.is_secret_key(key) is secret


# printable ASCII a password may hold (quotes left out: they only change how repr quotes)
PASSWORDS = st.text(
    alphabet=st.characters(codec="ascii", categories=("L", "N", "P", "S"),
                           exclude_characters="?#&;'\"\\"),
    min_size=1,
)  # fmt: skip
BAD_URLS = (
    "clickhouse:ftp://writer:{}@db.example/",  # not http(s)
    "clickhouse:writer:{}@db.example:8123/",  # no scheme at all
    "bogus:http://writer:{}@db.example/",  # not a sink
    "clickhouse:db.example/?user=writer&password={}",
    "http:h/?api_key={0}&access_token={0}",
)


def _url_error(url: str) -> str:
    with pytest.raises(ConfigError) as exc:
        config.from_mapping({"sinks": [{"url": url}]})
    return str(exc.value)


@settings(max_examples=200)
@given(password=PASSWORDS, url=st.sampled_from(BAD_URLS))
def test_a_bad_sink_url_is_quoted_redacted(password: str, url: str) -> None:
    message = _url_error(url.format(password))
    # the same words whatever the password: nothing of it is in there
    assert message == _url_error(url.format("x")), message
    assert "***" in message


# --- numbers: finite, and durations bounded ---------------------------------------------------


@pytest.mark.parametrize(
    "section, key", [("storage", "retry_initial_secs"), ("storage", "retry_max_secs"),
                     ("storage", "shutdown_timeout_secs"), ("sinks", "batch_timeout_secs"),
                     ("sinks", "timeout_secs")],
)  # fmt: skip
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "+nan", "1e308", "86401", "1e9"])
def test_durations_are_finite_and_at_most_a_day(
    tmp_path: Path, section: str, key: str, value: str
) -> None:
    path = tmp_path / "t.toml"
    if section == "sinks":
        path.write_text(f'[[sinks]]\nurl = "stdout:"\n{key} = {value}\n')
        named = f"sinks[0].{key}:"
    else:
        path.write_text(f"[{section}]\n{key} = {value}\n")
        named = f"{section}.{key}:"
    with pytest.raises(ConfigError) as exc:
        config.load(path)
    assert named in str(exc.value) and str(path) in str(exc.value)


def test_a_day_and_zero_shutdown_are_fine() -> None:
    cfg = config.from_mapping(
        {"storage": {"retry_max_secs": 86400, "shutdown_timeout_secs": 0}},
    )
    assert cfg.storage.retry_max_secs == 86400.0 and cfg.storage.shutdown_timeout_secs == 0.0


@dataclasses.dataclass(frozen=True)
class _FloatSection:  # any float key, checked or not, is refused when it is not finite
    ratio: float = config._opt(0.5)


@given(value=st.one_of(st.sampled_from([math.inf, -math.inf, math.nan]), st.just(10**400)))
def test_every_float_key_refuses_non_finite_numbers(value: float) -> None:
    with pytest.raises(ConfigError, match=r"^x\.ratio: must be a finite number"):
        config._build_section("x", _FloatSection, {"ratio": value}, "t.toml")


def test_an_integer_too_long_for_python_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(f"[storage]\nretry_max_secs = {'9' * 5000}\n")
    with pytest.raises(ConfigError, match="integer too long"):
        config.load(path)
    path.write_text(f"[storage]\nspool_max_bytes = {'9' * 4000}\n")
    with pytest.raises(ConfigError) as exc:
        config.load(path)
    assert "storage.spool_max_bytes: must be an integer from" in str(exc.value)
    assert len(str(exc.value)) < 300
