"""privacy.stage: the whole rule set on whole log lines. The invariant of the project:
for any log line, no full client IP (nor any other IP literal) comes out."""

from __future__ import annotations

import functools
import os
import re
from ipaddress import IPv4Address, IPv6Address, ip_address

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.formats.registry import resolve
from sidecar.formats.rewrite import Rewriter
from sidecar.privacy.stage import PrivacyStage, open_country_lookup
from sidecar.record import FIELDS, CleanRecord
from sidecar.reject import Rejected
from tests.conftest import GEOIP, make_config

CUSTOM = (
    'log_format cdn \'$remote_addr - [$time_local] $host "$request" $status $body_bytes_sent '
    '$request_time "$http_referer" "$http_user_agent" "$http_x_forwarded_for" '
    '"$http_forwarded" "$http_x_real_ip"\';'
)


@functools.cache
def _stage(frozen: str) -> PrivacyStage:
    cfg = make_config(**orjson.loads(frozen))
    return PrivacyStage(cfg, open_country_lookup(cfg))


def stage_for(**sections) -> PrivacyStage:
    """A stage for these config sections, built once per distinct config."""
    return _stage(orjson.dumps(sections, option=orjson.OPT_SORT_KEYS).decode())


# --- addresses in every spelling a log can hold ------------------------------------------------
def _v6_text(addr: IPv6Address, exploded: bool) -> str:
    return addr.exploded if exploded else str(addr)


ADDRESSES = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))


@st.composite
def spelled(draw) -> tuple[IPv4Address | IPv6Address, str]:
    """(address, how a log writes it): plain, port, brackets, zone id, mapped, exploded."""
    addr = draw(ADDRESSES)
    port = draw(st.integers(1, 65535))
    if addr.version == 4:
        text = draw(st.sampled_from([f"{addr}", f"{addr}:{port}", f"::ffff:{addr}",
                                     f"[::ffff:{addr}]:{port}"]))  # fmt: skip
    else:
        base = _v6_text(addr, draw(st.booleans()))
        zone = draw(st.from_regex(r"[a-z]{1,5}[0-9]?", fullmatch=True))
        text = draw(st.sampled_from([base, f"[{base}]", f"[{base}]:{port}", f"{base}%{zone}"]))
    return addr, text


GARBAGE = st.sampled_from(["-", "unknown", "unix:", "localhost", "203.0.113", "::ffff:1.2.3"])


def _struck_enough(addr: IPv4Address | IPv6Address) -> bool:
    """True when the address shows nothing beyond the default prefixes (/24, /48, 6to4)."""
    n = int(addr)
    if addr.version == 4:
        return n & 0xFF == 0
    if addr.ipv4_mapped is not None:
        return int(addr.ipv4_mapped) & 0xFF == 0
    if n >> 112 == 0x2002:
        return n & ((1 << 88) - 1) == 0
    return n & ((1 << 80) - 1) == 0


def _literals(text: str) -> list[IPv4Address | IPv6Address]:
    found = []
    for token in re.findall(r"[0-9A-Fa-f:.]{7,}", text):
        for candidate in (token, token.strip(":.")):
            try:
                found.append(ip_address(candidate))
                break
            except ValueError:
                continue
    return found


def _forms(addr: IPv4Address | IPv6Address) -> set[str]:
    if addr.version == 4:
        return {str(addr)}
    forms = {str(addr), addr.exploded}
    if addr.ipv4_mapped is not None:
        forms.add(str(addr.ipv4_mapped))
    return forms


@st.composite
def log_lines(draw) -> tuple[str, list]:
    """A custom-format line with addresses in every field that can hold one."""
    client, client_text = draw(spelled())
    hops = draw(st.lists(st.one_of(spelled(), GARBAGE.map(lambda g: (None, g))), max_size=3))
    in_path, in_path_text = draw(spelled())
    in_query, in_query_text = draw(spelled())
    in_ref, in_ref_text = draw(spelled())
    real, real_text = draw(spelled())
    ref_host = in_ref_text if ":" not in in_ref_text else f"[{in_ref}]"
    xff = ", ".join(text for _, text in hops) or "-"
    fwd = f"for=\\x22{client_text}\\x22"  # nginx writes a quote inside a value as \x22
    line = (
        f"{client_text} - [24/Nov/2026:10:00:00 +0100] cdn.example.com "
        f'"GET /v/{in_path_text}/seg.m4s?ip={in_query_text}&token=s3cr3t HTTP/1.1" 200 1234 0.004 '
        f'"http://{ref_host}/watch?q=name&from={in_ref_text}" "Mozilla/5.0 (X11; Linux x86_64)" '
        f'"{xff}" "{fwd}" "{real_text}"'
    )
    addresses = [client, in_path, in_query, in_ref, real, *(a for a, _ in hops if a is not None)]
    return line, addresses


