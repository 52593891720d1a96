"""pipeline: the whole way of a line (decode, check, parse, scrub, encode), in one process or
in workers; golden files for every format; every Matomo sample log through `sidecar pipe`."""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import ipaddress
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sidecar.formats.registry import resolve
from sidecar.pipeline import UNSTRUCK, ChunkResult, LinePipeline, fit_format, run
from sidecar.privacy.ip import Masker
from sidecar.privacy.stage import PrivacyStage, open_country_lookup
from sidecar.record import FIELDS, CleanRecord, RawRequest
from sidecar.reject import REASONS
from sidecar.sources.files import Chunks, open_input
from tests.conftest import COUNTRY_TEST_DB, MATOMO_LOGS, make_config, run_sidecar
from tests.formats.fuzzing import mutated

GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("SIDECAR_UPDATE_GOLDEN") == "1"

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


def good(ip: str = "81.2.69.160", path: str = "/ok") -> str:
    return f'{ip} - - [24/Nov/2026:10:00:00 +0100] "GET {path} HTTP/1.1" 200 12 "-" "{UA}"'


def _pipeline(
    fmt: str = "combined",
    output: str = "jsonl",
    max_line_bytes: int = 300,
    keep_rejects: bool = False,
) -> LinePipeline:
    config = make_config()
    stage = PrivacyStage(config, open_country_lookup(config, Masker()))
    return LinePipeline(resolve(fmt), stage, output, max_line_bytes, keep_rejects)


def _check_counts(result: ChunkResult) -> None:
    assert result.lines_in == result.records_out + sum(result.rejected.values())
    assert set(result.rejected) <= set(REASONS)
    assert all(n > 0 for n in result.rejected.values())
    assert result.output.count(b"\n") == result.records_out


# --- LinePipeline.process ------------------------------------------------------------------------

# each bad line (but the blank ones) holds 198.51.100.23 and a marker path, to check that it
# never reaches the output and is stored struck
BAD_LINES: list[tuple[bytes, str]] = [
    (b"", "empty"),
    (b"   ", "empty"),
    (b"\t \t", "empty"),
    (b"garbage from 198.51.100.23 /marker-mismatch", "format_mismatch"),
    (good("198.51.100.23", "/marker-nul").replace("GET", "G\0T").encode(), "binary"),
    (good("198.51.100.23", "/marker-esc").encode() + b"\x1b[31m", "binary"),
    (good("198.51.100.23", "/marker-del").encode() + b"\x7f", "binary"),
    (good("198.51.100.23", "/marker-long" + "x" * 400).encode(), "too_long"),
    (b"198.51.100.23 \xff\xfe /marker-utf8 \xc3\x28", "invalid_utf8"),
    (good("198.51.100.23", "/marker-ts").replace("24/Nov", "32/Nov").encode(), "bad_timestamp"),
    (good("198.51.100.23", "/marker-status").replace(" 200 ", " 2x0 ").encode(), "bad_field"),
    (good("-", "/marker-dash-client").encode(), "bad_ip"),
    (good("unknown", "/marker-unknown-client").encode(), "bad_ip"),
    (good("198.51.100.23.5", "/marker-five-part-client").encode(), "bad_ip"),
    (
        b'{"ip":"198.51.100.23","date":"2026-11-24T10:00:00Z","status":200,"p":"/marker-json"}',
        "format_mismatch",
    ),
]


@pytest.mark.parametrize(("line", "reason"), BAD_LINES, ids=[r for _, r in BAD_LINES])
def test_each_bad_line_gets_its_reason(line: bytes, reason: str) -> None:
    chunk = good().encode() + b"\n" + line + b"\n" + good("89.160.20.112").encode() + b"\n"
    result = _pipeline().process(chunk)
    _check_counts(result)
    assert (result.lines_in, result.records_out, result.rejected) == (3, 2, {reason: 1})
    assert b"marker" not in result.output
    assert [orjson.loads(x)["client_ip"] for x in result.output.splitlines()] == [
        "81.2.69.0",
        "89.160.20.0",
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [(line, reason) for line, reason in BAD_LINES if b"198.51.100.23" in line],
    ids=[r for line, r in BAD_LINES if b"198.51.100.23" in line],
)
def test_stored_rejects_have_ips_struck(line: bytes, reason: str) -> None:
    result = _pipeline(keep_rejects=True).process(line + b"\n")
    assert result.rejected == {reason: 1}
    assert len(result.rejects) == 1
    stored = result.rejects[0]
    assert "198.51.100.23" not in stored
    assert "198.51.100.0" in stored
    assert "\n" not in stored and "\0" not in stored and "\x1b" not in stored


