"""Shared by the tests that run a benchmark small: load a script of bench/ as a module.

The benchmarks are plain scripts that import their siblings (`common`, `pg`,
`failover`) by name, so bench/ is on ``sys.path`` while one is loaded; the
siblings stay in ``sys.modules``, where a test sets what they read
(``sys.modules["pg"].PG_ADMIN_URL``, ``sys.modules["common"].RESULTS``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent.parent / "bench"


def load_bench(name: str) -> ModuleType:
    """``bench/<name>.py`` as a fresh module named ``bench_<name>``."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))
