"""The README is true: its config examples load, its commands exist."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jarvis.cli import app
from jarvis.config import load_settings
from jarvis.providers import check_allowlist

README = Path(__file__).parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")
ARCHITECTURE = (README.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
ALERTS = README.parent / "deploy" / "monitoring" / "alerts.yaml"
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


def _helps(command: object, words: list[str]) -> Iterator[tuple[str, str]]:
    yield " ".join(words), CliRunner().invoke(app, [*words, "--help"]).output
    for name, sub in getattr(command, "commands", {}).items():
        yield from _helps(sub, [*words, name])


def test_every_help_is_written_for_an_operator() -> None:
    """No `--help` shows a module path, reStructuredText markup or a Python type meant for the
    code's readers."""
    import typer

    written = list(_helps(typer.main.get_command(app), []))
    assert len(written) > 20
    for words, text in written:
        assert "``" not in text, (words, text)
        assert not re.search(r"`jarvis\.[a-z_.]+`", text), (words, text)
        # An option's value named by its Python type (`<list[str]>`) tells an operator nothing.
        assert not re.search(r"<(list|tuple|dict|set)\[", text), (words, text)


def test_the_readme_links_an_architecture_page_that_is_in_the_repository() -> None:
    """The architecture page a reader is sent to ships with the code; nothing points outside."""
    assert "(docs/architecture.md)" in TEXT
    assert (README.parent / "docs" / "architecture.md").is_file()
    assert "../shared" not in TEXT and "DESIGN.md" not in TEXT


def test_the_readme_says_logs_follow_stderr() -> None:
    """The log format is chosen by whether stderr is a terminal, and the README says so."""
    assert "stderr is not a terminal" in TEXT
    assert "when stdout is not a terminal" not in TEXT


def _spans(pattern: str) -> list[str]:
    return sorted({m for text in (TEXT, ARCHITECTURE) for m in re.findall(pattern, text)})


#: `jarvis CMD [SUB] …` in code spans and console blocks, with every --option it names.
_COMMANDS = _spans(r"`(jarvis [^`]*)`") + _spans(r"(?m)^\$ uv run (jarvis [^#\n]*)")
_GROUPS = frozenset({"killswitch", "retries", "silence", "notifications", "db", "config"})


def _command_words(span: str) -> list[str]:
    words: list[str] = []
    for token in span.split()[1:]:
        if not re.fullmatch(r"[a-z]+", token) or (words and words[0] not in _GROUPS):
            break
        words.append(token)
        if len(words) == 2:
            break
    return words


@pytest.mark.parametrize("span", [s for s in _COMMANDS if re.search(r"--[a-z]", s)])
def test_every_option_the_docs_give_a_command_is_one_it_takes(span: str) -> None:
    """`jarvis run --http-port P` in the README means `jarvis run --help` lists --http-port."""
    words = _command_words(span)
    result = CliRunner().invoke(app, [*words, "--help"])
    assert result.exit_code == 0, (span, result.output)
    taken = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", result.output))
    for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", span):
        if option != "--config":  # the root's, taken before or after the command
            assert option in taken, (span, option)


def test_every_metric_the_docs_name_is_one_the_daemon_exports() -> None:
    """Each `jarvis_*` series the README or the architecture page names is on /metrics."""
    from jarvis.telemetry.metrics import Metrics

    exported: set[str] = set()
    for family in Metrics().registry.collect():
        exported.add(family.name)
        if family.type == "counter":
            exported.add(f"{family.name}_total")
        if family.type == "histogram":
            exported.update(f"{family.name}_{part}" for part in ("bucket", "sum", "count"))
    # `metadata[jarvis_customer_id]` is Stripe's metadata key, not a series.
    named = _spans(r"(?<!\[)\bjarvis_[a-z_]+")
    assert named
    assert [name for name in named if name not in exported] == []


def test_every_alert_the_docs_name_is_in_the_alert_rules() -> None:
    """Each `Jarvis*` alert the README or the architecture page names is a rule."""
    rules = set(re.findall(r"alert: (\w+)", ALERTS.read_text(encoding="utf-8")))
    named = _spans(r"\bJarvis[A-Z][A-Za-z]+")
    assert [name for name in named if name not in rules] == []


#: Dotted names in the docs that are not settings: Cloud Run's own fields.
_NOT_SETTINGS = frozenset(
    {
        "scaling.min_instance_count",
        "scaling.max_instance_count",
        "scaling.manual_instance_count",
    }
)


