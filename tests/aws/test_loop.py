"""AWS through the whole loop: settings → aws_actuators → reconciler ticks on a real store.

The actuators come from an ``[aws]`` section aimed at moto and run under
`jarvis.app.build_app` with the real heal policy, guard and SQLite event store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import Stubber

from jarvis.actuators.aws.ecs import EcsActuator, aws_actuators
from jarvis.app import App, build_app
from jarvis.config import load_settings
from jarvis.loop import events as ev
from jarvis.model import Action, ActionKind, BlockReason, EventKind, Health, ResourceRef, Restart
from jarvis.policies.base import Policy
from jarvis.policies.heal import HealPolicy
from jarvis.policies.operator import UNSETTLED, OneShot, operator_action
from jarvis.providers import PROVIDERS, build_sensors
from tests.aws.conftest import FixedClock, create_fleet

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

pytestmark = pytest.mark.anyio

AppFactory = Callable[..., Awaitable[App]]


@pytest.fixture
async def make_app(
    moto: str, session: boto3.Session, sqlite_url: str, clock: FixedClock, tmp_path: Path
) -> AsyncIterator[AppFactory]:
    """Builds an app whose AWS actuators come from settings; closes it at the end."""
    apps: list[App] = []

    async def factory(
        probes: dict[str, Any] | None = None,
        policies: Sequence[Policy] = (HealPolicy(),),
        **aws: Any,
    ) -> App:
        settings = load_settings(
            database_url=sqlite_url,
            spool_path=tmp_path / "spool.jsonl",
            allowlist=[
                {"provider": "ecs", "resources": "prod/*", "actions": ["restart"]},
                {"provider": "ecs", "resources": "retired/*", "actions": ["restart"]},
            ],
            aws={"endpoint_url": moto, "clusters": ["prod", "staging"], "metrics": False} | aws,
            probes=probes or {},
        )
        assert settings.aws is not None
        # AWS with the test's dummy-credential session; the rest (probes) as the
        # registry builds them from the same settings.
        others = [p for p in PROVIDERS if p.name not in {"aws", "simulated"}]
        actuators = [
            *aws_actuators(settings.aws, clock=clock, session=session),
            *build_sensors(settings, clock, others),
        ]
        app = await build_app(
            settings, clock=clock, actuators=actuators, policies=policies, run_id="t"
        )
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.aclose()


async def test_unhealthy_services_are_restarted_where_the_allow_list_permits(
    make_app: AppFactory, ecs_client: ECSClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Services with no running task are restarted in prod and blocked in staging."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "0")
    create_fleet(ecs_client, per_cluster=1)
    before = ecs_client.describe_services(cluster="prod", services=["svc-0"])["services"][0]
    app = await make_app()
    report = await app.reconciler.tick()

    assert report.snapshot.resources["ecs://prod/svc-0"].health is Health.UNHEALTHY
    outcomes = {str(d.action.target): d for d in report.decisions}
    assert outcomes["ecs://prod/svc-0"].action.kind == ActionKind.RESTART
    assert outcomes["ecs://prod/svc-0"].outcome is not None
    assert outcomes["ecs://prod/svc-0"].outcome.ok
    assert outcomes["ecs://staging/svc-0"].verdict.reason is BlockReason.ALLOWLIST
    after = ecs_client.describe_services(cluster="prod", services=["svc-0"])["services"][0]
    assert after["deployments"][0]["id"] != before["deployments"][0]["id"]
    applied = await app.store.events(kinds=["action.applied"])
    assert [e.resource for e in applied] == ["ecs://prod/svc-0"]


async def test_throttled_ecs_is_recorded_and_probes_are_still_observed(
    make_app: AppFactory, redis_url: str
) -> None:
    """A throttled ECS observe becomes observe.failed with its code; probes still report."""
    app = await make_app(clusters=["prod"], probes={"redis": {"cache": redis_url}})
    ecs = app.actuators[0]
    assert isinstance(ecs, EcsActuator)
    with Stubber(ecs.clients.ecs) as stubber:
        stubber.add_client_error("list_services", service_error_code="ThrottlingException")
        report = await app.reconciler.tick()

    assert "ThrottlingException" in report.snapshot.errors["ecs"]
    assert report.snapshot.resources["probe://redis/cache"].health is Health.HEALTHY
    failed = await app.store.events(kinds=["observe.failed"])
    assert len(failed) == 1


async def test_a_service_woken_from_zero_is_left_to_start_then_restarted_if_it_never_does(
    make_app: AppFactory,
    ecs_client: ECSClient,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ECS reports a woken service as "0 of 1 tasks running" (UNHEALTHY) until its task is
    up; heal leaves it to start for the start grace, then restarts it if it never does."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "0")
    create_fleet(ecs_client, per_cluster=1)
    ecs_client.update_service(cluster="prod", service="svc-0", desiredCount=0)
    app = await make_app()
    asleep = await app.reconciler.tick()
    assert asleep.snapshot.resources["ecs://prod/svc-0"].health is Health.HEALTHY

    # The wake, as ECS shows it: desired 1, its task not running yet (moto's update_service
    # would start it at once, so the service comes back with the same name instead).
    ecs_client.delete_service(cluster="prod", service="svc-0", force=True)
    ecs_client.create_service(
        cluster="prod",
        serviceName="svc-0",
        taskDefinition="api",
        desiredCount=1,
        launchType="FARGATE",
        tags=[{"key": "jarvis", "value": "managed"}],
    )
    clock.advance(30)
    waking = await app.reconciler.tick()
    assert waking.snapshot.resources["ecs://prod/svc-0"].health is Health.UNHEALTHY
    assert "ecs://prod/svc-0" not in {str(d.action.target) for d in waking.decisions}
    [note] = [note for _, note in waking.notes if note.resource == "ecs://prod/svc-0"]
    assert "raised from 0 to 1" in note.message

    clock.advance(180)
    never_started = await app.reconciler.tick()
    restarts = [d for d in never_started.decisions if str(d.action.target) == "ecs://prod/svc-0"]
    assert [d.action.kind for d in restarts] == [ActionKind.RESTART]


async def test_recovery_records_applied_an_orphan_whose_service_carries_its_key(
    make_app: AppFactory, ecs_client: ECSClient, clock: FixedClock
) -> None:
    """An intent a crash left open is closed as applied when its ECS service carries the
    action's key (the change made and tagged), and as unknown when it carries another
    action's key or none."""
    create_fleet(ecs_client, per_cluster=3)
    crashed = await make_app(clusters=["prod"])
    ecs = crashed.actuators[0]
    assert isinstance(ecs, EcsActuator)
    tick_id = ev.tick_id_for(clock.now(), "crashed")
    keys = {}
    for name in ("svc-0", "svc-1", "svc-2"):
        action = Action(ResourceRef("ecs", f"prod/{name}"), Restart(), "heal", "unhealthy")
        action_id = ev.action_id_for(tick_id, action)
        crashed.reconciler.recorder.record(ev.started(tick_id, clock.now(), action, action_id))
        keys[name] = (action, ev.idempotency_key(action_id))
    await crashed.reconciler.recorder.flush(clock.now())
    # The process ends after ECS made (and tagged) svc-0's change; svc-1 carries the key
    # of a later action; nothing reached svc-2.
    assert (await ecs.apply(*keys["svc-0"])).ok
    assert (await ecs.apply(keys["svc-1"][0], ev.idempotency_key("a later action"))).ok
    await crashed.aclose()

    clock.advance(60)
    restarted = await make_app(clusters=["prod"])

    kinds = [EventKind.ACTION_APPLIED, EventKind.ACTION_FAILED, EventKind.ACTION_UNKNOWN]
    closed = {e.resource: e for e in await restarted.store.events(kinds=kinds)}
    assert {uri: e.kind for uri, e in closed.items()} == {
        "ecs://prod/svc-0": EventKind.ACTION_APPLIED,
        "ecs://prod/svc-1": EventKind.ACTION_UNKNOWN,
        "ecs://prod/svc-2": EventKind.ACTION_UNKNOWN,
    }
    applied = closed["ecs://prod/svc-0"]
    assert applied.payload["recovered"] is True
    assert keys["svc-0"][1] in str(applied.payload["detail"])
    assert applied.payload["params"] == {}
    ledger = restarted.reconciler.ledger
    assert ledger.get(("ecs://prod/svc-0", "restart")).consecutive_failures == 0  # type: ignore[union-attr]
    assert ledger.get(("ecs://prod/svc-1", "restart")).consecutive_failures == 1  # type: ignore[union-attr]


