"""From a TOML file to working policies: the documented example, and what it refuses."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from jarvis.app import history_size
from jarvis.config import ConfigError, load_settings
from jarvis.model import History
from jarvis.policies.rollback import RollbackPolicy
from jarvis.policies.scaling import ScalingPolicy
from tests import actions as typed
from tests.policies.fleet import API, service, snap, steady

DOC = Path(__file__).parents[2] / "README.md"


def documented_toml() -> str:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    found = [b for b in blocks if b.startswith("[scaling]")]
    assert found, "the README lost its [scaling] TOML example"
    return str(found[0])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "jarvis.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_documented_example_builds_both_policies(tmp_path: Path) -> None:
    """The README's example config loads and becomes the rules it describes."""
    settings = load_settings(write(tmp_path, documented_toml()))
    scaling = ScalingPolicy.from_config(settings.scaling.model_dump())
    rollback = RollbackPolicy.from_config(settings.rollback.model_dump())
    api, k8s, batch = scaling.rules
    assert (api.match, api.min_replicas, api.max_replicas) == (API, 2, 20)
    assert api.targets.configured() == {
        "cpu_utilization": 70,
        "requests_per_minute": 100,
        "p95_latency_ms": 250,
    }
    assert api.schedule.timezone == "America/New_York"
    night, morning = api.schedule.windows
    assert (night.start, night.end, night.min_replicas) == (time(0), time(6), 1)
    assert morning.days == frozenset(range(5))
    assert k8s.targets.configured() == {"cpu_utilization": 60}
    assert batch.scales_to_zero and batch.cooldown_seconds == 600
    assert rollback.name == "rollback"


def test_documented_example_scales_down_at_night(tmp_path: Path) -> None:
    """Under the example config, 10 req/min at 03:00 New York time runs one task."""
    settings = load_settings(write(tmp_path, documented_toml()))
    policy = ScalingPolicy.from_config(settings.scaling.model_dump())
    now = datetime(2026, 1, 14, 8, 0, tzinfo=UTC)
    quiet = {"requests_per_minute": 10, "cpu_utilization": 3, "p95_latency_ms": 40}

    history = History(
        snapshots=steady(now, 10, lambda at: service(desired=2, at=at, metrics=quiet))
    )
    evaluation = policy.evaluate(snap(now, service(desired=2, at=now, metrics=quiet)), history, now)
    assert [(typed.replicas(a), a.cost_delta_per_hour) for a in evaluation.actions] == [
        (1, -0.0494)
    ]


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[[scaling.rules]]\ntarget_cpu_utilization = 50\ntimezone = "Mars/Olympus"\n',
         "scaling.rules.0.timezone"),
        ("[[scaling.rules]]\nmin_replicas = 5\nmax_replicas = 2\ntarget_cpu_utilization = 50\n",
         "scaling.rules.0"),
        ('[[scaling.rules]]\nmatch = "*"\n', "scaling.rules.0"),
        # Scale to zero needs requests as its activity metric.
        ("[[scaling.rules]]\ntarget_cpu_utilization = 50\nmin_replicas = 0\n",
         "scaling.rules.0"),
        ("[[scaling.rules]]\ntarget_cpu_utilization = 50\nmin_replicas = -1\n",
         "scaling.rules.0.min_replicas"),
        ("[scaling]\nscale_up_select = \"least\"\n", "scaling.scale_up_select"),
        ('[[scaling.scale_down_policies]]\ntype = "pods"\nvalue = 1.5\n',
         "scaling.scale_down_policies.0"),
        ('[[scaling.scale_up_policies]]\ntype = "pods"\nvalue = 1\nperiod_seconds = 0\n',
         "scaling.scale_up_policies.0.period_seconds"),
        ('[[scaling.rules]]\ntarget_cpu_utilization = 50\n[[scaling.rules.schedule]]\n'
         'start = "00:00"\nend = "06:00"\n', "scaling.rules.0.schedule.0"),
        ('[[scaling.rules]]\ntarget_cpu_utilization = 50\n[[scaling.rules.schedule]]\n'
         'start = "00:00"\nend = "06:00"\nmin_replicas = 20\n', "scaling.rules.0"),
        ('[[scaling.rules]]\ntarget_cpu_utilization = 50\n[[scaling.rules.schedule]]\n'
         'start = "22:00"\nend = "06:00"\nmin_replicas = 1\ndays = ["caturday"]\n',
         "scaling.rules.0.schedule.0.days.0"),
        # An offset would be dropped silently: the rule's timezone says the zone.
        ('[[scaling.rules]]\ntarget_cpu_utilization = 50\n[[scaling.rules.schedule]]\n'
         'start = "08:00+02:00"\nend = "18:00"\nmin_replicas = 2\n',
         "scaling.rules.0.schedule.0.start"),
        ('[[scaling.rules]]\ntarget_cpu_utilization = 50\n[[scaling.rules.schedule]]\n'
         'start = "08:00"\nend = "18:00Z"\nmin_replicas = 2\n',
         "scaling.rules.0.schedule.0.end"),
        # Kubernetes caps a policy's periodSeconds at 1800; the shorthand's period too.
        ("[scaling]\nrate_period_seconds = 1801\n", "scaling.rate_period_seconds"),
        ("[scaling]\nstabilisation_seconds = 300\n", "scaling.stabilisation_seconds"),
        ("[rollback]\nconsecutive_checks = 0\n", "rollback.consecutive_checks"),
        ("[rollback]\nmatch = []\n", "rollback.match"),
    ],
)  # fmt: skip
def test_mistakes_are_refused_naming_the_key(tmp_path: Path, toml: str, key: str) -> None:
    """A bad zone, inverted bounds, a rule without a metric or a typo fails at load, by key."""
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, toml))
    assert f"  {key}: " in str(caught.value)