def _check_output(out: str, addresses: list) -> None:
    for addr in addresses:
        if _struck_enough(addr):
            continue
        for form in _forms(addr):
            pattern = rf"(?<![0-9A-Fa-f:.]){re.escape(form)}(?![0-9A-Fa-f:.])"
            assert not re.search(pattern, out, re.IGNORECASE), (form, out)
    for literal in _literals(out):
        assert _struck_enough(literal), (literal, out)
    assert "s3cr3t" not in out and "q=name" not in out


TRUSTED = {"trusted_proxies": ["0.0.0.0/0", "::/0"]}


@settings(max_examples=int(os.environ.get("SIDECAR_EXAMPLES", "300")))
@given(log_lines(), st.sampled_from(["x-forwarded-for", "forwarded", "x-real-ip"]), st.booleans())
def test_no_full_ip_in_any_output(generated, header, trusted) -> None:
    line, addresses = generated
    ip = {"real_ip_header": header, **(TRUSTED if trusted else {})}
    stage = stage_for(ip=ip, query={"allow": ["ip"]})
    fmt = resolve(CUSTOM)
    try:
        record = stage.scrub(fmt.parse(line))
    except Rejected as rej:
        assert rej.reason == "bad_ip"  # only a client that is no address may be refused
        return
    _check_output(orjson.dumps(record).decode(), addresses)
    _check_output(Rewriter(fmt).line(record), addresses)


