"""A directory or one file seen read-only, as a sidecar or debug container mounts a volume ``:ro``.

Tests run as root, where ``chmod a-w`` stops no write, so `read_only_view` shows
``source`` at ``target`` through a bind mount remounted read-only: the kernel
refuses every write there (EROFS), root's included, while writes made at
``source`` show through at once, as a live daemon's do in a sidecar. The mount
is undone when the block ends, lazily, so a file a failed test left open does
not keep it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["read_only_view"]


@contextmanager
def read_only_view(source: Path, target: Path) -> Iterator[Path]:
    """``source`` at ``target`` (made here), read-only for as long as the block runs."""
    if source.is_dir():
        target.mkdir()
    else:
        target.touch()
    _run("mount", "--bind", str(source), str(target))
    try:
        _run("mount", "-o", "remount,bind,ro", str(target))
        yield target
    finally:
        _run("umount", "--lazy", str(target))


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        # Not skipped: a test that cannot mount has tested nothing (the suite runs as root).
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
