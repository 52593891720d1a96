"""`--format auto`: the built-in format that reads most of the first lines that parse.

Detection looks past lines no format reads (a health check, a blank line, a banner): it samples
the first SAMPLE_LINES lines some candidate reads, among at most EXAMINED_LINES lines. On a
stream, it reads on while nothing has matched yet, up to DETECT_CHUNKS chunks (a live pipe may
deliver one junk line, a pause, then the log). It never raises: a candidate that fails in any
way on a line has simply not read it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence

from sidecar.formats.base import LineFormat
from sidecar.formats.clf import clf_format
from sidecar.formats.nginx_json import JsonFormat
from sidecar.reject import Rejected

# most specific first: a line read by two formats goes to the earlier one
CANDIDATES: tuple[str, ...] = ("nginx-main", "combined", "vhost_combined", "vhost_common", "common")
SAMPLE_LINES = 50  # lines some candidate reads, voting for the format
EXAMINED_LINES = 1000  # non-blank lines looked at, at most, matched or not
DETECT_CHUNKS = 16  # chunks read ahead, at most, while nothing has matched
# a line of the right shape with one bad value still votes for its format
_SHAPED = ("bad_timestamp", "bad_ip", "bad_field")


def _votes(fmt: LineFormat, line: str) -> bool:
    """Does `fmt` read this line (or see its shape)? Any failure of the parser is a no."""
    try:
        fmt.parse(line)
    except Rejected as rej:
        return rej.reason in _SHAPED
    except Exception:  # detection must never stop a run (an OverflowError, an OSError)
        return False
    return True


def _json_candidate(lines: Iterable[str]) -> JsonFormat | None:
    """A JSON format with the keys of the first JSON object line that gives some."""
    for line in itertools.islice((ln for ln in lines if ln.startswith("{")), SAMPLE_LINES):
        try:
            return JsonFormat().learn_keys(line)
        except Exception:  # a broken object is no candidate: try the next one
            continue
    return None


def detect(lines: Sequence[str], formats: Sequence[LineFormat] | None = None) -> LineFormat | None:
    """The best format for these lines, or None when no candidate reads any of them.

    The candidates are `formats`, most specific first, else the built-in ones (a JSON format
    with the keys of the first object line, then CANDIDATES)."""
    examined = [ln for ln in lines if ln.strip()][:EXAMINED_LINES]
    if not examined or (formats is not None and not formats):
        return None
    if formats is not None:
        candidates = list(formats)
    else:
        candidates = [clf_format(n) for n in CANDIDATES]
        json_format = _json_candidate(examined)
        if json_format is not None:
            candidates.insert(0, json_format)
    scores = [0] * len(candidates)
    sampled = 0
    for line in examined:
        votes = [_votes(fmt, line) for fmt in candidates]
        if not any(votes):
            continue  # a line no format reads does not count towards the sample
        scores = [s + v for s, v in zip(scores, votes, strict=True)]
        sampled += 1
        if sampled >= SAMPLE_LINES:
            break
    best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
    return candidates[best] if scores[best] > 0 else None


def _lines(chunk: bytes) -> list[str]:
    return [ln.rstrip("\r") for ln in chunk.decode("utf-8", "replace").split("\n")]


def fit_format(fmt: LineFormat | None, first_chunk: bytes) -> LineFormat | None:
    """The format to read the input with, from its first chunk: detected when `fmt` is None
    (auto); a JSON format named without its keys learns them from the first object, so that
    `--output rewrite` writes the input's own keys back."""
    lines = _lines(first_chunk)
    if fmt is None:
        return detect(lines)
    if isinstance(fmt, JsonFormat) and not fmt.keys:
        return _json_candidate(lines) or fmt
    return fmt


def fit_stream(
    fmt: LineFormat | None, chunks: Iterable[bytes]
) -> tuple[LineFormat | None, Iterator[bytes], bool]:
    """`fit_format` on a stream: (the format, the same chunks from the start, any input?).

    While no format has matched, further chunks are read (at most DETECT_CHUNKS) and detection
    runs again on the lines seen so far; the chunks read are handed back in front."""
    stream = iter(chunks)
    seen: list[bytes] = []
    lines: list[str] = []
    fitted = None
    for chunk in stream:
        seen.append(chunk)
        if fmt is not None:
            fitted = fit_format(fmt, chunk)
            break
        if len(lines) < EXAMINED_LINES:
            lines += [ln for ln in _lines(chunk) if ln.strip()][: EXAMINED_LINES - len(lines)]
            fitted = detect(lines)
        if fitted is not None or len(seen) >= DETECT_CHUNKS or len(lines) >= EXAMINED_LINES:
            break
    return fitted, itertools.chain(seen, stream), bool(seen)