@settings(max_examples=200)
@given(spelled(), st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
def test_combined_lines_with_garbage_paths(client, junk) -> None:
    addr, text = client
    line = (
        f'{text} - - [24/Nov/2026:10:00:00 +0100] "GET /{junk.replace(chr(34), "")} HTTP/1.1" '
        f'200 5 "-" "-"'
    )
    stage = stage_for()
    fmt = resolve("combined")
    try:
        record = stage.scrub(fmt.parse(line))
    except Rejected:
        return
    _check_output(orjson.dumps(record).decode(), [addr])


def test_a_city_database_gives_the_country_and_nothing_else() -> None:
    stage = stage_for(geoip={"database": str(GEOIP / "GeoIP2-City-Test.mmdb")})
    line = '81.2.69.160 - - [24/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 5 "-" "-"'
    record = stage.scrub(resolve("combined").parse(line))
    assert record["country"] == "GB"
    assert tuple(record) == FIELDS
    text = orjson.dumps(record).decode()
    for leak in ("London", "51.5", "-0.09", "ENG", "England", "geoname", "Europe", "US"):
        assert leak not in text


def test_record_fields_and_defaults() -> None:
    stage = stage_for(referrer={"first_party_hosts": ["example-video.eu"]})
    line = (
        '2001:218::1 - - [24/Nov/2026:10:00:00 +0100] "GET /v/a/seg_1.m4s?token=x HTTP/2.0" 206 '
        '1234 "https://www.example-video.eu/watch/9?t=1" "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 '
        "like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 "
        'Safari/604.1"'
    )
    record = stage.scrub(resolve("combined").parse(line))
    assert isinstance(record, CleanRecord)
    assert record == {
        "ts": "2026-11-24T09:00:00.000Z",
        "client_ip": "2001:218::",
        "country": "JP",
        "method": "GET",
        "host": None,
        "path": "/v/a/seg_1.m4s",
        "query": None,
        "protocol": "HTTP/2.0",
        "status": 206,
        "bytes": 1234,
        "request_time": None,
        "referrer_host": "www.example-video.eu",
        "referrer_path": "/watch/9",
        "ua_browser": "Mobile Safari",
        "ua_os": "iOS",
        "ua_device": "mobile",
        "user_agent": None,
    }


@pytest.mark.parametrize(
    "mode, browser, kept",
    [("coarse", "Firefox", None), ("drop", None, None), ("keep", "Firefox", "Mozilla/5.0 (X11; "
     "Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0")],
)  # fmt: skip
def test_useragent_modes(mode: str, browser: str | None, kept: str | None) -> None:
    stage = stage_for(useragent={"mode": mode})
    line = (
        '192.0.2.1 - - [24/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 5 "-" '
        '"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"'
    )
    record = stage.scrub(resolve("combined").parse(line))
    assert record["ua_browser"] == browser
    assert record["user_agent"] == kept


def test_no_visitor_identifier_of_any_kind() -> None:
    # two requests of one viewer: nothing in the records ties them together beyond what any
    # viewer of the same /24, country, browser family and minute would share
    stage = stage_for()
    fmt = resolve("combined")
    a = stage.scrub(
        fmt.parse(
            '192.0.2.77 - bob [24/Nov/2026:10:00:00 +0100] "GET /a?sid=1 '
            'HTTP/1.1" 200 5 "-" "Mozilla/5.0 (X11; Linux x86_64) Firefox/1"'
        )
    )
    b = stage.scrub(
        fmt.parse(
            '192.0.2.99 - eve [24/Nov/2026:10:00:00 +0100] "GET /a?sid=2 '
            'HTTP/1.1" 200 5 "-" "Mozilla/5.0 (X11; Linux x86_64) Firefox/1"'
        )
    )
    assert a == b  # indistinguishable: no id, user, session or cookie survives


# --- issue 7: classes closed in the stage -------------------------------------------------------
def _scrub(line: str, **sections) -> CleanRecord:
    return stage_for(**sections).scrub(resolve("vhost_combined").parse(line))


def _line(host="cdn.example.eu", request="GET /v/a.m4s HTTP/1.1", referrer="-", ua="-") -> str:
    return (f'{host} 198.51.100.7 - - [24/Nov/2026:10:00:00 +0100] "{request}" 200 5 '
            f'"{referrer}" "{ua}"')  # fmt: skip


@pytest.mark.parametrize(
    "path, kept",
    [
        ("/v/abc/seg_1.m4s;jsessionid=8F3A2B1C9D;uid=jane@example.org", "/v/abc/seg_1.m4s"),
        ("/v;u=jane/abc;x=1/seg.ts", "/v/abc/seg.ts"),
    ],
)
def test_path_parameters_are_dropped(path: str, kept: str) -> None:
    assert _scrub(_line(request=f"GET {path} HTTP/1.1"))["path"] == kept
    assert _scrub(_line(request=f"GET {path} HTTP/1.1"), path={"keep_params": True})["path"] == (
        path
    )


@pytest.mark.parametrize(
    "protocol, kept",
    [("HTTP/1.1", "HTTP/1.1"), ("HTTP/2.0", "HTTP/2.0"), ("HTTP/203.0.113.12", None),
     ("HTTP/1.1;u=jane@example.org", None)],
)  # fmt: skip
def test_protocol_comes_from_a_closed_set(protocol: str, kept: str | None) -> None:
    assert _scrub(_line(request=f"GET /x {protocol}"))["protocol"] == kept


@pytest.mark.parametrize(
    "referrer", ["[203.0.113.160x]", "[::1", "a]b", "http://[203.0.113.160x]/", "//203.0.113.5/x"]
)
def test_hostile_referrers_give_a_record(referrer: str) -> None:
    record = _scrub(_line(referrer=referrer))
    assert record["referrer_host"] in (None, "203.0.113.0")


def test_hosts_in_browser_notations_are_struck() -> None:
    for host in ("3405803855", "0xcb.0x00.0x71.0x1a", "0313.0000.0161.0116", "203-0-113-7.x.net"):
        assert "113.7" not in str(_scrub(_line(host=host))["host"]).replace("-", ".")
    assert _scrub(_line(host="3405803855"))["host"] == "203.0.113.0"


def test_stricter_bits_hold_everywhere() -> None:
    bits = {"ipv4_prefix_bits": 16, "ipv6_prefix_bits": 32}
    record = _scrub(_line(request="GET /v/2001:db8:abcd:12/203.0.113 HTTP/1.1"), ip=bits)
    assert record["path"] == "/v/2001:db8::/203.0.0"
    assert record["client_ip"] == "198.51.0.0"