def _resolves(path: list[str]) -> bool:
    """Whether ``path`` names a field of `Settings`, through nested sections and lists of them."""
    import typing

    from pydantic import BaseModel

    from jarvis.config import Settings

    def section(annotation: object) -> type[BaseModel] | None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return annotation
        for arg in typing.get_args(annotation):
            found = section(arg)
            if found is not None:
                return found
        return None

    model: type[BaseModel] | None = Settings
    for part in path:
        if model is None:
            return True  # a key of a mapping (`routing.routes.chat`)
        field = model.model_fields.get(part)
        if field is None:
            return False
        model = section(field.annotation)
    return True


def test_every_setting_the_docs_name_is_one_the_config_takes() -> None:
    """`loop.shutdown_grace` and `[heal] start_grace_seconds` in the docs are real keys."""
    from jarvis.config import Settings
    from jarvis.model import EventKind

    events = {kind.value for kind in EventKind}
    dotted = _spans(r"`([a-z_]+(?:\.[a-z_0-9N]+)+)`")
    bracketed = [f"{s}.{k}" for s, k in re.findall(r"`\[([a-z_.]+)\] ([a-z_]+)", TEXT)]
    named = [
        name
        for name in [*dotted, *bracketed]
        if name.split(".")[0] in Settings.model_fields
        and not name.endswith(".py")
        and name not in events
        and name not in _NOT_SETTINGS
    ]
    assert len(named) > 30
    unknown = [n for n in named if not _resolves([p for p in n.split(".") if p != "N"])]
    assert unknown == []


def test_the_readme_lists_every_benchmark_bench_run_takes() -> None:
    """`bench/run.py [tick|…]` in the README names exactly the benchmarks it runs."""
    source = (README.parent / "bench" / "run.py").read_text(encoding="utf-8")
    names = re.search(r"NAMES = \((.*?)\)", source, re.DOTALL)
    assert names is not None
    runs = set(re.findall(r'"(\w+)"', names.group(1)))
    listed = re.search(r"bench/run\.py \[([a-z_|]+)\]", TEXT)
    assert listed is not None
    assert set(listed.group(1).split("|")) == runs


def test_the_iam_policy_the_readme_shows_is_the_one_deploy_ships() -> None:
    """The README's IAM JSON is the shipped policy, which a test holds to the calls made."""
    import json

    (shown,) = re.findall(r"```json\n(.*?)```", TEXT, re.DOTALL)
    shipped = README.parent / "deploy" / "aws" / "jarvis-iam-policy.json"
    assert json.loads(shown) == json.loads(shipped.read_text(encoding="utf-8"))


def test_the_quickstart_test_command_is_what_ci_runs_and_says_what_it_leaves_out() -> None:
    """The Quickstart's `uv run pytest` is the command `.ci/run` ends with, and its comment
    does not call it the whole suite while `addopts` leaves the @slow runs out."""
    import tomllib

    quickstart = TEXT.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    (line,) = re.findall(r"(?m)^\$ uv run pytest\b.*$", quickstart)
    command, _, comment = line.removeprefix("$ ").partition("#")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert command.strip() == ci[-1]
    pyproject = tomllib.loads((README.parent / "pyproject.toml").read_text(encoding="utf-8"))
    addopts = " ".join(pyproject["tool"]["pytest"]["ini_options"]["addopts"])
    assert "not slow" in addopts
    assert "slow" in comment and "whole" not in comment, comment


def test_the_readme_gives_the_default_tick_timeout_the_settings_take(tmp_path: Path) -> None:
    """A short `loop.interval` leaves each tick an observe and an apply, as the README says,
    rather than the interval it once named alone."""
    said = " ".join(TEXT.split())
    assert (
        "The tick timeout defaults to `loop.interval`, or to an observe and an apply "
        "(`loop.observe_timeout + loop.apply_timeout`) when that is longer (`--interval 2` "
        "still gives each tick 30 s)"
    ) in said
    path = tmp_path / "short.toml"
    path.write_text("[loop]\ninterval = 2.0\n", encoding="utf-8")
    settings = load_settings(path)
    assert settings.tick_timeout == settings.loop.observe_timeout + settings.loop.apply_timeout
    assert settings.tick_timeout == 30.0


def test_the_docs_give_the_uri_limit_the_model_enforces() -> None:
    """The longest resource URI the README and the architecture page name is `MAX_URI_BYTES`."""
    from jarvis.model import MAX_URI_BYTES

    said = re.findall(r"longer\s+than\s+([\d,]+)\s+bytes", TEXT)
    said += re.findall(r"`MAX_URI_BYTES`\s+\(([\d,]+)\s+bytes", ARCHITECTURE)
    assert len(said) >= 2
    assert {int(n.replace(",", "")) for n in said} == {MAX_URI_BYTES}