def test_from_config_refuses_keys_it_does_not_know() -> None:
    """Drift between the settings and the policy's reader is an error, not a silent default."""
    with pytest.raises(ValueError, match="unknown scaling settings"):
        ScalingPolicy.from_config({"rules": [], "stabilisation": 1})
    with pytest.raises(TypeError):
        RollbackPolicy.from_config({"watch": 1})


def test_defaults_build_policies_that_propose_nothing_without_rules() -> None:
    """With default settings the scaling policy has no rules and proposes nothing."""
    settings = load_settings()
    policy = ScalingPolicy.from_config(settings.scaling.model_dump())
    state = service(desired=2, metrics={"requests_per_minute": 10_000})
    now = state.observed_at
    assert policy.evaluate(snap(now, state), History(), now).actions == ()
    assert settings.scaling.enabled is False
    assert settings.rollback.enabled is False


SCALING = "[scaling]\nenabled = true\n"


@pytest.mark.parametrize(
    ("toml", "needed"),
    [
        (SCALING, 12),  # the default 300 s scale-down window: 10 ticks and the edges
        (SCALING + '[[scaling.scale_down_policies]]\ntype = "pods"\nvalue = 1\n'
         "period_seconds = 1800\n", 62),
        (SCALING + "scale_up_stabilization_seconds = 1200\n", 42),
        (SCALING + "rate_period_seconds = 900\n", 32),
        (SCALING + "[[scaling.rules]]\nmin_replicas = 0\ntarget_requests_per_minute = 10\n"
         "cooldown_seconds = 1800\n", 62),
    ],
)  # fmt: skip
def test_history_covers_every_window_period_and_cooldown(
    tmp_path: Path, toml: str, needed: int
) -> None:
    """The loop keeps snapshots back to the longest window, rate period and zero cooldown."""
    settings = load_settings(write(tmp_path, toml))
    assert settings.loop.interval == 30
    assert history_size(settings) == max(needed, settings.loop.history_snapshots)


@pytest.mark.parametrize(
    ("toml", "needed"),
    [
        ("[rollback]\nenabled = true\n", 33),  # 900 s watched, 2 baseline samples, now
        ("[rollback]\nenabled = true\nwatch_seconds = 60\nmin_baseline_samples = 30\n", 33),
    ],
)
def test_history_covers_the_rollback_watch_and_its_baseline(
    tmp_path: Path, toml: str, needed: int
) -> None:
    """To the end of the watch window the previous version's baseline is still in the history."""
    settings = load_settings(write(tmp_path, toml))
    assert history_size(settings) == needed
