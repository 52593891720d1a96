"""privacy.beacon: a beacon's payload (query, form or JSON body) cut to `beacon.allow`, as a
query; and the stage that applies it. Property tests: no key outside the list, no address, no
body ever reaches a record, and parsing never raises."""

from __future__ import annotations

import functools
import json
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote, unquote_plus

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.formats.detect import detect
from sidecar.formats.log_format import compile_log_format
from sidecar.formats.rewrite import Rewriter
from sidecar.privacy.beacon import Beacon, encode_pair, form_pairs, json_pairs
from sidecar.privacy.stage import PrivacyStage
from sidecar.record import FIELDS, RawRequest
from sidecar.reject import Rejected
from tests.conftest import make_config
from tests.e2e.nginx import Nginx
from tests.fuzz.oracle import leaks
from tests.fuzz.strategies import HypothesisChooser, percent_encode, plant

ALLOW = ("event", "media", "position_secs", "CMCD", "x_*")
TS = "2026-11-24T09:00:00.000Z"


@functools.cache
def stage(allow: tuple[str, ...] = ALLOW, paths: tuple[str, ...] = ("/beacon",)) -> PrivacyStage:
    return PrivacyStage(
        make_config(beacon={"paths": list(paths), "allow": list(allow)}, query={"allow": ["q"]})
    )


def raw(path: str = "/beacon", query: str | None = None, body: str | None = None) -> RawRequest:
    method = "POST" if body is not None else "GET"
    return RawRequest("198.51.100.7", TS, method, path, query, "HTTP/1.1", 204, 0, body=body)


def payload(query: str | None = None, body: str | None = None, allow=ALLOW) -> str | None:
    return Beacon(("/beacon",), allow).payload(query, body)


# --- the rule, case by case --------------------------------------------------------------------
@pytest.mark.parametrize(
    "query, body, kept",
    [
        ("event=play&token=s3cr3t&media=m1", None, "event=play&media=m1"),  # a GET
        (None, "event=play&sid=42&position_secs=12.5", "event=play&position_secs=12.5"),  # form
        (None, '{"event":"pause","uid":"jane","position_secs":12.5}',
         "event=pause&position_secs=12.5"),  # JSON
        # one payload, however it is sent: decoded once, sorted by name, encoded again
        ("media=a+b&event=x", None, "event=x&media=a%20b"),
        (None, "media=a%20b&event=x", "event=x&media=a%20b"),
        (None, '{"media":"a b","event":"x"}', "event=x&media=a%20b"),
        # the query's pairs first, then the body's; one name keeps its order
        ("event=a", "event=b&event=c", "event=a&event=b&event=c"),
        # JSON: strings, numbers, booleans; nested values, arrays and null give nothing
        (None, '{"event":true,"position_secs":0,"media":{"id":"x"},"x_a":[1],"x_b":null}',
         "event=true&position_secs=0"),
        (None, '  {"event":"play"}\n', "event=play"),  # whitespace around the object
        (None, '{\n  "event": "play",\n  "uid": "jane"\n}', "event=play"),  # pretty-printed
        (None, '["event","play"]', None),  # no object: nothing
        (None, '"event=play"', None),  # a JSON string: read as a form, its name is `"event`
        (None, '{"event":"play"', None),  # does not parse: nothing
        (None, "{event=play}", None),  # looks like JSON, is none: nothing
        # prefixes
        (None, "x_bitrate=3000&xbitrate=1&x_=2", "x_=2&x_bitrate=3000"),
        # names are compared decoded once, never twice
        ("ev%65nt=1&%65vent=2", None, "event=1&event=2"),
        (None, '{"ev%65nt":"1"}', None),
        ("ev%2565nt=1", None, None),
        # values are encoded; `&` and `=` inside a value stay inside it
        (None, '{"event":"a&b=c"}', "event=a%26b%3Dc"),
        (None, '{"CMCD":"br=3200,bs,sid=\\"6e2f\\""}', "CMCD=br%3D3200,bs,sid%3D%226e2f%22"),
        (None, '{"event":"\u00e9t\u00e9"}', "event=%C3%A9t%C3%A9"),
        ("event", None, "event="),  # a name without a value
        ("&&=&event=1&", None, "event=1"),
        (None, None, None),
        ("", "", None),
    ],
)  # fmt: skip
def test_payload_table(query: str | None, body: str | None, kept: str | None) -> None:
    assert payload(query, body) == kept


def test_nothing_is_kept_with_an_empty_allowlist() -> None:
    assert payload("event=play", '{"event":"play"}', allow=()) is None