def test_stored_rejects_strike_ipv6_and_escape_control_bytes() -> None:
    line = "2001:db8:1:2::3 sent \x00\x1b junk"
    result = _pipeline(keep_rejects=True).process(line.encode() + b"\n")
    assert result.rejects == ["2001:db8:1:: sent \\x00\\x1B junk"]


def test_no_rejects_are_stored_unless_asked() -> None:
    chunk = b"".join(line + b"\n" for line, _ in BAD_LINES)
    result = _pipeline().process(chunk)
    assert result.rejects == []
    assert result.records_out == 0


def test_all_bad_lines_in_one_chunk_add_up() -> None:
    lines = [good().encode()]
    for line, _ in BAD_LINES:
        lines += [line, good().encode()]
    result = _pipeline(keep_rejects=True).process(b"\n".join(lines) + b"\n")
    _check_counts(result)
    assert result.records_out == len(BAD_LINES) + 1
    assert result.rejected == dict(Counter(reason for _, reason in BAD_LINES))
    assert b"marker" not in result.output
    # every rejected line but the empty one is stored (whitespace lines are kept as they were)
    assert len(result.rejects) == len(BAD_LINES) - 1
    assert not any("198.51.100.23" in r for r in result.rejects)


@pytest.mark.parametrize(
    "chunk",
    [
        (good() + "\r\n").encode() * 3,  # CRLF everywhere
        (good() + "\r\n" + good() + "\n" + good() + "\r\n").encode(),  # mixed
    ],
)
def test_crlf_lines_are_read(chunk: bytes) -> None:
    result = _pipeline().process(chunk)
    assert (result.lines_in, result.records_out, result.rejected) == (3, 3, {})


def test_crlf_empty_lines_are_empty() -> None:
    result = _pipeline().process(b"\r\n\r\n" + good().encode() + b"\r\n")
    assert (result.lines_in, result.records_out, result.rejected) == (3, 1, {"empty": 2})


def test_invalid_utf8_only_costs_its_own_line() -> None:
    chunk = good().encode() + b"\n\xff\n" + good().encode() + b"\n\xc3\n"
    result = _pipeline().process(chunk)
    _check_counts(result)
    assert (result.lines_in, result.records_out, result.rejected) == (4, 2, {"invalid_utf8": 2})


def test_utf8_text_is_read() -> None:
    result = _pipeline().process(good(path="/vid\u00e9o/\u65e5\u672c").encode() + b"\n")
    assert orjson.loads(result.output)["path"] == "/vid\u00e9o/\u65e5\u672c"


