"""Beacon rule: a player beacon's payload, cut to the keys `beacon.allow` names, as a query.

A request whose (cleaned) path is one of `beacon.paths` is a beacon (nginx/ answers it with 204
and logs its query and `$request_body`). Its payload is the pairs of its query string and of its
body: a form body (`a=1&b=2`) or a JSON object (top-level keys with a string, number or boolean
value; nested objects and arrays, null, a body that is no object or does not parse give
nothing). Only the keys `beacon.allow` names survive (exact names, a trailing `*` a prefix, as
`[query] allow`, whose parsed list this rule reuses); nothing else of the body is ever kept.

The kept pairs become one query string in a form that does not depend on how the player sent
them: names and values decoded once (`+` is a space), sorted by name (pairs of one name keep
their order, the query's before the body's), and percent-encoded again, so `media=a+b` in a GET,
`media=a%20b` in a form and `{"media": "a b"}` all give `media=a%20b`.

Free text is struck by the record factory (privacy.clean) as every query is. That scrubber
decodes a text to a fixed point and, when it struck an address, encodes it again leaving `&`
and `=` bare, which could split one kept value into pairs whose names are not allowed
(`e=203.0.113.7%26secret%3Dx`). So each pair is put through the same scrubber here (`strike`)
and kept only once it is a fixed point of it with its name unchanged and no `&`: the factory's
pass over the whole query then changes nothing. The work is bounded: a query or body longer
than `max_payload_bytes` (8 KiB, nginx/'s `client_max_body_size`) is not parsed, and pairs are
kept up to `max_chars` characters in all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import quote, unquote_plus

import orjson

from sidecar.privacy.query import Query

#: the longest query or body parsed, in UTF-8 bytes
MAX_PAYLOAD_BYTES = 8192
#: the longest payload kept, in characters (the record factory's free-text bound)
MAX_PAYLOAD_CHARS = 8192
#: characters left bare in a kept name or value, besides letters, digits and `_.-~`
_SAFE = ":/,@!$'()*"
# what quote() leaves as it is (letters, digits, `_.-~` and _SAFE): such text skips it
_PLAIN = re.compile(r"[A-Za-z0-9_.\-~:/,@!$'()*]*")
_SETTLE_ROUNDS = 3


def _too_long(text: str, limit: int) -> bool:
    if len(text) > limit:
        return True
    return not text.isascii() and len(text.encode("utf-8", "surrogatepass")) > limit


def form_pairs(text: str) -> Iterator[tuple[str, str]]:
    """`a=1&b=x+y` -> ("a", "1"), ("b", "x y"): names and values percent-decoded once."""
    for part in text.split("&"):
        if part:
            name, _, value = part.partition("=")
            if "%" not in part and "+" not in part:  # nothing to decode (most beacons)
                yield name, value
            else:
                yield unquote_plus(name, errors="replace"), unquote_plus(value, errors="replace")


def json_pairs(text: str) -> list[tuple[str, str]]:
    """The top-level keys of a JSON object with a scalar value (null excepted), as text:
    strings as they are, numbers and booleans as JSON writes them. [] for anything else."""
    try:
        obj = orjson.loads(text)
    except (ValueError, TypeError, RecursionError):  # orjson.JSONDecodeError is a ValueError
        return []
    if not isinstance(obj, dict):
        return []
    pairs = []
    for key, value in obj.items():
        if isinstance(value, str):
            pairs.append((key, value))
        elif isinstance(value, bool | int | float):
            pairs.append((key, orjson.dumps(value).decode()))
    return pairs


def encode_pair(name: str, value: str) -> str:
    """One kept pair as the query holds it: `name=value`, both percent-encoded (UTF-8)."""
    return f"{_encoded(name)}={_encoded(value)}"


def _encoded(text: str) -> str:
    if (text.isascii() and text.isalnum()) or _PLAIN.fullmatch(text):  # what quote() keeps
        return text
    return quote(text, safe=_SAFE, errors="surrogatepass")


class Beacon:
    """Rule: `is_beacon(path)`; `payload(query, body)` -> the allowlisted pairs, or None."""

    def __init__(
        self,
        paths: Sequence[str],
        allow: Sequence[str],
        strike: Callable[[str], str] = str,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        max_chars: int = MAX_PAYLOAD_CHARS,
    ) -> None:
        self.paths = frozenset(paths)
        self.rule = Query(allow)  # the allowlist, parsed as [query] allow is
        self.strike = strike  # the record factory's free-text scrubber
        self.max_payload_bytes = max_payload_bytes
        self.max_chars = max_chars

    def is_beacon(self, path: str | None) -> bool:
        return path in self.paths

    def allowed(self, name: str) -> bool:
        """Whether a decoded name is on the list as it is. Not decoded a second time (as
        `Query.allowed` does for names seen encoded): the name is stored encoded once, and
        decoded once it must read as an allowed name."""
        rule = self.rule
        return name in rule.exact or (bool(rule.prefixes) and name.startswith(rule.prefixes))

    def pairs(self, query: str | None, body: str | None) -> list[tuple[str, str]]:
        """The payload's decoded (name, value) pairs, query first, allowed or not."""
        limit = self.max_payload_bytes
        pairs: list[tuple[str, str]] = []
        if query and not _too_long(query, limit):
            pairs.extend(form_pairs(query))
        if body and not _too_long(body, limit):
            text = body.strip()
            if text[:1] == "{":
                pairs.extend(json_pairs(text))
            elif text[:1] != "[":  # a JSON array, any other JSON: nothing
                pairs.extend(form_pairs(text))
        return pairs

    def payload(self, query: str | None, body: str | None) -> str | None:
        """The allowlisted pairs of a beacon's query and body as one query string, or None."""
        if not self.rule.enabled or not (query or body):
            return None
        kept = sorted(
            ((n, v) for n, v in self.pairs(query, body) if self.allowed(n)), key=lambda p: p[0]
        )
        if not kept:
            return None
        whole = "&".join([encode_pair(n, v) for n, v in kept])
        if len(whole) <= self.max_chars and self.strike(whole) == whole:
            return whole  # nothing to strike (most beacons): every pair is settled as it is
        out: list[str] = []
        size = -1
        for name, value in kept:
            pair = self._settled(encode_pair(name, value))
            if pair is None or size + 1 + len(pair) > self.max_chars:
                continue
            out.append(pair)
            size += 1 + len(pair)
        return "&".join(out) if out else None

    def _settled(self, pair: str) -> str | None:
        """The pair once the scrubber leaves it as it is, or None when striking it changes its
        name or splits it (see the module's docstring)."""
        head = pair[: pair.index("=") + 1]
        for _ in range(_SETTLE_ROUNDS):
            struck = self.strike(pair)
            if struck == pair:
                return pair
            if not struck.startswith(head) or "&" in struck:
                return None
            pair = struck
        return None
