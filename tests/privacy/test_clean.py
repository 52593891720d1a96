"""privacy.clean: every field of a record goes through the check its schema kind names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.privacy.clean import MAX_TEXT_CHARS, RecordFactory, is_family, visible
from sidecar.privacy.host import HostRule
from sidecar.privacy.ip import Masker
from sidecar.privacy.literals import LiteralMasker
from sidecar.record import FIELDS, METHODS, PROTOCOLS, SCHEMA, CleanRecord

MASKER = Masker()
LITERALS = LiteralMasker(MASKER)
FACTORY = RecordFactory(LITERALS, HostRule(MASKER, LITERALS))
BASE = dict.fromkeys(FIELDS) | {"ts": "2026-11-24T09:00:00.000Z", "client_ip": "203.0.113.0",
                                "status": 200, "bytes": 0}  # fmt: skip


def make(**fields) -> CleanRecord:
    return FACTORY.make(**(BASE | fields))


def test_every_schema_field_has_a_checked_kind() -> None:
    assert set(SCHEMA) == set(FIELDS)
    for name, field in SCHEMA.items():
        assert f"{name}=(" in FACTORY.make.source, name
        if field.type.startswith("string") and field.content not in ("address", "time"):
            assert f"_{name}" in FACTORY.make.source, name


def test_a_kind_without_a_check_cannot_exist(monkeypatch) -> None:
    from sidecar import record

    monkeypatch.setitem(record.SCHEMA, "cmcd_x", record.Field("string", "new", "free"))
    monkeypatch.setattr("sidecar.privacy.clean.SCHEMA", record.SCHEMA)
    with pytest.raises(AssertionError, match="cmcd_x"):
        RecordFactory(LITERALS, HostRule(MASKER, LITERALS))


@pytest.mark.parametrize(
    "field, value, kept",
    [
        ("protocol", "HTTP/1.1", "HTTP/1.1"),
        ("protocol", "HTTP/2.0", "HTTP/2.0"),
        ("protocol", "HTTP/203.0.113.12", None),
        ("protocol", "HTTP/1.1;u=jane@example.org", None),
        ("method", "GET", "GET"),
        ("method", "JANEDOE", None),
        ("country", "DE", "DE"),
        ("country", "EU", None),
        ("country", "203.0.113.7", None),
        ("ua_device", "mobile", "mobile"),
        ("ua_device", "203.0.113.7", None),
        ("ua_browser", "Chrome Mobile WebView", "Chrome Mobile WebView"),
        ("ua_browser", "VideoApp 203.0.113.61 jane.doe@example.org", "Other"),
        ("ua_os", "Mac OS X", "Mac OS X"),
        ("ua_os", "x [2001:db8::1]", "Other"),
        ("path", "/v/203.0.113.7/x\u2028\x00", "/v/203.0.113.0/x"),
        ("path", "/v/\ud800203.0.113.7", "/v/203.0.113.0"),
        ("query", "ip=203%252E0%252E113%252E7", "ip=203.0.113.0"),
        ("user_agent", "App 203.0.113.7 [2001:db8::1]", "App 203.0.113.0 [2001:db8::]"),
        ("referrer_path", "/a/cam:1:203.0.113.11", "/a/cam:1:203.0.113.0"),
        ("host", "3405803855", "203.0.113.0"),
        ("host", "2001:db8:85a3::7", "[2001:db8:85a3::]"),
        ("referrer_host", "203.0.113.7", "203.0.113.0"),
        ("referrer_host", "2001:db8:85a3::7", "2001:db8:85a3::"),
        ("referrer_host", "android-app://com.example.app", "android-app://com.example.app"),
        ("referrer_host", "an droid://x", None),
    ],
)
def test_each_kind_is_checked(field: str, value: str, kept: str | None) -> None:
    assert make(**{field: value})[field] == kept


def test_free_text_is_bounded() -> None:
    assert len(make(path="/" + "a" * 100_000)["path"]) == MAX_TEXT_CHARS


def test_closed_vocabularies() -> None:
    assert {"GET", "HEAD", "POST", "PURGE", "OPTIONS"} <= METHODS
    assert {"HTTP/0.9", "HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/2.0", "HTTP/3",
                         "HTTP/3.0"} == PROTOCOLS  # fmt: skip


@given(st.text(max_size=200))
def test_visible_text_has_no_invisible_character(text: str) -> None:
    out = visible(text)
    assert all(c.isprintable() for c in out)
    assert make(path=text)["path"] is None or all(c.isprintable() for c in make(path=text)["path"])


@given(st.text(max_size=40))
def test_a_family_is_a_name_or_other(text: str) -> None:
    out = make(ua_browser=text)["ua_browser"]
    assert out is None or out == "Other" or is_family(out)
    assert out is None or "@" not in out