def test_a_payload_beyond_8_kib_is_not_parsed() -> None:
    pad = "&pad=" + "a" * (8192 - len("event=play&pad="))
    assert len("event=play" + pad) == 8192
    assert payload(None, "event=play" + pad) == "event=play"
    assert payload(None, "event=play" + pad + "a") is None  # 8193 bytes
    assert payload("event=play" + pad + "a", None) is None  # a query too
    wide = "event=play&pad=" + "\u00e9" * 4089  # 8193 bytes in 4104 characters
    assert len(wide.encode()) == 8193 and payload(None, wide) is None
    assert payload("event=ok", "event=play" + pad + "a") == "event=ok"  # the other part counts


def test_the_kept_payload_is_bounded() -> None:
    big = "&".join(f"event={i:04d}" + "v" * 100 for i in range(70))  # 7.6 KiB, 7.8k once kept
    kept = Beacon(("/beacon",), ALLOW, max_chars=1000).payload(None, big)
    assert kept is not None and len(kept) <= 1000
    assert all(p.startswith("event=") for p in kept.split("&"))  # whole pairs, never cut


def test_helpers() -> None:
    assert list(form_pairs("a=1&b=x+y&c&=d&e=%ZZ")) == [
        ("a", "1"), ("b", "x y"), ("c", ""), ("", "d"), ("e", "%ZZ")
    ]  # fmt: skip
    assert json_pairs('{"a":1.5e3,"b":false,"c":"x","d":null}') == [
        ("a", "1500.0"), ("b", "false"), ("c", "x")
    ]  # fmt: skip
    assert json_pairs("[1]") == json_pairs("") == json_pairs("{") == []
    assert encode_pair("a b", "x&y=z/é") == "a%20b=x%26y%3Dz/%C3%A9"


# --- through the stage ---------------------------------------------------------------------------
def test_the_stage_keeps_a_beacons_payload_in_query() -> None:
    record = stage().scrub(raw(query="event=play&uid=jane", body='{"position_secs":3}'))
    assert record["path"] == "/beacon" and record["query"] == "event=play&position_secs=3"


def test_only_the_configured_paths_are_beacons() -> None:
    s = stage()
    # not a beacon: the [query] rule (allow = ["q"]), the body never
    record = s.scrub(raw(path="/beacon/", query="event=play&q=1", body="event=play"))
    assert record["query"] == "q=1"
    assert s.scrub(raw(path="/other", body='{"event":"play"}'))["query"] is None
    # a beacon: [beacon] allow only, not [query] allow
    assert s.scrub(raw(query="event=play&q=1"))["query"] == "event=play"
    # the path is compared after its own cleaning (`;params` dropped)
    assert s.scrub(raw(path="/beacon;jsessionid=1", body="event=play"))["query"] == "event=play"
    other = stage(paths=("/b", "/collect"))
    assert other.scrub(raw(path="/collect", body="event=play"))["query"] == "event=play"
    assert other.scrub(raw(path="/beacon", body="event=play"))["query"] is None


def test_values_are_struck_like_every_query_value() -> None:
    record = stage().scrub(raw(body='{"event":"from 203.0.113.77","media":"2001:db8:1:2::9"}'))
    assert record["query"] == "event=from%20203.0.113.0&media=2001:db8:1::"


def test_a_value_the_scrubber_would_split_is_never_split() -> None:
    """A value that decodes to `&secret=x` never becomes a pair of a name not allowed: the
    scrubber escapes the separators it decoded (literals.py), and the beacon rule keeps a pair
    only once the scrubber leaves it as it is."""
    value = "203%252E0%252E113%252E7%2526secret%253Dx"
    s = stage()
    assert "secret=" not in s.factory.text(f"event={value}")
    query = s.scrub(raw(query=f"event={value}&media=m"))["query"]
    assert "secret=" not in query and query.endswith("media=m")


def test_the_body_is_never_written_back() -> None:
    fmt = compile_log_format(
        'log_format t \'$remote_addr [$time_local] "$request" $status "$request_body"\';'
    )
    line = '192.0.2.1 [24/Nov/2026:10:00:00 +0000] "POST /beacon HTTP/1.1" 204 "uid=jane&event=p"'
    record = stage().scrub(fmt.parse(line))
    assert record["query"] == "event=p"
    assert "jane" not in Rewriter(fmt).line(record)


