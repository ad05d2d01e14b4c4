"""Resource globs whose ``*`` spans path segments are named by `jarvis config check` and
`jarvis run` (`jarvis.providers.glob_warnings`), and still run: the glob means what it
always meant (``*`` crosses ``/``), which configurations rely on."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Jarvis, jarvis_env

CONFIG = """
[cloudrun]
project = "demo-project"
region = "europe-west1"
services = ["api"]
credentials = "anonymous"
api_endpoint = "http://127.0.0.1:9"

[[allowlist]]
provider = "cloudrun"
resources = "demo*"
actions = ["restart"]

[[allowlist]]
provider = "cloudrun"
resources = "demo-project/*"
actions = ["scale"]

[[allowlist]]
provider = "cloudrun"
resources = "demo*/*/api-*"
actions = ["rollback"]

[[allowlist]]
provider = "cloudrun"
resources = "demo-project/*-api"
actions = ["restart"]

[[allowlist]]
provider = "sim"
resources = "ai-dawg-*"
actions = ["*"]

[[budgets]]
name = "prod-restarts"
actions = ["restart"]
resources = "prod*"
max = 1
window_seconds = 3600
"""
WARNINGS = [
    "allowlist.0.resources 'demo*': '*' also matches '/', so a '*' inside a segment can span "
    "several segments of cloudrun:// paths (3 to a path): 'demo*' matches 'demox/y/z'; write "
    "the segments out with '/' to say which you mean: 'demo*/*/*' (from the start of the "
    "path) or '*/*/demo*' (up to its end)",
    "allowlist.3.resources 'demo-project/*-api': '*' also matches '/', so a '*' inside a "
    "segment can span several segments of cloudrun:// paths (3 to a path): "
    "'demo-project/*-api' matches 'demo-project/x/y-api'; write the segments out with '/' to "
    "say which you mean: 'demo-project/*-api/*' (from the start of the path) or "
    "'*/demo-project/*-api' (up to its end)",
    "budgets.0.resources 'prod*': '*' also matches '/', so a '*' inside a segment can span "
    "several segments of the deepest paths (3 to a path): 'prod*' matches 'prodx/y/z'; write "
    "the segments out with '/' to say which you mean: 'prod*/*/*' (from the start of the "
    "path) or '*/*/prod*' (up to its end)",
]


def test_a_star_inside_a_segment_that_spans_segments_is_named_by_check_and_run(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """One warning each, in the operator's own glob with a path it matches across segments
    and its two spellings, for ``demo*`` and ``demo-project/*-api`` (Cloud Run paths have 3
    segments) and a budget's ``prod*`` on every provider; none for ``demo-project/*`` (a
    whole-segment ``*``), for ``demo*/*/api-*`` (every segment written out), or for
    ``ai-dawg-*`` (sim paths have one segment); exit 0, and `run` logs the same lines and
    runs."""
    config = tmp_path / "jarvis.toml"
    config.write_text(CONFIG)
    env = jarvis_env(tmp_path, JARVIS_CONFIG=str(config))

    check = jarvis("config", "check", env=env)
    assert check.returncode == 0, check.stderr
    warned = [line for line in check.stderr.splitlines() if line.startswith("warning:")]
    assert warned == [f"warning: {w}" for w in WARNINGS], check.stderr
    shown = jarvis("config", "check", "--json", env=env)
    assert json.loads(shown.stdout)["warnings"] == WARNINGS

    run = jarvis("run", "--ticks", "1", "--interval", "0.05", "--http-port", "0", env=env)
    assert run.returncode == 0, run.stderr
    logged = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    spans = [line for line in logged if line.get("event") == "resource glob spans path segments"]
    assert [line["detail"] for line in spans] == WARNINGS


URI_CONFIG = """
[scaling]
enabled = true

[[scaling.rules]]
match = "ecs://prod*"
target_cpu_utilization = 70

[[scaling.rules]]
match = "ecs://prod/*"
target_cpu_utilization = 70

[[scaling.rules]]
match = "k8s://prod[0-9]*"
target_cpu_utilization = 70

[rollback]
enabled = true
match = ["cloudrun://*", "cloudrun://demo*/*-api", "*://prod*", "sim://ai-dawg-*", "ecs://prod*/*"]

