"""The README is true: its config examples load, its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jarvis.cli import app
from jarvis.config import load_settings
from jarvis.providers import check_allowlist

README = Path(__file__).parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCKS = re.findall(r"```toml\n(.*?)```", TEXT, re.DOTALL)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.split("\n", 1)[0][:40] for b in BLOCKS])
def test_every_toml_example_in_the_readme_is_a_valid_config(block: str, tmp_path: Path) -> None:
    """Each TOML example loads through the same validation as a real config file."""
    path = tmp_path / "example.toml"
    path.write_text(block, encoding="utf-8")
    check_allowlist(load_settings(path))


def test_the_readme_has_examples_for_every_provider_and_policy() -> None:
    """Each configurable section is shown in at least one example."""
    shown = "\n".join(BLOCKS)
    for section in (
        "[aws]",
        "[probes]",
        "[metrics.prometheus]",
        "[kubernetes]",
        "[cloudrun]",
        "[local]",
        "[failover]",
        "[scaling]",
        "[rollback]",
        "[cost]",
        "[routing]",
        "[loop]",
        "[retry]",
        "[bounds]",
        "[[allowlist]]",
    ):
        assert section in shown, section


@pytest.mark.parametrize(
    "command",
    sorted(set(re.findall(r"`jarvis ([a-z]+(?: [a-z]+)?)", TEXT))),
)
def test_every_command_the_readme_names_exists(command: str) -> None:
    """`jarvis X --help` succeeds for every `jarvis X` the README mentions."""
    words = command.split()
    result = CliRunner().invoke(app, [*words, "--help"])
    if result.exit_code != 0 and len(words) == 2:
        result = CliRunner().invoke(app, [words[0], "--help"])
    assert result.exit_code == 0, (command, result.output)


def test_the_readme_links_an_architecture_page_that_is_in_the_repository() -> None:
    """The architecture page a reader is sent to ships with the code; nothing points outside."""
    assert "(docs/architecture.md)" in TEXT
    assert (README.parent / "docs" / "architecture.md").is_file()
    assert "../shared" not in TEXT and "DESIGN.md" not in TEXT


def test_the_readme_says_logs_follow_stderr() -> None:
    """The log format is chosen by whether stderr is a terminal, and the README says so."""
    assert "stderr is not a terminal" in TEXT
    assert "when stdout is not a terminal" not in TEXT