# --- properties ----------------------------------------------------------------------------------
SAMPLE_NAMES = ["event", "media", "CMCD", "x_", "x_a", "uid", "token", "ev%65nt", "x%5Fa",
                "event+", "%26event", "e&vent", "x=_a", " event", "EVENT"]  # fmt: skip
SAMPLE_VALUES = ["203.0.113.7", "203%252E0%252E113%252E7%2526uid%253Dx", "a&uid=b", "%26", "1.5",
                 "%"]  # fmt: skip
NAMES = st.one_of(st.sampled_from(SAMPLE_NAMES), st.text(max_size=8))
VALUES = st.one_of(st.text(max_size=12), st.sampled_from(SAMPLE_VALUES))
PAIRS = st.lists(st.tuples(NAMES, VALUES), max_size=6)


def _form(pairs: list[tuple[str, str]], encoded: bool) -> str:
    if encoded:
        return "&".join(f"{quote(n)}={quote(v)}" for n, v in pairs)
    return "&".join(f"{n}={v}" for n, v in pairs)


@st.composite
def payloads(draw) -> tuple[str | None, str | None]:
    """(query, body) of any shape: form (encoded or not), JSON of any value, or garbage."""
    query = draw(st.one_of(st.none(), PAIRS.map(lambda p: _form(p, True)), st.text(max_size=40)))
    kind = draw(st.sampled_from(["none", "form", "raw-form", "json", "json-any", "text"]))
    pairs = draw(PAIRS)
    body = {
        "none": None,
        "form": _form(pairs, True),
        "raw-form": _form(pairs, False),
        "json": json.dumps(dict(pairs)),
        "json-any": json.dumps(
            draw(
                st.recursive(
                    st.none() | st.booleans() | st.floats() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(NAMES, c, max_size=4),
                    max_leaves=8,
                )
            )
        ),
        "text": draw(st.text(max_size=60)),
    }[kind]
    return query, body


def _names(query: str) -> list[str]:
    return [unquote_plus(p.partition("=")[0]) for p in query.split("&")]


@settings(max_examples=300)
@given(payloads())
def test_no_key_outside_the_allowlist_ever_reaches_query(generated) -> None:
    query, body = generated
    s = stage()
    record = s.scrub(raw(query=query, body=body))
    kept = record["query"]
    if kept is not None:
        assert all(s.beacon.allowed(name) for name in _names(kept)), kept
        assert not {"uid", "token"} & set(_names(kept))
    # the record factory's own scrub changed nothing: each pair was settled under it
    assert kept == s.beacon.payload(query, body)


@settings(max_examples=300)
@given(
    st.data(), st.sampled_from(["query", "form", "json"]), st.sampled_from(["default", "strict"])
)
def test_no_ip_literal_survives_in_a_value(data, where: str, preset: str) -> None:
    c = HypothesisChooser(data)
    planted = plant(c, preset)
    text = data.draw(st.text("ab-_ /", max_size=3)) + planted.text
    if where != "json":
        text = percent_encode(c, text)[0]
    pairs = f"event={text}&media=m"
    query, body = {"query": (pairs, None), "form": (None, pairs),
                   "json": (None, json.dumps({"event": text, "media": "m"}))}[where]  # fmt: skip
    ip = {"strict": {"ipv4_prefix_bits": 16, "ipv6_prefix_bits": 32}}.get(preset, {})
    s = PrivacyStage(make_config(ip=ip, beacon={"allow": list(ALLOW)}))
    kept = s.scrub(raw(query=query, body=body))["query"]
    assert kept is not None and "media=m" in kept
    assert not leaks(kept, planted.identities), (planted, kept)


MARK = "B0DY-MARK"


@settings(max_examples=200)
@given(payloads(), st.sampled_from(["/beacon", "/v/a/seg_1.m4s", "/"]))
def test_the_body_never_appears_in_any_record(generated, path: str) -> None:
    query, body = generated
    body = f"uid={MARK}&" + (body or "") if not (body or "").lstrip().startswith("{") else body
    record = stage().scrub(raw(path=path, query=query, body=body))
    assert tuple(record) == FIELDS and "body" not in record
    assert MARK not in orjson.dumps(record).decode()
    if path != "/beacon":
        assert record["query"] is None or _names(record["query"]) == ["q"] * len(
            _names(record["query"])
        )


@settings(max_examples=300)
@given(st.one_of(st.none(), st.text()), st.one_of(st.none(), st.text(), st.binary().map(
    lambda b: b.decode("utf-8", "replace"))))  # fmt: skip
def test_parsing_never_raises(query, body) -> None:
    s = stage()
    s.beacon.payload(query, body)
    s.beacon.payload(query, "{" + (body or ""))
    s.scrub(raw(query=query, body=body))


