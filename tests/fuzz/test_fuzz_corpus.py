"""The coverage-guided session's corpus as regression tests (tests/fuzz/coverage_session.py).

- `corpus/findings/*.json`: each violation class the session found, its smallest case, replayed
  as stored (lines, format, preset, planted identities).
- `corpus/inputs/*`: the minimized fuzzer corpus, replayed through the generators.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fuzz.checks import check_case
from tests.fuzz.strategies import BytesChooser, Case, make_case

CORPUS = Path(__file__).parent / "corpus"
FINDINGS = sorted((CORPUS / "findings").glob("*.json"))
INPUTS = sorted(p for p in (CORPUS / "inputs").glob("*") if p.is_file())


def _report(case: Case, violations: list) -> str:
    return "\n".join([*map(str, violations[:5]), f"notes: {case.notes}", *map(repr, case.lines)])


@pytest.mark.parametrize("path", FINDINGS, ids=lambda p: p.stem)
def test_finding(path: Path) -> None:
    case = Case.from_json(json.loads(path.read_text()))
    violations = check_case(case)
    assert not violations, _report(case, violations)


def test_corpus_inputs() -> None:
    assert INPUTS, "the corpus is empty: run tests/fuzz/coverage_session.py"
    failing = []
    for path in INPUTS:
        case = make_case(BytesChooser(path.read_bytes()))
        violations = check_case(case)
        if violations:
            failing.append(f"{path.name}: {violations[0]} ({case.notes})")
    assert not failing, f"{len(failing)} of {len(INPUTS)} inputs:\n" + "\n".join(failing[:20])