@pytest.mark.parametrize(
    "extra, reason",
    [
        (0, None),  # exactly max_line_bytes: read
        (1, "too_long"),
    ],
)
def test_too_long_is_counted_in_bytes(extra: int, reason: str | None) -> None:
    line = good(path="/")
    pad = 300 - len(line.encode()) + extra  # \u00e9 is two bytes: count bytes, not characters
    line = good(path="/" + "\u00e9" * (pad // 2) + "e" * (pad % 2))
    assert len(line.encode()) == 300 + extra
    result = _pipeline(max_line_bytes=300).process(line.encode() + b"\n")
    assert result.rejected == ({reason: 1} if reason else {})


def test_no_format_rejects_every_line() -> None:
    config = make_config()
    pipeline = LinePipeline(None, PrivacyStage(config, None))
    result = pipeline.process(good().encode() + b"\n\n")
    assert result.rejected == {"format_mismatch": 1, "empty": 1}
    assert result.output == b""


def test_jsonl_output_is_the_clean_schema() -> None:
    result = _pipeline().process(good().encode() + b"\n")
    record = orjson.loads(result.output)
    assert list(record) == list(FIELDS)
    assert record["client_ip"] == "81.2.69.0" and record["country"] == "GB"


def test_rewrite_output() -> None:
    result = _pipeline(output="rewrite").process(good().encode() + b"\n")
    assert result.output == (
        b'81.2.69.0 - - [24/Nov/2026:09:00:00 +0000] "GET /ok HTTP/1.1" 200 12 "-" '
        b'"Firefox (Linux; desktop)"\n'
    )


@pytest.mark.parametrize("output", ["jsonl", "rewrite"])
def test_absolute_form_query_never_reaches_the_output(output: str) -> None:
    # was: 'GET http://h.example?token=secret HTTP/1.1' put the query into the host field
    line = good(path="http://h.example?token=secret").encode() + b"\n"
    result = _pipeline(fmt="vhost_combined" if output == "rewrite" else "combined", output=output)
    if output == "rewrite":
        line = b"- " + line  # $host "-": the host comes from the request target
    result = result.process(line)
    assert result.records_out == 1
    assert b"secret" not in result.output


# --- one line's failure costs that line only (issue 7, item 11) ------------------------------------


class _Fails(PrivacyStage):
    """A stage whose scrub fails, unforeseen, on a line whose path starts with /boom-KIND."""

    def scrub(self, raw: RawRequest) -> CleanRecord:
        path = raw.path or ""
        if path.startswith("/boom-value"):
            raise ValueError(f"{raw.remote_addr} does not appear to be an address: {path}")
        if path.startswith("/boom-recursion"):
            raise RecursionError("maximum recursion depth exceeded")
        if path.startswith("/boom-key"):
            raise KeyError(raw.remote_addr)
        record = super().scrub(raw)
        if path.startswith("/boom-surrogate"):  # orjson: str is not valid UTF-8: surrogates
            record["path"] = "/\ud800"
        if path.startswith("/boom-type"):
            return object()  # type: ignore[return-value]  # orjson: not JSON serializable
        return record


BOOMS = ["value", "recursion", "key", "surrogate", "type"]


def _failing_pipeline(output: str = "jsonl", summarize=None) -> LinePipeline:
    config = make_config()
    stage = _Fails(config, open_country_lookup(config, Masker()))
    return LinePipeline(resolve("combined"), stage, output, 65536, True, summarize)


@pytest.mark.parametrize("output", ["jsonl", "rewrite"])
def test_an_unexpected_error_costs_its_own_line_only(output: str) -> None:
    lines = []
    for i, kind in enumerate(BOOMS * 3):
        lines += [good(path=f"/ok-{i}"), good("198.51.100.23", f"/boom-{kind}/198.51.100.23")]
    chunk = "\n".join(lines).encode() + b"\n"
    result = _failing_pipeline(output).process(chunk)
    _check_counts(result)
    assert result.rejected == {"internal_error": len(BOOMS) * 3}
    assert result.records_out == len(BOOMS) * 3
    assert b"/ok-14" in result.output and b"boom" not in result.output
    assert len(result.rejects) == len(BOOMS) * 3
    assert not any("198.51.100.23" in r for r in result.rejects)
    assert all("198.51.100.0" in r for r in result.rejects)


def test_an_unexpected_error_is_not_summarized() -> None:
    """A record that fails to encode is not in the chunk's rollup either."""
    lines = [good(path="/ok"), good(path="/boom-surrogate"), good(path="/boom-type"), good()]
    pipeline = _failing_pipeline(summarize=lambda records: [(len(records),)])
    result = pipeline.process("\n".join(lines).encode() + b"\n")
    assert result.rejected == {"internal_error": 2}
    assert result.summary == [(2,)] and result.records_out == 2


def test_an_unexpected_error_through_workers() -> None:
    data = "\n".join(
        good(path=f"/boom-{BOOMS[i % 5]}") if i % 7 == 3 else good(path=f"/ok-{i:04d}")
        for i in range(300)
    ).encode()
    one = _run(_failing_pipeline(), data + b"\n", workers=1)
    two = _run(_failing_pipeline(), data + b"\n", workers=2)
    assert one == two
    assert one[1]["internal_error"] == sum(1 for i in range(300) if i % 7 == 3)


class _FailsToStrike(PrivacyStage):
    """A stage whose uncached strike fails: the rejected line is withheld, never written raw."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)

        def strike(text: str) -> str:
            raise ValueError(text)

        self.literal_masker.strike = strike  # type: ignore[method-assign]


def test_a_failing_strike_withholds_the_rejected_line() -> None:
    stage = _FailsToStrike(make_config(), None)
    pipeline = LinePipeline(resolve("combined"), stage, keep_rejects=True)
    chunk = b"198.51.100.23 junk\n\xff198.51.100.23\n" + good().encode() + b"\n"
    result = pipeline.process(chunk)
    assert result.rejected == {"format_mismatch": 1, "invalid_utf8": 1}
    assert result.rejects == [UNSTRUCK, UNSTRUCK]


REFERRERS_THAT_CRASHED = [
    "[203.0.113.160x]",
    "[::1",
    "a]b",
    "http://[203.0.113.160x]/p",
    "https://[2001:db8::1/x",
    "http://a]b/",
    "//[::1",
]


@pytest.mark.parametrize("referrer", REFERRERS_THAT_CRASHED)
def test_a_referrer_no_rule_foresaw_costs_no_other_line(referrer: str) -> None:
    """`urlsplit` raised ValueError on these (naming the input) outside any guard: the chunk's
    later lines were lost and the traceback printed the address."""
    bad = good("198.51.100.23", "/marker").replace('"-"', f'"{referrer}"', 1)
    chunk = f"{good()}\n{bad}\n{good('89.160.20.112')}\n".encode()
    result = _pipeline(max_line_bytes=65536, keep_rejects=True).process(chunk)
    _check_counts(result)
    assert result.lines_in == 3 and result.records_out >= 2
    assert set(result.rejected) <= {"internal_error"}
    clients = [orjson.loads(x)["client_ip"] for x in result.output.splitlines()]
    assert clients[0] == "81.2.69.0" and clients[-1] == "89.160.20.0"
    written = result.output.decode() + "\n".join(result.rejects)
    assert "198.51.100.23" not in written  # (what the referrer rule keeps is its own test's)


_FUZZ_VALID = (
    good("198.51.100.23", "/v/seg.ts?x=1"),
    good("2001:db8:aa:bb::77", "http://[2001:db8::1]:8080/p").replace(
        '"-"', '"https://r.example/"'
    ),
    '{"ip":"198.51.100.23","date":"2026-11-24T10:00:00+01:00","status":200,"path":"/a"}',
)


@functools.cache
def _fuzzed_pipeline(fmt: str) -> LinePipeline:
    return _pipeline(fmt=fmt, max_line_bytes=65536, keep_rejects=True)


@pytest.mark.parametrize("fmt", ["combined", "nginx-json"])
@given(batch=st.lists(mutated(_FUZZ_VALID), min_size=1, max_size=4))
def test_any_chunk_is_processed_line_by_line(fmt: str, batch: list[str]) -> None:
    """Property: whatever the lines, `process` returns, every line is counted once, and the
    client address written in them is never written back whole."""
    chunk = "".join(line.replace("\n", " ") + "\n" for line in batch).encode()
    result = _fuzzed_pipeline(fmt).process(chunk)
    _check_counts(result)
    assert result.lines_in == len(batch)
    written = result.output.decode() + "\n".join(result.rejects)
    assert _leaked({"198.51.100.23", "2001:db8:aa:bb::77"}, written) == []


# --- rejected UTF-16 lines: no address between NULs (issue 7, item 10) ------------------------------

UTF16_LINES = [
    good("203.0.113.7", "/v/2001:db8:1:2::3/seg.ts?from=192.0.2.99"),
    good("2001:db8:aa:bb::77", "/watch/198.51.100.23"),
]
UTF16_HIDDEN = [
    "203.0.113.7",
    "2001:db8:1:2::3",
    "192.0.2.99",
    "2001:db8:aa:bb::77",
    "198.51.100.23",
]


def _utf16(encoding: str, bom: bool) -> bytes:
    text = "".join(line + "\n" for line in UTF16_LINES)
    data = text.encode(encoding)
    if bom:
        data = ("\ufeff").encode(encoding) + data
    return data


def _visible(stored: str) -> str:
    """A stored reject as a careless reader sees it: escapes and hiding characters dropped."""
    return re.sub(
        r"\\x[0-9A-F]{2}|[\x00-\x1f\x7f-\x9f\xad\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff\ufffd]",
        "",
        stored,
    )


@pytest.mark.parametrize("bom", [False, True], ids=["no-bom", "bom"])
@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_rejects_hold_no_address(encoding: str, bom: bool) -> None:
    result = _pipeline(max_line_bytes=65536, keep_rejects=True).process(_utf16(encoding, bom))
    _check_counts(result)
    assert result.records_out == 0 and result.output == b""
    assert set(result.rejected) <= {"binary", "invalid_utf8", "empty"}
    stored = "\n".join(result.rejects)
    for text in (stored, stored.replace("\0", ""), _visible(stored)):
        assert _leaked(set(UTF16_HIDDEN), text) == [], text
    assert "203.0.113.0" in _visible(stored)  # struck, not dropped


@pytest.mark.parametrize(
    "line",
    [
        "x 1.2.3\x00.4 y",
        "x 1.2.3\ufffd.4 y",
        "x 2001:db8:\u200b1:2::3 y",
        "x 1\x00.\x002\x00.\x003\x00.\x004 y",
        "x 1.2.3.4\x1b[0m y",
    ],
)
def test_an_address_split_by_hiding_characters_is_struck(line: str) -> None:
    stored = _pipeline().strike(line)
    assert _leaked({"1.2.3.4", "2001:db8:1:2::3"}, _visible(stored)) == []


_HIDERS = ["", "", "\x00", "\x00\x00\x00", "\ufffd", "\x1b", "\x7f", "\x85", "\u200b", "\ufeff"]


@functools.cache
def _striker() -> LinePipeline:
    return _pipeline(max_line_bytes=65536)


@given(
    addr=st.ip_addresses(),
    seps=st.lists(st.sampled_from(_HIDERS), min_size=45, max_size=45),
    before=st.sampled_from(["GET /", "", "x=", "\x00"]),
)
def test_no_address_survives_between_hiding_characters(
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address, seps: list[str], before: str
) -> None:
    """Property: whatever characters that vanish on reading stand in an address, the stored
    reject, read without them (or without its escapes), holds no whole address."""
    text = str(addr)
    assume(Masker().mask(addr) != text)
    hidden = "".join(c + sep for c, sep in zip(text, seps, strict=False))
    stored = _striker().strike(before + hidden + " y")
    assert _leaked({text}, _visible(stored)) == []
    assert _leaked({text}, stored.replace("\0", "")) == []


def test_a_reject_without_hidden_addresses_keeps_its_escapes() -> None:
    assert _pipeline().strike("198.51.100.23 \x00\x1b junk") == "198.51.100.0 \\x00\\x1B junk"


def test_utf16_rejects_through_the_command(tmp_path: Path) -> None:
    path = tmp_path / "utf16.log"
    path.write_bytes(_utf16("utf-16-le", True) + _utf16("utf-16-be", False))
    rejects = tmp_path / "rejects.txt"
    proc, stats_path = _pipe("combined", "jsonl", path, tmp_path, "--rejects", str(rejects))
    _assert_no_crash(proc)
    assert proc.stdout == b""
    assert orjson.loads(stats_path.read_bytes())["records_out"] == 0
    stored = rejects.read_bytes().decode("utf-8", "replace")
    assert _leaked(set(UTF16_HIDDEN), _visible(stored)) == []
    assert _leaked(set(UTF16_HIDDEN), stored.replace("\0", "")) == []


# --- workers -------------------------------------------------------------------------------------


def _mixed_input(n: int = 600) -> bytes:
    ips = ["81.2.69.160", "2001:218::1", "89.160.20.112", "192.0.2.7", "2001:db8::9"]
    out = []
    for i in range(n):
        if i % 37 == 5:
            out.append(BAD_LINES[i % len(BAD_LINES)][0])
        else:
            out.append(good(ips[i % len(ips)], f"/seg-{i:05d}.ts?t={i}").encode())
    return b"\n".join(out) + b"\n"


def _run(pipeline: LinePipeline, data: bytes, workers: int) -> tuple[bytes, Counter, list, int]:
    output = bytearray()
    counts: Counter[str] = Counter()
    rejects: list[str] = []
    n_chunks = 0

    def emit(result: ChunkResult) -> None:
        nonlocal n_chunks
        _check_counts(result)
        output.extend(result.output)
        counts.update(result.rejected)
        counts["lines_in"] += result.lines_in
        counts["records_out"] += result.records_out
        rejects.extend(result.rejects)
        n_chunks += 1

    chunks = Chunks([io.BytesIO(data)], pipeline.max_line_bytes, chunk_bytes=1024)
    run(pipeline, chunks, emit, workers=workers)
    return bytes(output), counts, rejects, n_chunks


@pytest.mark.parametrize("output", ["jsonl", "rewrite"])
def test_workers_give_byte_identical_output(output: str) -> None:
    data = _mixed_input()
    one = _run(_pipeline(output=output, keep_rejects=True), data, workers=1)
    two = _run(_pipeline(output=output, keep_rejects=True), data, workers=2)
    assert one[3] > 50  # many chunks, so many in flight at once
    assert two == one
    counts = one[1]
    assert counts["lines_in"] == 600
    assert counts["lines_in"] == counts["records_out"] + sum(
        n for k, n in counts.items() if k in REASONS
    )


def test_workers_keep_input_order() -> None:
    output, *_ = _run(_pipeline(), _mixed_input(), workers=3)
    paths = [orjson.loads(line)["path"] for line in output.splitlines()]
    assert paths == sorted(paths)
    assert len(paths) > 500


# --- through the command line ------------------------------------------------------------------


def test_pipe_counts_every_line(tmp_path: Path) -> None:
    """`sidecar pipe` end to end: lines over input.max_line_bytes (64 KiB) that Chunks skips
    while they stream past are counted too; workers give the same bytes."""
    huge = good("198.51.100.23", "/" + "h" * 70000).encode()
    lines = [good().encode(), huge]
    lines += [line for line, _ in BAD_LINES]
    lines += [good("2001:218::1").encode(), huge]  # the last one without a newline
    path = tmp_path / "in.log"
    path.write_bytes(b"\n".join(lines))
    outs = []
    for workers in ("1", "2"):
        proc, stats_path = _pipe(
            "combined",
            "jsonl",
            path,
            tmp_path,
            "--workers",
            workers,
            "--rejects",
            str(tmp_path / "rejects.txt"),
        )
        _assert_no_crash(proc)
        outs.append(proc.stdout)
        stats = orjson.loads(stats_path.read_bytes())
        expected = Counter(reason for _, reason in BAD_LINES)
        expected["too_long"] = 2  # BAD_LINES' own long line is short of 64 KiB: a record here
        assert stats == {
            "lines_in": len(lines),
            "records_out": 3,
            "rejected": {r: expected[r] for r in REASONS if expected[r]},
        }
        rejects = (tmp_path / "rejects.txt").read_text()
        assert "198.51.100.23" not in rejects and "198.51.100.0" in rejects
    assert outs[0] == outs[1]
    assert [orjson.loads(x)["country"] for x in outs[0].splitlines()] == ["GB", None, "JP"]


# --- golden files ----------------------------------------------------------------------------------

CUSTOM_FORMAT = (
    'log_format cdn \'$remote_addr - $remote_user [$time_local] "$request" $status '
    '$body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" '
    "$request_time $host';"
)
GOLDEN_FORMATS = {
    "common": "common",
    "combined": "combined",
    "vhost_combined": "vhost_combined",
    "vhost_common": "vhost_common",
    "nginx-main": "nginx-main",
    "nginx-json": "nginx-json",
    "custom": CUSTOM_FORMAT,
}
KNOWN_BUGS: dict[tuple[str, str], str] = {}
GOLDEN_RUNS = [(name, output) for name in GOLDEN_FORMATS for output in ("jsonl", "rewrite")]
# --format auto on the built-in formats' logs: jsonl for each, rewrite where detection matters
AUTO_RUNS = [(name, "jsonl") for name in GOLDEN_FORMATS if name != "custom"]
AUTO_RUNS.append(("nginx-json", "rewrite"))


def _assert_no_crash(proc: subprocess.CompletedProcess[bytes]) -> None:
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr


def test_pipe_closes_its_input_files() -> None:
    proc = run_sidecar("pipe", "--geoip", "", "--format", "common", str(GOLDEN / "common.log"))
    assert proc.returncode == 0
    assert b"ResourceWarning" not in proc.stderr
    assert b"Traceback" not in proc.stderr


Run = tuple[subprocess.CompletedProcess[bytes], Path]  # the process, its --stats file


def _pipe(fmt: str, output: str, path: Path, workdir: Path, *more: str) -> Run:
    stats = workdir / "stats.json"
    proc = run_sidecar(
        "pipe",
        "--geoip",
        str(COUNTRY_TEST_DB),
        "--format",
        fmt,
        "--output",
        output,
        "--stats",
        str(stats),
        *more,
        str(path),
    )
    return proc, stats


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    """Runs `sidecar pipe` processes side by side: each takes ~0.4 s, mostly starting up."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as executor:
        yield executor


@pytest.fixture(scope="module")
def golden_runs(
    pool: ThreadPoolExecutor, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str, str], Future[Run]]:
    runs = {}
    for name, output in GOLDEN_RUNS:
        runs[name, output, "named"] = pool.submit(
            _pipe,
            GOLDEN_FORMATS[name],
            output,
            GOLDEN / f"{name}.log",
            tmp_path_factory.mktemp("golden"),
        )
    for name, output in AUTO_RUNS:
        runs[name, output, "auto"] = pool.submit(
            _pipe, "auto", output, GOLDEN / f"{name}.log", tmp_path_factory.mktemp("golden")
        )
    return runs


def _golden_param(name: str, output: str, bugs: dict[tuple[str, str], str]):
    bug = bugs.get((name, output))
    marks = [pytest.mark.xfail(strict=True, raises=AssertionError, reason=bug)] if bug else []
    return pytest.param(name, output, marks=marks, id=f"{name}-{output}")


@pytest.mark.parametrize(
    ("name", "output"), [_golden_param(n, o, KNOWN_BUGS) for n, o in GOLDEN_RUNS]
)
def test_golden(name: str, output: str, golden_runs: dict) -> None:
    """Set SIDECAR_UPDATE_GOLDEN=1 to rewrite the expected files, then read every line."""
    proc, stats_path = golden_runs[name, output, "named"].result()
    _assert_no_crash(proc)
    log = GOLDEN / f"{name}.log"
    expected = GOLDEN / f"{name}.{output}"
    if UPDATE_GOLDEN and (name, output) not in KNOWN_BUGS:
        expected.write_bytes(proc.stdout)
    assert proc.stdout.decode() == expected.read_text()
    n = len(log.read_bytes().splitlines())
    stats = orjson.loads(stats_path.read_bytes())
    assert stats == {"lines_in": n, "records_out": n, "rejected": {}}


@pytest.mark.parametrize(("name", "output"), [_golden_param(n, o, {}) for n, o in AUTO_RUNS])
def test_golden_with_format_auto(name: str, output: str, golden_runs: dict) -> None:
    """Detection picks each built-in format from its golden log: the same output."""
    proc, _ = golden_runs[name, output, "auto"].result()
    _assert_no_crash(proc)
    assert proc.stdout.decode() == (GOLDEN / f"{name}.{output}").read_text()


# --- every Matomo sample log -------------------------------------------------------------------------

MATOMO_FILES = sorted(p for p in MATOMO_LOGS.iterdir() if p.is_file() and p.suffix != ".md")
_V4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d])")
_V6 = re.compile(r"(?<![0-9A-Fa-f:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Fa-f:])")


