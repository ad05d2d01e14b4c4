"""Shared by the tests that run a benchmark small: load a script of bench/ as a module.

The benchmarks are plain scripts that import their siblings (`common`, `pg`,
`failover`) by name, so bench/ is on ``sys.path`` while one is loaded; the
siblings stay in ``sys.modules`` under those names (`sibling`), where a test
sets what they read (``pg.PG_ADMIN_URL``, ``common.RESULTS``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent.parent / "bench"


@contextmanager
def _bench_on_path() -> Iterator[None]:
    sys.path.insert(0, str(BENCH))
    try:
        yield
    finally:
        sys.path.remove(str(BENCH))


def sibling(name: str) -> ModuleType:
    """``bench/<name>.py`` as the benchmarks import it (``import pg``): one module, shared."""
    with _bench_on_path():
        return importlib.import_module(name)


def load_bench(name: str) -> ModuleType:
    """``bench/<name>.py`` as a fresh module named ``bench_<name>``."""
    with _bench_on_path():
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