def _restart(uri: str) -> OneShot:
    return OneShot(
        operator_action(ResourceRef.parse(uri), Restart(), actor="cli:test", reason=None)
    )


async def test_an_override_of_a_service_in_a_cluster_ecs_says_is_gone_is_refused_unsent(
    make_app: AppFactory, ecs_client: ECSClient
) -> None:
    """``[aws] clusters`` names one deleted since: an override of a service in it is refused
    before the guard (nothing under it exists), so it neither fails nor escalates; one in
    a cluster that is there goes through.

    Sent, it failed as terminal (ClusterNotFoundException), escalated and quarantined it.
    """
    create_fleet(ecs_client, per_cluster=1)
    app = await make_app(clusters=["prod", "retired"], policies=[_restart("ecs://retired/api")])
    report = await app.reconciler.tick()
    assert "ClusterNotFoundException" in report.snapshot.errors["ecs"]
    assert report.decisions == [], report.decisions
    (note,) = [n for _, n in report.notes if n.key == UNSETTLED]
    assert note.resource == "ecs://retired/api" and "not found" in note.message, note.message
    assert await app.store.events(kinds=["action.started", "action.escalated"]) == []
    assert await app.store.load_retries() == {}
    there = await make_app(clusters=["prod", "retired"], policies=[_restart("ecs://prod/svc-0")])
    (decision,) = (await there.reconciler.tick()).decisions
    assert decision.outcome is not None and decision.outcome.ok, decision