def _read_any(path: Path) -> str:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    elif data[:3] == b"BZh":
        data = bz2.decompress(data)
    return data.decode("utf-8", "replace")


def _client_ips(text: str) -> set[str]:
    """Every IP address written in the input whose struck form differs from it."""
    masker = Masker()
    found = set()
    for token in _V4.findall(text) + _V6.findall(text):
        try:
            addr = ipaddress.ip_address(token)
        except ValueError:
            continue
        if masker.mask(addr) != str(addr):
            found.add(token)
    return found


def _leaked(ips: set[str], text: str) -> list[str]:
    leaked = []
    for ip in sorted(ips):
        if ":" in ip:
            pattern = rf"(?<![0-9A-Fa-f:]){re.escape(ip)}(?![0-9A-Fa-f:])"
        else:
            pattern = rf"(?<![\d.]){re.escape(ip)}(?![\d])"
        if re.search(pattern, text, re.IGNORECASE):
            leaked.append(ip)
    return leaked


@pytest.mark.parametrize(
    "ips, text, leaked",
    [
        ({"1.2.3.4"}, "client 1.2.3.0 path /1.2.3.04x", []),
        ({"1.2.3.4"}, '"1.2.3.4"', ["1.2.3.4"]),
        ({"1.2.3.4"}, "1.2.3.4:80", ["1.2.3.4"]),
        ({"1.2.3.4"}, "11.2.3.45", []),
        ({"2001:db8::1"}, "2001:db8:: and 2001:db8::10", []),
        ({"2001:db8::1"}, "[2001:DB8::1]", ["2001:db8::1"]),
    ],
)
def test_the_leak_check_itself(ips: set[str], text: str, leaked: list[str]) -> None:
    assert _leaked(ips, text) == leaked


