"""Cloud Run through the whole loop: settings → actuator → reconciler ticks on a real store.

The actuator is built by `CloudRunActuator.from_settings` from a ``[cloudrun]``
section aimed at the fake API, and driven by `jarvis.app.build_app` with the
real heal and rollback policies, guard and SQLite event store.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from jarvis.actuators.base import Actuator, Sensor
from jarvis.actuators.cloudrun.actuator import CloudRunActuator
from jarvis.actuators.probes.endpoints import EndpointSensor
from jarvis.app import App, build_app
from jarvis.config import load_settings
from jarvis.config.timing import timing_warnings
from jarvis.loop import events as ev
from jarvis.loop.clock import VirtualClock
from jarvis.loop.overrides import OverrideQueue
from jarvis.loop.scheduler import Scheduler
from jarvis.model import (
    Action,
    ActionKind,
    ActionParams,
    Deploy,
    EventKind,
    Health,
    OutcomeStatus,
    ResourceRef,
    Restart,
    Rollback,
    Scale,
)
from jarvis.policies.base import Policy
from jarvis.policies.heal import HealPolicy
from jarvis.policies.operator import UNSETTLED, OneShot, operator_action
from jarvis.policies.rollback import RollbackPolicy
from tests import actions as typed
from tests.actions import new_key
from tests.cloudrun.conftest import BAD_IMAGE, IMAGE, PROJECT, REGION, service_name
from tests.cloudrun.fake_server import FakeCloudRun
from tests.fakes import FakeActuator

pytestmark = pytest.mark.anyio

API = f"cloudrun://{PROJECT}/{REGION}/api"
WORKER = f"cloudrun://{PROJECT}/{REGION}/worker"
AppFactory = Callable[..., Awaitable[App]]


@pytest.fixture
async def make_app(
    fake: FakeCloudRun, sqlite_url: str, clock: VirtualClock, tmp_path: Path
) -> AsyncIterator[AppFactory]:
    """Builds an app whose Cloud Run actuator comes from settings; closes it at the end."""
    apps: list[App] = []

    async def factory(
        policies: Sequence[Policy],
        *,
        extra: Sequence[Actuator] = (),
        services: Sequence[str] = ("api", "worker"),
        **more: Any,
    ) -> App:
        settings = load_settings(
            database_url=sqlite_url,
            spool_path=tmp_path / "spool.jsonl",
            allowlist=[
                {"provider": "cloudrun", "resources": f"{PROJECT}/{REGION}/*", "actions": ["*"]},
                {"provider": "sim", "resources": "*", "actions": ["*"]},
            ],
            cloudrun={
                "project": PROJECT,
                "region": REGION,
                "services": list(services),
                "credentials": "anonymous",
                "api_endpoint": fake.endpoint,
                "request_timeout": 2,
                "operation_timeout": 5,
                "poll_initial": 0.01,
                "poll_maximum": 0.05,
            },
            **more,
        )
        assert settings.cloudrun is not None
        cloudrun = CloudRunActuator.from_settings(settings.cloudrun, clock=clock)
        sensors: list[Sensor] = [cloudrun, *extra]
        if settings.probes is not None and settings.probes.endpoints:
            sensors.append(EndpointSensor(settings.probes.endpoints, clock=clock))
        app = await build_app(
            settings, clock=clock, actuators=sensors, policies=policies, run_id="t"
        )
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.aclose()


async def ticks(app: App, clock: VirtualClock, n: int) -> None:
    for _ in range(n):
        await app.reconciler.tick()
        clock.advance(30)


async def test_a_crash_looping_service_is_restarted_and_recovers(
    make_app: AppFactory, fake: FakeCloudRun, clock: VirtualClock
) -> None:
    """The heal policy restarts an UNHEALTHY service; the new revision makes it HEALTHY."""
    fake.state.crash(service_name("api"))
    app = await make_app([HealPolicy()])
    first = await app.reconciler.tick()
    assert first.snapshot.resources[API].health is Health.UNHEALTHY
    (decision,) = first.decisions
    assert decision.action.kind == ActionKind.RESTART
    assert decision.outcome is not None and decision.outcome.ok, decision.outcome
    clock.advance(30)
    second = await app.reconciler.tick()
    assert second.snapshot.resources[API].health is Health.HEALTHY
    assert second.decisions == []
    applied = await app.store.events(kinds=["action.applied"])
    assert [e.resource for e in applied] == [API]


async def test_restarts_that_keep_crashing_escalate_on_the_retry_budget(
    make_app: AppFactory, fake: FakeCloudRun, clock: VirtualClock
) -> None:
    """Three failed restarts (new revisions never ready), then escalation and quarantine."""
    fake.state.crash(service_name("api"))
    fake.state.revision_ready = lambda _service, _template: False
    app = await make_app([HealPolicy()])
    await ticks(app, clock, 10)
    assert len(fake.patches()) == 3
    failed = await app.store.events(kinds=["action.failed"])
    assert len(failed) == 3 and all(e.resource == API for e in failed)
    escalated = await app.store.events(kinds=["action.escalated"])
    assert [e.resource for e in escalated] == [API]


async def test_a_bad_deploy_is_rolled_back_to_the_previous_revision(
    make_app: AppFactory, fake: FakeCloudRun, clock: VirtualClock
) -> None:
    """A revision that never gets ready is rolled back: 100% of traffic to the last good one."""
    app = await make_app([HealPolicy(), RollbackPolicy()])
    first = await app.reconciler.tick()
    good = first.snapshot.resources[API].version
    clock.advance(30)
    cloudrun = app.actuators[0]
    assert isinstance(cloudrun, Actuator)
    # Someone ships a broken image by hand.
    deploy = await cloudrun.apply(_action(Deploy(BAD_IMAGE)), new_key())
    assert not deploy.ok
    second = await app.reconciler.tick()
    state = second.snapshot.resources[API]
    assert state.health is Health.DEGRADED and state.record_attributes()["rollout"] == "failed"
    (decision,) = second.decisions
    assert decision.action.kind == ActionKind.ROLLBACK and typed.version(decision.action) == good
    assert decision.outcome is not None and decision.outcome.ok, decision.outcome
    clock.advance(30)
    third = await app.reconciler.tick()
    after = third.snapshot.resources[API]
    assert after.health is Health.HEALTHY and after.version == good
    stored = fake.state.get_service(service_name("api"))
    assert stored["traffic"] == [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": good, "percent": 100}
    ]


async def test_a_failing_cloud_run_api_does_not_stop_other_actuators(
    make_app: AppFactory, fake: FakeCloudRun, clock: VirtualClock
) -> None:
    """With Cloud Run answering 500, the tick records the failure and still heals elsewhere."""
    other = FakeActuator(clock).add("web", health=Health.UNHEALTHY)
    app = await make_app([HealPolicy()], extra=[other])
    fake.fail_with(500)
    report = await app.reconciler.tick()
    assert "INTERNAL" in report.snapshot.errors["cloudrun"]
    assert [a.target.name for a in other.applied] == ["web"]
    observe_failed = await app.store.events(kinds=["observe.failed"])
    assert len(observe_failed) == 1


async def test_a_service_denied_by_iam_reads_unknown_and_the_others_are_still_acted_on(
    make_app: AppFactory, fake: FakeCloudRun, clock: VirtualClock
) -> None:
    """A 403 on one service: it reads UNKNOWN and is never acted on, the others are healed,
    the denial is recorded as a failed observe each tick, and the provider is not held."""
    fake.deny("worker")
    fake.state.crash(service_name("api"))
    probe = {"name": "worker-ep", "url": f"http://127.0.0.1:{closed_port()}/", "serves": WORKER}
    app = await make_app(
        [HealPolicy(), RollbackPolicy()],
        probes={"endpoints": [{**probe, "failure_threshold": 1, "timeout_seconds": 2}]},
    )
    first = await app.reconciler.tick()
    denied = first.snapshot.resources[WORKER]
    assert denied.health is Health.UNKNOWN
    assert denied.detail is not None and "PERMISSION_DENIED" in denied.detail
    assert "PERMISSION_DENIED" in first.snapshot.errors["cloudrun"]
    assert first.snapshot.resources["endpoint://worker-ep"].health is Health.UNHEALTHY
    assert {(d.action.target.name, d.action.kind) for d in first.decisions} >= {
        (f"{PROJECT}/{REGION}/api", ActionKind.RESTART)
    }
    clock.advance(30)
    # More failed observes than the provider breaker's threshold, then a new crash.
    reports = [first]
    for _ in range(4):
        reports.append(await app.reconciler.tick())
        clock.advance(30)
    fake.state.crash(service_name("api"))
    last = await app.reconciler.tick()
    (restart,) = last.decisions
    assert restart.action.kind == ActionKind.RESTART and restart.action.target.name.endswith("/api")
    assert restart.outcome is not None and restart.outcome.ok, restart
    for report in [*reports, last]:
        assert report.snapshot.resources[WORKER].health is Health.UNKNOWN
        assert all(d.action.target.name.endswith("/api") for d in report.decisions)
    assert not [p for p in fake.patches() if p.path.endswith("/worker")]
    observe_failed = await app.store.events(kinds=["observe.failed"])
    assert len(observe_failed) == 6
    assert all("worker" in (e.reason or "") for e in observe_failed)
    alerts = await app.store.events(kinds=["alert"])
    assert [e for e in alerts if "breaker" in e.payload] == []


async def test_every_service_denied_fails_the_observe(
    make_app: AppFactory, fake: FakeCloudRun
) -> None:
    """A 403 on every service is a lost permission, not a per-service condition: observe fails."""
    fake.deny("api")
    fake.deny("worker")
    app = await make_app([HealPolicy()])
    report = await app.reconciler.tick()
    assert "PERMISSION_DENIED" in report.snapshot.errors["cloudrun"]
    assert [uri for uri in report.snapshot.resources if uri.startswith("cloudrun://")] == []


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _action(params: ActionParams) -> Action:
    target = ResourceRef("cloudrun", f"{PROJECT}/{REGION}/api", "service")
    return Action(target, params, "operator", "manual deploy")


async def test_a_service_whose_first_revision_is_still_starting_is_not_restarted(
    make_app: AppFactory, fake: FakeCloudRun
) -> None:
    """A service just created (its first revision still deploying, nothing ready yet) is a
    rollout in progress: heal does not restart it into yet another first revision."""
    fake.state.add_service(PROJECT, REGION, "worker", image=IMAGE, starting=True)
    app = await make_app([HealPolicy()])

    report = await app.reconciler.tick()

    state = report.snapshot.resources[WORKER]
    assert state.health is Health.DEGRADED, state.detail
    assert state.record_attributes()["rollout"] == "in_progress"
    assert report.decisions == []
    assert fake.patches() == []


GHOST = f"cloudrun://{PROJECT}/{REGION}/ghost"


def _override(uri: str, params: ActionParams) -> Action:
    return operator_action(ResourceRef.parse(uri), params, actor="cli:test", reason=None)


async def test_an_override_of_a_service_cloud_run_answers_404_for_is_refused_unsent(
    make_app: AppFactory, fake: FakeCloudRun, clock: VirtualClock
) -> None:
    """`jarvis restart` (a `OneShot`) and the page's queue alike refuse a service that is not
    there, before the guard: no PATCH, no failed action, no escalation, no ledger row.

    Sent, it failed at the provider as terminal, escalated and quarantined a service
    the README says is never acted on.
    """
    for params in (Restart(), Rollback(""), Scale(replicas=2)):
        app = await make_app([OneShot(_override(GHOST, params))], services=("api", "ghost"))
        report = await app.reconciler.tick()
        assert report.snapshot.resources[GHOST].health is Health.UNKNOWN
        assert report.decisions == [], report.decisions
        (note,) = [n for _, n in report.notes if n.key == UNSETTLED]
        assert note.resource == GHOST and "not found" in note.message, note.message
        clock.advance(30)
    queue = OverrideQueue(wait=120.0)
    app = await make_app([queue], services=("api", "ghost"))
    scheduler = Scheduler(app.reconciler, clock, app.metrics, interval=30, hooks=queue)
    queue.wake = scheduler.wake
    async with anyio.create_task_group() as group:
        group.start_soon(scheduler.run)
        result = await queue.submit(_override(GHOST, Restart()))
        scheduler.stop()
    assert result.state == "refused" and "not found" in result.detail, result
    assert fake.patches() == []
    assert await app.store.events(kinds=["action.proposed", "action.failed"]) == []
    assert await app.store.events(kinds=["action.escalated"]) == []
    assert await app.store.load_retries() == {}


async def test_an_override_of_a_service_cloud_run_could_not_read_is_still_sent(
    make_app: AppFactory, fake: FakeCloudRun, clock: VirtualClock
) -> None:
    """Not read for another reason is not "not there": unread (the API answered 500), the
    operator's restart goes through the guard and is applied; read UNKNOWN because reading
    it was denied (403), it is sent too, and the provider's own answer is the outcome."""
    fake.fail_with(500, method="GET", times=1)
    app = await make_app([OneShot(_override(API, Restart()))], services=("api",))
    report = await app.reconciler.tick()
    assert "cloudrun" in report.snapshot.errors
    (decision,) = report.decisions
    assert decision.outcome is not None and decision.outcome.ok, decision
    assert len(fake.patches()) == 1
    fake.deny("worker")
    denied = await make_app([OneShot(_override(WORKER, Restart()))])
    report = await denied.reconciler.tick()
    assert report.snapshot.resources[WORKER].health is Health.UNKNOWN
    (decision,) = report.decisions
    assert decision.outcome is not None and decision.outcome.error_code == "PERMISSION_DENIED"


