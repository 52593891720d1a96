"""Hypothesis strategies for the parser fuzz tests: any text, and valid lines mutated.

Every format's contract is that `parse(line)` returns a RawRequest or raises Rejected, for any
line: anything else would cost the run (and print the traceback's input). Mutations aim at what
parsers trip on: quotes, brackets, separators, escapes, huge or non-ASCII numbers, deep nesting.
"""

from __future__ import annotations

from hypothesis import strategies as st

from sidecar.formats.base import LineFormat
from sidecar.record import RawRequest
from sidecar.reject import REASONS, Rejected

# pieces inserted or swapped in: single characters and whole troublesome tokens
PIECES = (
    *'"[]{}:,. -+/?#@%\\\t0123456789eE',
    "\x00",
    "\x7f",
    "\u0661",  # ARABIC-INDIC DIGIT ONE: isdigit(), int() reads it
    "\uff11",  # FULLWIDTH DIGIT ONE
    "\u00b2",  # SUPERSCRIPT TWO: isdigit(), int() refuses it
    "\u2028",
    "\\ud800",  # a lone surrogate, as a JSON escape
    "\\u0000",
    "\\n",
    "9" * 30,
    "1e400",
    "-1",
    "nan",
    "inf",
    "[" * 40,
    "[[[",
    "::",
    "[::1",
    "]",
    "http://[2001:db8::1]:80/",
    "2001:db8::1",
    "\u00e9",
)


@st.composite
def mutated(draw: st.DrawFn, valid: tuple[str, ...]) -> str:
    """One of `valid`, with one to six pieces replaced, inserted, dropped or repeated."""
    line = draw(st.sampled_from(valid))
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(line)))
        j = min(len(line), i + draw(st.integers(0, 12)))
        op = draw(st.sampled_from(("replace", "insert", "drop", "repeat")))
        if op == "replace":
            line = line[:i] + draw(st.sampled_from(PIECES)) + line[j:]
        elif op == "insert":
            line = line[:i] + draw(st.sampled_from(PIECES)) + line[i:]
        elif op == "drop":
            line = line[:i] + line[j:]
        else:
            line = line[:i] + line[i:j] * draw(st.integers(2, 50)) + line[j:]
    return line


def lines(valid: tuple[str, ...]) -> st.SearchStrategy[str]:
    """Any text without a newline, or a mutation of a valid line."""
    return st.one_of(st.text().map(lambda t: t.replace("\n", " ")), mutated(valid))


def parses_or_rejects(fmt: LineFormat, line: str) -> None:
    """The contract itself: a RawRequest or Rejected with a known reason, nothing else."""
    try:
        raw = fmt.parse(line)
    except Rejected as rej:
        assert rej.reason in REASONS
        return
    assert isinstance(raw, RawRequest)
    assert isinstance(raw.remote_addr, str) and raw.remote_addr
    assert isinstance(raw.status, int) and 0 <= raw.status <= 999
    assert isinstance(raw.bytes, int) and raw.bytes >= 0
    for name in ("method", "path", "query", "protocol", "referrer", "user_agent", "host"):
        assert getattr(raw, name) is None or isinstance(getattr(raw, name), str)