[notify.slack]
webhook_url_env = "TEST_SLACK_URL"
resources = ["ecs://*-api", "*-api", "sim://*"]
"""
URI_WARNINGS = [
    "scaling.rules.0.match 'ecs://prod*': '*' also matches '/', so a '*' inside a segment "
    "can span several segments of ecs:// paths (2 to a path): 'ecs://prod*' matches "
    "'ecs://prodx/y'; write the segments out with '/' to say which you mean: "
    "'ecs://prod*/*' (from the start of the path) or 'ecs://*/prod*' (up to its end)",
    "scaling.rules.2.match 'k8s://prod[0-9]*': '*' also matches '/', so a '*' inside a "
    "segment can span several segments of k8s:// paths (2 to a path): 'k8s://prod[0-9]*' "
    "matches 'k8s://prod0x/y'; write the segments out with '/' to say which you mean: "
    "'k8s://prod[0-9]*/*' (from the start of the path) or 'k8s://*/prod[0-9]*' (up to its "
    "end)",
    "rollback.match.1 'cloudrun://demo*/*-api': '*' also matches '/', so a '*' inside a "
    "segment can span several segments of cloudrun:// paths (3 to a path): "
    "'cloudrun://demo*/*-api' matches 'cloudrun://demox/y/x-api'; write the segments out "
    "with '/' to say which you mean: 'cloudrun://demo*/*-api/*' (from the start of the "
    "path) or 'cloudrun://*/demo*/*-api' (up to its end)",
    "rollback.match.2 '*://prod*': '*' also matches '/', so a '*' inside a segment can span "
    "several segments of the deepest paths (3 to a path): '*://prod*' matches "
    "'cloudrun://prodx/y/z'; write the segments out with '/' to say which you mean: "
    "'*://prod*/*/*' (from the start of the path) or '*://*/*/prod*' (up to its end)",
    "notify.slack.resources.0 'ecs://*-api': '*' also matches '/', so a '*' inside a "
    "segment can span several segments of ecs:// paths (2 to a path): 'ecs://*-api' "
    "matches 'ecs://x/y-api'; write the segments out with '/' to say which you mean: "
    "'ecs://*-api/*' (from the start of the path) or 'ecs://*/*-api' (up to its end)",
]


def test_a_uri_glob_that_spans_segments_is_named_by_its_setting_by_check_and_run(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """Scaling rules', rollback's and a notification route's globs over whole URIs are
    warned of as the allow-list's are, each line naming its setting: ``ecs://prod*`` (ECS
    paths have 2 segments), ``k8s://prod[0-9]*`` (shown as written), a Cloud Run glob one
    segment short, and ``*://prod*`` held to the deepest paths; none for whole-segment
    ``*``s, every segment written out, one-segment ``sim`` paths, or a glob naming no
    scheme (``*-api``). Exit 0, and `run` logs the same lines and runs."""
    config = tmp_path / "jarvis.toml"
    config.write_text(URI_CONFIG)
    env = jarvis_env(tmp_path, JARVIS_CONFIG=str(config), TEST_SLACK_URL="http://127.0.0.1:9/s")

    check = jarvis("config", "check", env=env)
    assert check.returncode == 0, check.stderr
    warned = [line for line in check.stderr.splitlines() if line.startswith("warning:")]
    assert warned == [f"warning: {w}" for w in URI_WARNINGS], check.stderr
    shown = jarvis("config", "check", "--json", env=env)
    assert json.loads(shown.stdout)["warnings"] == URI_WARNINGS

    run = jarvis("run", "--ticks", "1", "--interval", "0.05", "--http-port", "0", env=env)
    assert run.returncode == 0, run.stderr
    logged = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    spans = [line for line in logged if line.get("event") == "resource glob spans path segments"]
    assert [line["detail"] for line in spans] == URI_WARNINGS


def test_a_warned_glob_with_a_character_class_is_printed_as_written(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """`jarvis config check` prints ``prod[a-z]*`` whole: its ``[a-z]`` was read as a
    style of the terminal's markup and vanished from the line."""
    config = tmp_path / "jarvis.toml"
    config.write_text(
        '[[allowlist]]\nprovider = "ecs"\nresources = "prod[a-z]*"\nactions = ["*"]\n'
    )
    env = jarvis_env(tmp_path, JARVIS_CONFIG=str(config))

    check = jarvis("config", "check", env=env)
    assert check.returncode == 0, check.stderr
    (warned,) = [line for line in check.stderr.splitlines() if line.startswith("warning:")]
    assert warned.startswith("warning: allowlist.0.resources 'prod[a-z]*': "), warned
    assert "'prod[a-z]*' matches 'prodxx/y'" in warned
