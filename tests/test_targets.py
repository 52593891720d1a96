"""sidecar.targets: request targets and Host values, read alike by log parsers and proxy."""

from __future__ import annotations

import pytest

from sidecar.targets import host_of, split_target


@pytest.mark.parametrize(
    "target, parts",
    [
        ("/a?b", (None, "/a", "b")),
        ("/a", (None, "/a", None)),
        ("*", (None, "*", None)),
        ("http://h/x", ("h", "/x", None)),
        ("HTTP://H/x", ("h", "/x", None)),
        ("http://user@h/x?y#z", ("h", "/x", "y")),
        ("http://", (None, "/", None)),
        ("/#x", (None, "/", None)),
        ("/?#x", (None, "/", None)),
        ("h/x", (None, None, None)),  # no leading slash, no scheme
        ("#x", (None, None, None)),
        ("", (None, None, None)),
    ],
)
def test_split_target(target: str, parts: tuple) -> None:
    assert split_target(target) == parts


@pytest.mark.parametrize(
    "target, parts",
    [
        # the query of an absolute URI without a path was kept in the host, past the allowlist
        ("http://h.example?tok=secret", ("h.example", "/", "tok=secret")),
        ("http://h.example#frag", ("h.example", "/", None)),
        ("http://u@h.example?a=1#b", ("h.example", "/", "a=1")),
    ],
)
def test_split_target_absolute_without_path(target: str, parts: tuple) -> None:
    assert split_target(target) == parts


@pytest.mark.parametrize(
    "target, host",
    [  # the port was kept ('host.example:8080'), while $host values have it stripped
        ("http://host.example:8080/p", "host.example"),
        ("http://[2001:db8::1]:8080/p", "[2001:db8::1]"),
        ("http://[2001:DB8::1]", "[2001:db8::1]"),  # no path
        ("http://u:pw@[2001:db8::1]:80?x=1", "[2001:db8::1]"),
        ("https://[::ffff:192.0.2.1]:443#f", "[::ffff:192.0.2.1]"),
        # unbracketed: an IPv6 literal kept whole (was "2001", the address past the strike)
        ("http://2001:db8::1/p", "2001:db8::1"),
        ("http://[2001:db8::1/p", None),  # unbalanced bracket: no host
    ],
)
def test_split_target_absolute_drops_port(target: str, host: str) -> None:
    assert split_target(target)[0] == host


@pytest.mark.parametrize(
    "value, host",
    [
        ("video.example.com", "video.example.com"),
        ("Video.Example.COM.", "video.example.com"),  # lower case, no trailing dot
        ("video.example.com:443", "video.example.com"),  # no port
        ("[2001:db8::5]:443", "[2001:db8::5]"),
        ("[2001:DB8::5]", "[2001:db8::5]"),
        ("[2001:db8::5", None),  # unbalanced bracket
        # two colons or more, no brackets: an IPv6 literal, kept whole for the strike
        # (it was cut at its first colon to "2001", a host name the privacy stage let pass)
        ("2001:DB8::5", "2001:db8::5"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6"),
        ("::1", "::1"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        (":80", None),
        (".", None),
        # no value: a missing header, an empty one, a log's dash
        (None, None),
        ("", None),
        ("-", None),
    ],
)
def test_host_of(value: str | None, host: str | None) -> None:
    assert host_of(value) == host


def test_an_absolute_uri_host_reads_as_host_of_reads_a_host_value() -> None:
    for authority in ("H.example:8080", "[2001:DB8::1]:80", "2001:db8::1", "-", "h.example."):
        assert split_target(f"http://{authority}/p")[0] == host_of(authority)