async def test_an_operation_timeout_past_the_apply_timeout_is_cut_by_the_apply_and_named(
    make_app: AppFactory, fake: FakeCloudRun
) -> None:
    """``operation_timeout`` 5 s inside a 0.5 s ``loop.apply_timeout``: a restart whose
    operation is still running is cut by the loop's limit, never Cloud Run's own, as
    `timing_warnings` says (`jarvis config check` prints it, `jarvis run` logs it)."""
    fake.state.crash(service_name("api"))
    fake.state.operation_polls = None  # the new revision's operation never finishes
    app = await make_app([HealPolicy()], loop={"apply_timeout": 0.5})

    (decision,) = (await app.reconciler.tick()).decisions

    assert decision.outcome is not None
    assert decision.outcome.status is OutcomeStatus.TIMED_OUT
    assert decision.outcome.detail == "apply did not finish within 0.5s"
    named = "cloudrun.operation_timeout (5 s) is not shorter than loop.apply_timeout (0.5 s)"
    assert any(w.startswith(named) for w in timing_warnings(app.settings))


async def test_recovery_records_applied_an_orphan_whose_finished_update_carries_its_key(
    make_app: AppFactory, fake: FakeCloudRun, clock: VirtualClock
) -> None:
    """An intent a crash left open is closed as applied when its service carries the action's
    key and has finished that update in success, and as unknown when the update's new
    revision never became ready."""
    crashed = await make_app([])
    cloudrun = crashed.actuators[0]
    assert isinstance(cloudrun, CloudRunActuator)
    tick_id = ev.tick_id_for(clock.now(), "crashed")
    sent = {}
    orphans: list[tuple[str, ActionParams]] = [(API, Restart()), (WORKER, Deploy(BAD_IMAGE))]
    for uri, params in orphans:
        action = Action(ResourceRef.parse(uri), params, "test", "because")
        action_id = ev.action_id_for(tick_id, action)
        crashed.reconciler.recorder.record(ev.started(tick_id, clock.now(), action, action_id))
        sent[uri] = (action, ev.idempotency_key(action_id))
    await crashed.reconciler.recorder.flush(clock.now())
    # The process ends after both updates were sent and carried their keys: the api's
    # restart rolled out, the worker's new revision never became ready.
    assert (await cloudrun.apply(*sent[API])).ok
    assert not (await cloudrun.apply(*sent[WORKER])).ok
    await crashed.aclose()

    clock.advance(60)
    restarted = await make_app([])

    kinds = [EventKind.ACTION_APPLIED, EventKind.ACTION_FAILED, EventKind.ACTION_UNKNOWN]
    closed = {e.resource: e for e in await restarted.store.events(kinds=kinds)}
    assert {uri: e.kind for uri, e in closed.items()} == {
        API: EventKind.ACTION_APPLIED,
        WORKER: EventKind.ACTION_UNKNOWN,
    }
    assert closed[API].payload["recovered"] is True
    assert sent[API][1] in str(closed[API].payload["detail"])
