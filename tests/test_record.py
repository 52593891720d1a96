"""record: a RawRequest cannot leave the process; a CleanRecord is the one schema."""

from __future__ import annotations

import copy
import json
import logging
import pickle

import orjson
import pytest

from sidecar.record import FIELDS, SCHEMA, CleanRecord, RawRequest, to_json

FULL_IP = "203.0.113.77"


def raw() -> RawRequest:
    return RawRequest(FULL_IP, "2026-11-24T09:00:00.000Z", "GET", "/", None, "HTTP/1.1", 200, 5)


@pytest.mark.parametrize(
    "leak",
    [
        lambda r: pickle.dumps(r),
        lambda r: copy.copy(r),
        lambda r: copy.deepcopy(r),
        lambda r: orjson.dumps(r),
        lambda r: json.dumps(r),
        lambda r: to_json(r),  # type: ignore[arg-type]
        lambda r: vars(r),
        lambda r: hash(r),
    ],
)
def test_a_raw_request_cannot_be_serialized_or_copied(leak) -> None:
    with pytest.raises(TypeError):
        leak(raw())


def test_a_raw_request_shows_nothing(caplog: pytest.LogCaptureFixture) -> None:
    r = raw()
    assert FULL_IP not in repr(r) and FULL_IP not in str(r) and FULL_IP not in f"{r}"
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("record %s %r", r, r)
    assert FULL_IP not in caplog.text


def test_clean_record_is_the_schema_in_order() -> None:
    rec = CleanRecord.make(**dict.fromkeys(FIELDS, None))
    assert tuple(rec) == FIELDS == tuple(SCHEMA)
    assert to_json(rec).endswith(b"\n")
    assert list(orjson.loads(to_json(rec))) == list(FIELDS)


def test_clean_record_make_checks_fields() -> None:
    with pytest.raises(TypeError, match="missing"):
        CleanRecord.make(ts="x")
    with pytest.raises(TypeError, match="unknown"):
        CleanRecord.make(**dict.fromkeys(FIELDS, None), remote_addr=FULL_IP)


def test_only_a_clean_record_is_encoded() -> None:
    with pytest.raises(TypeError):
        to_json(dict.fromkeys(FIELDS))  # type: ignore[arg-type]
