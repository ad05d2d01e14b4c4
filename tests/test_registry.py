"""The provider registry: one table entry and one actuator class add a provider.

The new provider below is declared only here — an entry appended to
`jarvis.providers.PROVIDERS` and the class it builds — and is then observed,
allowed and acted on through the real composition root, reconciler, guard and
store. The registry also refuses what would otherwise fail silently: two
actuators claiming one kind, an actuator for a scheme its entry does not own,
and allow-list entries that can never match.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from jarvis.actuators.base import Scope
from jarvis.app import build_app
from jarvis.config import ConfigError, Settings, load_settings
from jarvis.loop.clock import VirtualClock
from jarvis.model import (
    Action,
    ActionKind,
    Clock,
    EventKind,
    Health,
    Outcome,
    ResourceRef,
    ResourceState,
)
from jarvis.policies.heal import HealPolicy
from jarvis.providers import PROVIDERS, Provider, build_sensors, check_allowlist

pytestmark = pytest.mark.anyio


class LabActuator:
    """A provider of ``lab://`` machines that crash until restarted."""

    name = "lab"
    provider = "lab"
    action_kinds = frozenset({ActionKind.RESTART})

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.health = {"bench-1": Health.UNHEALTHY, "bench-2": Health.HEALTHY}
        self.restarted: list[str] = []

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        now = self.clock.now()
        return [
            ResourceState(ResourceRef("lab", name), health, now)
            for name, health in sorted(self.health.items())
        ]

    async def apply(self, action: Action, key: str = "") -> Outcome:
        self.restarted.append(action.target.name)
        self.health[action.target.name] = Health.HEALTHY
        return Outcome.success("rebooted")

    async def aclose(self) -> None:
        return None


def lab_entry(built: list[LabActuator], owns: frozenset[str] | None = None) -> Provider:
    def build(settings: Settings, clock: Clock) -> Sequence[LabActuator]:
        built.append(LabActuator(clock))
        return built[-1:]

    return Provider(
        name="lab",
        section=None,
        owns={"lab": frozenset({ActionKind.RESTART}) if owns is None else owns},
        enabled=lambda settings: True,
        build=build,
    )


def lab_settings(tmp_path: Path, actions: list[str] | None = None) -> Settings:
    return load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/jarvis.db",
        spool_path=tmp_path / "spool.jsonl",
        simulated={"enabled": False},
        allowlist=[{"provider": "lab", "resources": "bench-*", "actions": actions or ["restart"]}],
    )


async def test_a_provider_added_by_one_table_entry_is_observed_and_acted_on(
    tmp_path: Path,
) -> None:
    """An entry and its actuator class suffice: its resources are observed, healed and recorded."""
    built: list[LabActuator] = []
    app = await build_app(
        lab_settings(tmp_path),
        clock=VirtualClock(),
        providers=(*PROVIDERS, lab_entry(built)),
        policies=[HealPolicy()],
        run_id="lab",
    )
    try:
        report = await app.reconciler.tick()
        applied = await app.store.events(kinds=[EventKind.ACTION_APPLIED.value])
    finally:
        await app.aclose()

    (lab,) = built
    assert sorted(report.snapshot.resources) == ["lab://bench-1", "lab://bench-2"]
    assert [str(d.action.target) for d in report.applied] == ["lab://bench-1"]
    assert lab.restarted == ["bench-1"]
    assert [(e.resource, e.action_kind) for e in applied] == [("lab://bench-1", "restart")]


def test_the_allow_list_is_checked_against_the_registry(tmp_path: Path) -> None:
    """An entry for an unknown provider, or for a kind its provider cannot apply, is an error."""
    settings = lab_settings(tmp_path, actions=["restart", "scale"])
    with pytest.raises(ConfigError, match=r"allowlist\.0\.provider: unknown provider 'lab'"):
        check_allowlist(settings)
    with pytest.raises(ConfigError, match=r"allowlist\.0\.actions: lab cannot scale"):
        check_allowlist(settings, (*PROVIDERS, lab_entry([])))
    check_allowlist(lab_settings(tmp_path), (*PROVIDERS, lab_entry([])))


def test_kubernetes_is_not_a_provider_name_the_allow_list_accepts(tmp_path: Path) -> None:
    """``provider = "kubernetes"`` (the section, not the ``k8s`` scheme) is refused, naming k8s."""
    settings = load_settings(
        spool_path=tmp_path / "spool.jsonl",
        allowlist=[{"provider": "kubernetes", "actions": ["restart"]}],
    )
    with pytest.raises(ConfigError, match=r"expected one of .*k8s"):
        check_allowlist(settings)


def test_two_providers_claiming_one_kind_on_one_scheme_are_refused(tmp_path: Path) -> None:
    """The last of two claimants no longer wins silently: the table is refused."""
    twin = Provider(
        name="lab-twin",
        section=None,
        owns={"lab": frozenset({ActionKind.RESTART})},
        enabled=lambda settings: True,
        build=lambda settings, clock: [],
    )
    with pytest.raises(ConfigError, match="lab and lab-twin both apply restart on lab://"):
        build_sensors(lab_settings(tmp_path), VirtualClock(), (lab_entry([]), twin))


def test_an_actuator_applying_more_than_its_entry_declares_is_refused(tmp_path: Path) -> None:
    """What an entry declares is what its actuators may apply; more is an error at start-up."""
    entry = lab_entry([], owns=frozenset())
    with pytest.raises(ConfigError, match="lab applies restart on lab://, which the lab"):
        build_sensors(lab_settings(tmp_path), VirtualClock(), (entry,))


def test_the_embedded_default_builds_only_the_simulated_fleet(tmp_path: Path) -> None:
    """With no provider configured, the registry builds the simulated fleet and nothing else."""
    settings = load_settings(spool_path=tmp_path / "spool.jsonl")
    built = build_sensors(settings, VirtualClock())
    assert [(s.name, s.provider) for s in built] == [("simulated", "sim")]
