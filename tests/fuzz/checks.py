"""The checks every fuzz case goes through, in process: shared by the hypothesis tests, the corpus
replay and the coverage-guided session (tests/fuzz/coverage_session.py).

`check_case(case)` runs the case's chunk through a real `LinePipeline` (a `PrivacyStage` from a
real Config and the test country database), once with `jsonl` and once with `rewrite` output,
with rejected lines kept, and returns every `Violation`: a planted address that survives in an
output (oracle), a broken counter invariant, or an exception.
"""

from __future__ import annotations

import functools
import traceback
from dataclasses import dataclass

import orjson

from sidecar.formats.registry import resolve
from sidecar.pipeline import ChunkResult, LinePipeline, fit_format
from sidecar.privacy.stage import PrivacyStage, open_country_lookup
from tests.conftest import make_config
from tests.fuzz.oracle import Identity, leaks
from tests.fuzz.strategies import PRESETS, Case

HOST_KEYS = ("host", "referrer_host")
MAX_LINE_BYTES = 65536


@dataclass
class Violation:
    kind: str  # leak, counters, crash
    channel: str  # jsonl:<key>, rewrite, rejects, ...
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} in {self.channel}: {self.detail}"


@functools.cache
def stage(preset: str) -> PrivacyStage:
    config = make_config(**PRESETS[preset])
    return PrivacyStage(config, open_country_lookup(config))


@functools.cache
def pipeline(preset: str, fmt: str, output: str) -> LinePipeline:
    return LinePipeline(resolve(fmt), stage(preset), output, MAX_LINE_BYTES, keep_rejects=True)


def text_leaks(
    channel: str, text: str, identities: list[Identity], host: bool = False
) -> list[Violation]:
    found = leaks(text, identities, host=host)
    if not found:
        return []
    reading, bits = found[0]
    excerpt = text if len(text) <= 300 else text[:300] + "..."
    return [
        Violation(
            "leak",
            channel,
            f"{reading.how} reading {reading.text!r} reveals {bits} bits in {excerpt!r}",
        )
    ]


def jsonl_leaks(channel: str, line: str, identities: list[Identity]) -> list[Violation]:
    """A JSON line: the raw text as free text, and every string value (host keys as hosts)."""
    out = text_leaks(channel, line, identities)
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return [*out, Violation("crash", channel, f"not JSON: {line[:200]!r}")]
    if not isinstance(record, dict):
        return out
    for key, value in record.items():
        if isinstance(value, str):
            out += text_leaks(f"{channel}:{key}", value, identities, host=key in HOST_KEYS)
    return out


def counters(channel: str, result: ChunkResult, n_lines: int) -> list[Violation]:
    out = []
    total = result.records_out + sum(result.rejected.values())
    if result.lines_in != n_lines or result.lines_in != total:
        out.append(
            Violation(
                "counters",
                channel,
                f"{n_lines} lines fed, lines_in={result.lines_in}, "
                f"records_out={result.records_out}, rejected={result.rejected}",
            )
        )
    if result.output.count(b"\n") != result.records_out:
        out.append(Violation("counters", channel, "output lines != records_out"))
    return out


def check_case(case: Case) -> list[Violation]:
    violations: list[Violation] = []
    chunk = case.chunk()
    records = {}
    for output in ("jsonl", "rewrite"):
        try:
            p = pipeline(case.preset, case.fmt, output)
            fmt = fit_format(p.fmt, chunk)
            if fmt is not p.fmt:  # a JSON format learns its keys from the first line
                p = LinePipeline(fmt, p.stage, output, MAX_LINE_BYTES, keep_rejects=True)
            result = p.process(chunk)
        except Exception as exc:
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            return [*violations, Violation("crash", output, tb)]
        violations += counters(output, result, len(case.lines))
        records[output] = result.records_out
        text = result.output.decode("utf-8", "replace")
        for line in text.splitlines():
            if output == "jsonl":
                violations += jsonl_leaks("jsonl", line, case.identities)
            else:
                violations += text_leaks("rewrite", line, case.identities)
        for rejected in result.rejects:
            violations += text_leaks("rejects", rejected, case.identities)
    if records.get("jsonl") != records.get("rewrite"):
        violations.append(Violation("counters", "rewrite", f"records differ: {records}"))
    return violations


def signature(case: Case, violation: Violation) -> str:
    """What a finding is, for deduplication: kind, channel, and the planted field/notation."""
    notes = ",".join(sorted({n.split(":pct")[0] for n in case.notes}))
    channel = violation.channel.split(":")[0] if violation.kind != "leak" else violation.channel
    return f"{violation.kind}|{channel}|{case.preset}|{notes}"
