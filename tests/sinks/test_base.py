"""base: sink names (no host, no password), the legacy ids (stable, readable, no password),
redacted URLs, the error types, the registry."""

from __future__ import annotations

import re
import subprocess
import sys

import orjson
import pytest

from sidecar import config as config_mod
from sidecar.config import SinkConfig, redact_url, sink_config
from sidecar.errors import ConfigError, SidecarError
from sidecar.sinks.base import Sink, SinkRejected, SinkUnavailable, sink_name
from sidecar.sinks.base import legacy_sink_id as sink_id
from sidecar.sinks.registry import check_names, open_sink
from tests.sinks import numbered

URLS = [
    "stdout:",
    "sqlite:data/analytics.db",
    "sqlite:/var/lib/sidecar/analytics.db",
    "jsonl:out.jsonl",
    "http:http://127.0.0.1:8080/ingest",
    "http:https://collector.example.org/v1/logs?tenant=a",
    "clickhouse:http://127.0.0.1:8123/?database=analytics&table=requests",
    "clickhouse:http://127.0.0.1:8123/?database=analytics&table=requests2",
    "clickhouse:http://u:secret@h:8123/",
    "clickhouse:http://u:other@h:8123/",
    "clickhouse:http://h:8123/",
    "clickhouse:https://" + "very-long-host-name." * 10 + "example:8443/",
]
SAFE = re.compile(r"^[a-z]+-(?:[A-Za-z0-9.][A-Za-z0-9.-]*-)?[0-9a-f]{8}$")


@pytest.mark.parametrize("url", URLS)
def test_sink_id_is_stable_safe_and_short(url: str) -> None:
    sid = sink_id(url)
    assert sid == sink_id(url)
    assert sid.startswith(url.partition(":")[0] + "-")
    assert SAFE.match(sid), sid  # fit for a folder name, a file name and a metric label
    assert len(sid) <= len("clickhouse") + 1 + 40 + 1 + 8


def test_sink_id_is_the_same_in_another_process() -> None:
    code = "from sidecar.sinks.base import legacy_sink_id as f; import sys; print(f(sys.argv[1]))"
    out = subprocess.run(
        [sys.executable, "-c", code, URLS[6]], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == sink_id(URLS[6])  # not hash(): the spool folder survives a restart


def test_sink_ids_differ_between_urls() -> None:
    assert len({sink_id(u) for u in URLS}) == len(URLS)


@pytest.mark.parametrize(
    ("url", "readable"),
    [
        ("clickhouse:http://u:secret@h:8123/", "clickhouse-h-8123-"),
        (
            "clickhouse:https://writer:writer-secret@db.example:8443/?database=a",
            "clickhouse-db.example-8443-",
        ),
        ("http:http://ingest:s3cr3t@127.0.0.1:9000/x", "http-127.0.0.1-9000-x-"),
        ("sqlite:data/analytics.db", "sqlite-data-analytics.db-"),
        ("stdout:", "stdout-"),
    ],
)
def test_sink_id_has_no_password(url: str, readable: str) -> None:
    sid = sink_id(url)
    assert sid.startswith(readable)
    for secret in ("secret", "s3cr3t", "writer-secret"):
        assert secret not in sid


def test_sink_id_has_no_password_from_the_query_string() -> None:
    sid = sink_id("clickhouse:http://h:8123/?user=writer&password=secret")
    assert "secret" not in sid  # got 'clickhouse-h-8123-user-writer-password-secret-…'


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("stdout:", "stdout"),
        ("sqlite:data/analytics.db", "sqlite-analytics.db"),
        ("sqlite:/var/lib/sidecar/analytics.db", "sqlite-analytics.db"),
        ("jsonl:out.jsonl", "jsonl-out.jsonl"),
        ("http:http://127.0.0.1:8080/ingest", "http-ingest"),
        ("http:https://collector.example.org/v1/logs?tenant=a", "http-logs"),
        ("http:https://10.1.2.3/", "http"),
        (
            "clickhouse:http://127.0.0.1:8123/?database=analytics&table=requests",
            "clickhouse-analytics.requests",
        ),
        ("clickhouse:http://u:secret@10.0.0.7:8123/", "clickhouse-default.requests"),
        ("clickhouse:http://h:8123/?user=w&password=secret&table=t2", "clickhouse-default.t2"),
    ],
)
def test_the_default_name_holds_no_host_and_no_password(url: str, name: str) -> None:
    got = sink_name(sink_config(url))
    assert got == name
    assert SAFE_NAME.match(got)


SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def test_a_password_rotated_keeps_the_name() -> None:
    a = sink_config("clickhouse:http://w:old@h:8123/?database=analytics&table=requests")
    b = sink_config("clickhouse:http://w:new@h2:8124/?database=analytics&table=requests")
    assert sink_name(a) == sink_name(b)


def test_a_given_name_wins() -> None:
    cfg = config_mod.from_mapping({"sinks": [{"url": "sqlite:a.db", "name": "main"}]})
    assert sink_name(cfg.sinks[0]) == "main"


@pytest.mark.parametrize("name", ["../x", "a/b", "", "-x", "x" * 65, "a b"])
def test_a_bad_name_is_a_config_error(name: str) -> None:
    if name == "":
        return  # "" means the default
    with pytest.raises(ConfigError, match=r"sinks\[0\]\.name"):
        config_mod.from_mapping({"sinks": [{"url": "sqlite:a.db", "name": name}]})


def test_two_sinks_with_the_same_default_name_must_be_named() -> None:
    same = [sink_config("sqlite:a/analytics.db"), sink_config("sqlite:b/analytics.db")]
    with pytest.raises(ConfigError, match=r"sqlite-analytics\.db.*distinct `name`"):
        check_names(same)
    check_names([same[0], SinkConfig(url="sqlite:b/analytics.db", name="second")])


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("http://u:secret@h:8123/", "http://***@h:8123/"),
        (
            "clickhouse:http://u:secret@h:8123/?database=a",
            "clickhouse:http://***@h:8123/?database=a",
        ),
        ("https://user@h/", "https://***@h/"),  # a user alone is hidden too
        ("http://h:8123/", "http://h:8123/"),  # nothing to hide: unchanged
        ("sqlite:data/analytics.db", "sqlite:data/analytics.db"),
        ("http://h/a?mail=a@b", "http://h/a?mail=a@b"),  # an '@' past the host is no userinfo
        ("stdout:", "stdout:"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_redact_url_with_an_at_sign_in_the_password() -> None:
    url = "clickhouse:http://u:p@ss@h:8123/"
    assert (
        redact_url(url) == "clickhouse:http://***@h:8123/"
    )  # got 'clickhouse:http://***@ss@h:8123/'
    assert "ss" not in sink_id(url).split("-")[1:-1]


def test_repr_shows_the_redacted_url() -> None:
    sink = open_sink(SinkConfig(url="clickhouse:http://u:secret@127.0.0.1:8123/"))
    assert repr(sink) == "<ClickHouseSink clickhouse:http://***@127.0.0.1:8123/>"
    sink.close()


def test_errors() -> None:
    assert issubclass(SinkUnavailable, SidecarError) and issubclass(SinkRejected, SidecarError)
    assert SinkRejected("x").reason == "other"
    assert (
        SinkRejected("x", "schema").reason == "schema" and str(SinkRejected("msg", "data")) == "msg"
    )


def test_a_sink_must_write() -> None:
    class NoWrite(Sink):
        scheme = "x"

    with pytest.raises(TypeError):
        NoWrite(SinkConfig(url="x:"))  # type: ignore[abstract]


@pytest.mark.parametrize(
    ("url", "cls", "queryable"),
    [
        ("stdout:", "StdoutSink", False),
        ("sqlite:data/a.db", "SqliteSink", True),
        ("clickhouse:http://127.0.0.1:8123/", "ClickHouseSink", True),
        ("jsonl:out.jsonl", "JsonlSink", False),
        ("http:http://127.0.0.1:9/x", "HttpSink", False),
    ],
)
def test_registry_opens_the_sink_of_each_scheme(url: str, cls: str, queryable: bool) -> None:
    sink = open_sink(sink_config(url))
    assert type(sink).__name__ == cls and sink.scheme == url.partition(":")[0]
    assert (
        sink.queryable is queryable and sink.id == sink_name(sink_config(url)) and sink.url == url
    )


def test_stdout_sink_writes_json_lines(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    sink = open_sink(sink_config("stdout:"))
    sink.write(numbered(2))
    out = capsysbinary.readouterr().out
    assert [orjson.loads(line) for line in out.splitlines()] == numbered(2)
