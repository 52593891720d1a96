"""privacy.query: only allowlisted parameters survive; the default allowlist is empty."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.privacy.ip import Masker
from sidecar.privacy.literals import LiteralMasker
from sidecar.privacy.query import Query


@pytest.mark.parametrize(
    "allow, query, kept",
    [
        ((), "token=s3cr3t&lang=en", None),  # default: nothing survives
        (("lang",), "token=s3cr3t&lang=en", "lang=en"),
        (("lang", "quality"), "lang=en&quality=1080p&uid=42", "lang=en&quality=1080p"),
        (("utm_*",), "utm_source=x&utm_medium=y&q=z", "utm_source=x&utm_medium=y"),
        (("lang",), "LANG=en", None),  # names are exact
        (("a b",), "a+b=1&a%20b=2&ab=3", "a+b=1&a%20b=2"),  # compared decoded
        (("lang",), "lang", "lang"),
        (("lang",), "&&lang=en&&", "lang=en"),
        (("lang",), "", None),
        (("ip",), "ip=198.51.100.23", "ip=198.51.100.0"),  # kept values have IPs struck
        (("ip",), "ip=2001%3Adb8%3A85a3%3A%3A9", "ip=2001:db8:85a3::"),
    ],
)
def test_allowlist_table(allow: tuple, query: str, kept: str | None) -> None:
    assert Query(allow, strike=LiteralMasker(Masker()).mask).filter(query) == kept


@given(st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), st.text(max_size=8)))
def test_only_allowed_names_survive(params: dict[str, str]) -> None:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    kept = Query(("lang", "quality")).filter(query)
    if kept is not None:
        for pair in kept.split("&"):
            assert pair.partition("=")[0] in ("lang", "quality")
