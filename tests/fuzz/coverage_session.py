"""A bounded coverage-guided fuzzing session (atheris / libFuzzer) on the in-process pipeline.

Not collected by pytest. Run from the project root:

    .venv/bin/python -m tests.fuzz.coverage_session --seconds 240

Each fuzzer input is read as choices (`BytesChooser`) by the same generators as the hypothesis
tests, making a `Case` (lines of one format under one config preset, with planted addresses)
that goes through `check_case` (tests/fuzz/checks.py). The sidecar package is instrumented for
coverage, so libFuzzer keeps inputs that reach new code.

What it keeps, under tests/fuzz/corpus/ (replayed by test_fuzz_corpus.py):
  - `inputs/`: the corpus libFuzzer grew, merged to a minimal set covering the same code at the
    end (`-merge=1`); a file replays only through the generators it was made with.
  - `findings/<signature>.json`: for each distinct violation class (kind, channel, preset,
    field/notation), the smallest case that showed it, as lines + planted identities: these
    replay as they are, whatever becomes of the generators.
A violation is recorded, not raised, so one known leak does not end the session.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["sidecar"]):
    import sidecar.pipeline  # noqa: F401

from tests.fuzz.checks import check_case, signature
from tests.fuzz.strategies import BytesChooser, make_case

CORPUS = Path(__file__).parent / "corpus"
INPUTS = CORPUS / "inputs"
FINDINGS = CORPUS / "findings"


def _finding_path(sig: str) -> Path:
    digest = hashlib.sha1(sig.encode()).hexdigest()[:10]
    readable = sig.split("|")[0] + "-" + sig.split("|")[1].replace(":", "_")
    return FINDINGS / f"{readable}-{digest}.json"


def record(case, violations) -> None:
    for v in violations:
        sig = signature(case, v)
        path = _finding_path(sig)
        doc = {"signature": sig, "violation": str(v), **case.as_json()}
        size = sum(len(line) for line in case.lines)
        if path.exists():
            old = json.loads(path.read_text())
            if sum(len(line) for line in old["lines"]) <= size:
                continue
        path.write_text(json.dumps(doc, indent=1) + "\n")


def test_one_input(data: bytes) -> None:
    case = make_case(BytesChooser(data))
    violations = check_case(case)
    if violations:
        record(case, violations)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=240, help="fuzzing time (default 240)")
    ap.add_argument("--merge-only", action="store_true", help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args()
    INPUTS.mkdir(parents=True, exist_ok=True)
    FINDINGS.mkdir(parents=True, exist_ok=True)
    if not args.merge_only:
        grown = Path(tempfile.mkdtemp(prefix="sidecar-fuzz-"))
        for f in INPUTS.iterdir():
            shutil.copy(f, grown / f.name)
        # fuzz in a child, so that the merge below runs in a fresh process
        cmd = [
            sys.executable,
            "-m",
            "tests.fuzz.coverage_session",
            "--merge-only",
            f"-max_total_time={args.seconds}",
            "-max_len=512",
            "-rss_limit_mb=2048",
            "-timeout=10",
            str(grown),
        ]
        subprocess.run(cmd, check=False, env={**os.environ, "SIDECAR_FUZZ": "run"})
        # keep a minimal set with the same coverage
        merged = Path(tempfile.mkdtemp(prefix="sidecar-fuzz-merged-"))
        cmd = [sys.executable, "-m", "tests.fuzz.coverage_session", "--merge-only", "-merge=1"]
        subprocess.run([*cmd, str(merged), str(grown)], check=False, env=dict(os.environ))
        for f in INPUTS.iterdir():
            f.unlink()
        for f in merged.iterdir():
            shutil.copy(f, INPUTS / f.name)
        shutil.rmtree(grown)
        shutil.rmtree(merged)
        print(
            f"corpus: {len(list(INPUTS.iterdir()))} inputs; findings: {len(list(FINDINGS.iterdir()))}"
        )
        return 0
    # libFuzzer runs argv[0] through the shell for -merge: make it this module's command line
    self_cmd = f"{sys.executable} -m tests.fuzz.coverage_session --merge-only"
    atheris.Setup([self_cmd, *rest], test_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
