"""An older commit run beside this tree in the same benchmark: the same-run ratio.

Used by ``bench/run.py simulation --against REV`` (`simulation.py`). Absolute
times on these shared VMs move 1.2x from session to session and 2-4x with
load; the same command run alternately on this code and on REV, in one
sitting, moves with neither. `checkout` puts REV in a throw-away ``git
worktree`` under a temporary directory, removed afterwards whatever happens
(an error, Ctrl-C); `timed` runs one whole process with ``PYTHONPATH`` at one
tree and returns its wall and CPU time.

Both trees run on this project's ``.venv`` interpreter, so the old tree runs
on *today's* locked dependencies, not the ones its own lock file named:
the ratio compares Jarvis's code, not its libraries' versions.
"""

from __future__ import annotations

import compileall
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from common import ROOT

SCRATCH_PREFIX = "jarvis-bench-against-"


@dataclass(frozen=True)
class Timed:
    """One whole process: wall and CPU seconds (its own and its children's), what it printed."""

    wall_seconds: float
    cpu_seconds: float
    stdout: str


def _git(*args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def resolve(rev: str) -> str:
    """REV's full commit hash (RuntimeError when it names no commit)."""
    return _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")


def short(rev: str) -> str:
    """REV's abbreviated commit hash, as ``git log --oneline`` shows it."""
    return _git("rev-parse", "--short", f"{rev}^{{commit}}")


@contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """REV checked out in a throw-away worktree, its modules byte-compiled; removed afterwards.

    The worktree (and git's record of it) goes on every way out of the block,
    an exception or KeyboardInterrupt included.
    """
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    tree = scratch / "tree"
    try:
        _git("worktree", "add", "--detach", "--quiet", str(tree), resolve(rev))
        compileall.compile_dir(tree / "jarvis", quiet=1)
        yield tree
    finally:
        if tree.exists():
            try:
                _git("worktree", "remove", "--force", str(tree))
            except RuntimeError as exc:  # not the error to report; the directory still goes
                print(f"warning: {exc}", file=sys.stderr)
        shutil.rmtree(scratch, ignore_errors=True)


def environment(tree: Path) -> dict[str, str]:
    """This environment with ``PYTHONPATH`` at ``tree`` alone and no ``JARVIS_*`` setting."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("JARVIS_") and key != "PYTHONPATH"
    }
    env["PYTHONPATH"] = str(tree)
    return env


def check_imports_from(tree: Path, cwd: Path) -> None:
    """Fail unless a process started as `timed` starts one imports ``jarvis`` from ``tree``.

    ``PYTHONPATH`` comes before the editable install's path on ``sys.path``,
    and ``cwd`` (the first entry under ``-c``) must hold no ``jarvis``.
    """
    found = subprocess.run(
        [sys.executable, "-c", "import jarvis; print(jarvis.__file__)"],
        cwd=cwd,
        env=environment(tree),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    if not Path(found).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"PYTHONPATH={tree} imported jarvis from {found}")


def timed(tree: Path, argv: Sequence[str], cwd: Path, timeout: float) -> Timed:
    """Run ``python argv`` with ``tree``'s Jarvis; RuntimeError (with its stderr) if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *argv],
        cwd=cwd,
        env=environment(tree),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-20:])
        raise RuntimeError(f"exit {result.returncode} with PYTHONPATH={tree}:\n{tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(wall_seconds=wall, cpu_seconds=cpu, stdout=result.stdout)