def test_deep_or_huge_json_never_raises() -> None:
    for body in ("[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000,
                 '{"event":' + "9" * 4000 + "}", '{"event":1e999}'):  # fmt: skip
        payload(None, body)


# --- what a real nginx logs ------------------------------------------------------------------------
JSON_FORMAT = (
    'log_format sidecar_json escape=json \'{"time_iso8601":"$time_iso8601",'
    '"remote_addr":"$remote_addr","host":"$host","request_method":"$request_method",'
    '"request_uri":"$request_uri","server_protocol":"$server_protocol","status":"$status",'
    '"body_bytes_sent":"$body_bytes_sent","request_time":"$request_time",'
    '"http_referer":"$http_referer","http_user_agent":"$http_user_agent",'
    '"http_x_forwarded_for":"$http_x_forwarded_for",'
    '"upstream_cache_status":"$upstream_cache_status","request_body":"$request_body"}\';'
)
TEXT_FORMAT = (
    'log_format sidecar_text \'$remote_addr [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" "$request_body"\';'
)
HTTP = f"""
{JSON_FORMAT}
{TEXT_FORMAT}
server {{
    listen 127.0.0.1:PORT;
    location = /beacon {{
        client_max_body_size 8k;
        client_body_buffer_size 8k;
        access_log PREFIX/logs/json.log sidecar_json;
        access_log PREFIX/logs/text.log sidecar_text;
        proxy_pass http://127.0.0.1:PORT/_beacon_204;
    }}
    location = /_beacon_204 {{ access_log off; return 204; }}
}}
"""
SENT: list[tuple[str, bytes | None, str | None]] = [
    ("/beacon?event=play&media=m%201&uid=jane", None, "event=play&media=m%201"),
    ("/beacon", b"event=pause&position_secs=12.5&uid=jane", "event=pause&position_secs=12.5"),
    ("/beacon", b'{"event":"seek","position_secs":30,"uid":"jane","media":{"id":1}}',
     "event=seek&position_secs=30"),
    ("/beacon", b'{\n  "event": "\xc3\xa9t\xc3\xa9 \\"q\\"",\n  "uid": "jane"\n}',
     "event=%C3%A9t%C3%A9%20%22q%22"),
    ("/beacon", b"event=\xff\x01z&media=from%20203.0.113.9", "event=%EF%BF%BD%01z&media=from%20203.0.113.0"),
]  # fmt: skip


@pytest.mark.e2e
def test_beacons_as_a_real_nginx_logs_them(tmp_path: Path) -> None:
    with Nginx(tmp_path, HTTP) as nginx:
        for target, body, _ in SENT:
            request = urllib.request.Request(f"http://127.0.0.1:{nginx.port}{target}", data=body)
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 204
        logs = [tmp_path / "logs" / "json.log", tmp_path / "logs" / "text.log"]
        deadline = time.monotonic() + 10
        while any(p.read_bytes().count(b"\n") < len(SENT) for p in logs if p.exists()) or not all(
            p.exists() for p in logs
        ):
            assert time.monotonic() < deadline, "nginx wrote no access-log lines"
            time.sleep(0.02)
    json_lines = logs[0].read_bytes().decode("utf-8", "replace").splitlines()
    text_lines = logs[1].read_bytes().decode("utf-8", "replace").splitlines()
    detected = detect(json_lines)  # --format auto
    assert detected is not None and detected.name == "nginx-json"
    text = compile_log_format(TEXT_FORMAT)
    s = stage()
    for fmt, lines in ((detected, json_lines), (text, text_lines)):
        got = [s.scrub(fmt.parse(line)) for line in lines]
        assert [r["query"] for r in got] == [kept for _, _, kept in SENT], fmt
        assert all(r["status"] == 204 and r["path"] == "/beacon" for r in got)
        assert all("jane" not in orjson.dumps(r).decode() for r in got)


def test_a_stage_with_beacons_rejects_what_it_rejected_before() -> None:
    with pytest.raises(Rejected):
        stage().scrub(RawRequest("not-an-ip", TS, "GET", "/beacon", "event=1", body="event=1"))


def test_the_plain_fast_path_is_exactly_what_quote_leaves_alone() -> None:
    from urllib.parse import quote

    from sidecar.privacy.beacon import _PLAIN, _SAFE

    for c in map(chr, range(0x20, 0x7F)):
        assert bool(_PLAIN.fullmatch(c)) == (quote(c, safe=_SAFE) == c), c
