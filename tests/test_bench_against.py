"""Benchmark 2's same-run ratio (``bench/run.py simulation --against REV``), run small.

Against HEAD, so the old tree's code is this code and no question of old
dependencies arises; nothing here says anything about speed.
"""

from __future__ import annotations

import gc
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bench_support import BENCH, load_bench, sibling
from tests.logging_state import restored_logging


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Temporary directories made under ``tmp_path/tmp``, result files under ``tmp_path``."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    monkeypatch.setattr(sibling("common"), "RESULTS", tmp_path)
    threshold = gc.get_threshold()
    with restored_logging():
        yield temporary
    gc.unfreeze()  # `simulation` settles the heap as `jarvis simulate` does
    gc.set_threshold(*threshold)


def _worktrees() -> str:
    return subprocess.run(
        ["git", "-C", str(BENCH), "worktree", "list", "--porcelain"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout


def test_simulation_against_head_times_both_trees_and_removes_the_worktree(
    scratch: Path,
) -> None:
    """One pair against HEAD: both processes timed, a positive ratio, no worktree left."""
    result = load_bench("simulation").run(
        ["--days", "0.01", "--services", "5", "--against", "HEAD", "--pairs", "1"]
    )
    figures = result["simulation"]["against"]
    (pair,) = figures["pairs"]
    for tree in ("this", "rev"):
        assert pair[tree]["wall_seconds"] > 0 and pair[tree]["cpu_seconds"] > 0
        assert pair[tree]["ticks"] > 0 and pair[tree]["invariants_ok"]
    assert figures["median_wall_ratio"] > 0 and figures["median_cpu_ratio"] > 0
    assert figures["month_at_issue_machine_seconds"] is None  # HEAD is not the issue's commit
    (row,) = result["simulation"]["summary"]
    assert f"x {figures['label']} in the same run" in row["measured"]
    assert list(scratch.iterdir()) == []
    assert str(scratch) not in _worktrees()


def test_the_worktree_goes_when_the_run_is_interrupted(scratch: Path) -> None:
    """Ctrl-C inside the checkout removes the worktree and git's record of it."""
    against = sibling("against")
    with pytest.raises(KeyboardInterrupt), against.checkout("HEAD") as tree:
        assert (tree / "jarvis" / "__init__.py").exists()
        assert str(tree) in _worktrees()
        raise KeyboardInterrupt
    assert list(scratch.iterdir()) == []
    assert str(scratch) not in _worktrees()


def test_the_issue_commit_is_a_commit_of_this_repository() -> None:
    """The commit whose 117 s the ratio scales resolves, and is the one the issue names."""
    simulation = load_bench("simulation")
    assert simulation.ISSUE_MONTH.seconds == 117.0
    commit = sibling("against").resolve(simulation.ISSUE_MONTH.commit)
    assert commit.startswith("94f92eb") and len(commit) == 40


@pytest.mark.parametrize(
    ("days", "services", "scaled"),
    [(30.0, 50, 58.5), (0.05, 50, None), (30.0, 5, None)],
)
def test_only_the_issues_month_is_scaled_to_the_issues_machine(
    days: float, services: int, scaled: float | None
) -> None:
    """117 s is the month of 50 services: a shorter or smaller run's ratio (start-up
    weighs more in it) does not scale it."""
    simulation = load_bench("simulation")
    commit = sibling("against").resolve(simulation.ISSUE_MONTH.commit)
    assert simulation.month_at_issue_machine(commit, days, services, 0.5) == scaled
