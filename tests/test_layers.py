"""Every package and top-level module of jarvis sits in the layers contract.

import-linter checks the contracts it is given; this test checks it is given
all of jarvis, so a new package cannot slip in beside the layers unchecked.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_every_package_of_jarvis_is_in_the_layers_contract() -> None:
    """The layers contract names each package and module directly under jarvis/."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c for c in contracts if c["type"] == "layers"]
    listed = {name.strip() for layer in layers["layers"] for name in layer.split("|")}
    present = {
        f"jarvis.{path.stem if path.is_file() else path.name}"
        for path in (ROOT / "jarvis").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert present == listed