def test_matomo_samples_are_all_there() -> None:
    names = {p.name for p in MATOMO_FILES}
    assert len(MATOMO_FILES) >= 28
    assert {"common.log", "common.log.gz", "common.log.bz2", "nginx_json.log"} <= names
    assert "1.2.3.4" in _client_ips(_read_any(MATOMO_LOGS / "common.log"))


@pytest.fixture(scope="module")
def matomo_runs(
    pool: ThreadPoolExecutor, tmp_path_factory: pytest.TempPathFactory
) -> dict[Path, tuple[Future[Run], Path]]:
    runs = {}
    for path in MATOMO_FILES:
        workdir = tmp_path_factory.mktemp("matomo")
        rejects = workdir / "rejects.txt"
        future = pool.submit(_pipe, "auto", "jsonl", path, workdir, "--rejects", str(rejects))
        runs[path] = (future, rejects)
    return runs


@pytest.mark.parametrize("path", MATOMO_FILES, ids=[p.name for p in MATOMO_FILES])
def test_matomo_sample(path: Path, matomo_runs: dict) -> None:
    """`sidecar pipe --geoip --stats --rejects` on each sample: exit 0, no crash, counters add
    up, and no client IP of the input in the output or the stored rejects, unstruck."""
    future, rejects_path = matomo_runs[path]
    proc, stats_path = future.result()
    _assert_no_crash(proc)
    stats = orjson.loads(stats_path.read_bytes())
    assert stats["lines_in"] == stats["records_out"] + sum(stats["rejected"].values())
    assert set(stats["rejected"]) <= set(REASONS)
    assert stats["lines_in"] > 0
    assert proc.stdout.count(b"\n") == stats["records_out"]
    for line in proc.stdout.splitlines():
        assert list(orjson.loads(line)) == list(FIELDS)
    written = proc.stdout.decode() + rejects_path.read_text()
    assert _leaked(_client_ips(_read_any(path)), written) == []


@pytest.fixture(scope="module")
def rewrite_stage() -> PrivacyStage:
    config = make_config()
    return PrivacyStage(config, open_country_lookup(config, Masker()))


@pytest.mark.parametrize("path", MATOMO_FILES, ids=[p.name for p in MATOMO_FILES])
def test_matomo_sample_rewrite_in_process(path: Path, rewrite_stage: PrivacyStage) -> None:
    """The same files, rewritten (as `sidecar pipe --output rewrite` does, in this process)."""
    with open_input(str(path)) as stream:
        chunks = list(Chunks([stream], 65536))
    fmt = fit_format(None, chunks[0]) if chunks else None
    pipeline = LinePipeline(fmt, rewrite_stage, "rewrite", 65536, keep_rejects=True)
    results = [pipeline.process(chunk) for chunk in chunks]
    for result in results:
        _check_counts(result)
    written = "".join(r.output.decode() + "\n".join(r.rejects) for r in results)
    assert _leaked(_client_ips(_read_any(path)), written) == []
    if fmt is not None and any(r.records_out for r in results):
        # the rewritten lines are read again by the same format, to the same clients
        again = pipeline.process(b"".join(r.output for r in results))
        assert again.rejected == {}
