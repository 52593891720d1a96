"""A read-only checkout of an older revision, for benchmarks that compare against it.

`baseline_tree(rev)` adds a detached `git worktree` of `rev` in a temporary directory and
removes it on exit. The benchmarks run the current venv's Python on it with `PYTHONPATH` set to
the tree (and its working directory in the tree): the venv's editable install of sidecar is a
meta-path finder placed after the ordinary path search, so `import sidecar` finds the tree's
package first. `check_imports` proves it before anything is timed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def short(rev: str) -> str:
    return git("rev-parse", "--short", rev)


def env_for(tree: Path) -> dict[str, str]:
    """The environment that makes `import sidecar` load the package of `tree`."""
    return {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}


def check_imports(tree: Path) -> None:
    """Fail unless the venv's Python, with `env_for(tree)`, imports sidecar from `tree`."""
    done = subprocess.run(
        [sys.executable, "-c", "import sidecar; print(sidecar.__file__)"],
        cwd=tree, env=env_for(tree), capture_output=True, text=True, check=False,
    )  # fmt: skip
    where = done.stdout.strip()
    if done.returncode != 0 or not Path(where).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"sidecar for {tree} imports from {where!r}: {done.stderr.strip()}")


@contextlib.contextmanager
def baseline_tree(rev: str) -> Iterator[Path]:
    """A worktree of `rev` (detached, in /tmp), removed afterwards."""
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    scratch = Path(tempfile.mkdtemp(prefix=f"sidecar-{commit[:7]}-"))
    tree = scratch / "tree"
    git("worktree", "add", "--detach", "--quiet", str(tree), commit)
    try:
        check_imports(tree)
        yield tree
    finally:
        with contextlib.suppress(SystemExit):
            git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(scratch, ignore_errors=True)
