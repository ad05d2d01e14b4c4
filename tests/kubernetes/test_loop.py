"""The kubernetes actuator inside the real loop: `build_app` on SQLite, ticks in virtual time.

Heal restarts a crash loop; a crash that restarts cannot fix is escalated by
the retry budget; a bad deploy is rolled back by the rollback policy; and an
API answering 500 is recorded without stopping another provider's actions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from kubernetes import client

from jarvis.actuators.base import Actuator
from jarvis.actuators.kubernetes.actuator import KubernetesActuator
from jarvis.app import App, build_app
from jarvis.config import load_settings
from jarvis.config.kubernetes import KubernetesSettings
from jarvis.loop import events as ev
from jarvis.loop.clock import VirtualClock
from jarvis.model import Action, EventKind, Health, ResourceRef, Restart
from jarvis.policies.base import Policy
from jarvis.policies.heal import HealPolicy
from jarvis.policies.operator import OneShot, operator_action
from jarvis.policies.rollback import RollbackPolicy
from tests import actions as typed
from tests.fakes import FakeActuator
from tests.kubernetes.fake_apiserver import FakeApiServer

pytestmark = pytest.mark.anyio

ALLOW = [
    {"provider": "k8s", "resources": "default/*", "actions": ["restart", "rollback", "scale"]},
    {"provider": "sim", "resources": "*", "actions": ["*"]},
]
PRODUCER = "k8s://default/producer"

AppFactory = Callable[..., Awaitable[App]]


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def make_app(
    sqlite_url: str, vclock: VirtualClock, api_client: client.ApiClient
) -> AsyncIterator[AppFactory]:
    apps: list[App] = []

    async def factory(
        policies: Sequence[Policy],
        extra: Sequence[Actuator] = (),
        namespaces: Sequence[str] = ("default",),
    ) -> App:
        settings = load_settings(database_url=sqlite_url, allowlist=ALLOW)
        section = KubernetesSettings(request_timeout=2.0, namespaces=list(namespaces))
        k8s = KubernetesActuator.from_settings(section, clock=vclock, api_client=api_client)
        app = await build_app(
            settings,
            clock=vclock,
            actuators=[k8s, *extra],
            policies=policies,
            run_id="k8s",
        )
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.store.aclose()  # the shared api_client is closed by its own fixture


async def ticks(app: App, clock: VirtualClock, n: int) -> list[Any]:
    reports = []
    for _ in range(n):
        reports.append(await app.reconciler.tick())
        clock.advance(30)
    return reports


async def test_the_loop_restarts_a_crash_looping_deployment(
    apiserver: FakeApiServer, make_app: AppFactory, vclock: VirtualClock
) -> None:
    """A crash-looping Deployment is restarted by heal and observed healthy the next tick."""
    apiserver.cluster.add_deployment("default", "producer")
    apiserver.cluster.crash_pods("default", "producer")
    app = await make_app([HealPolicy()])

    first, second = await ticks(app, vclock, 2)

    assert [(str(d.action.target), d.action.kind) for d in first.applied] == [(PRODUCER, "restart")]
    assert second.snapshot.resources[PRODUCER].health is Health.HEALTHY
    assert second.decisions == []
    applied = await app.store.events(kinds=["action.applied"])
    assert [e.resource for e in applied] == [PRODUCER]


async def test_a_crash_restarts_cannot_fix_is_escalated_after_three_attempts(
    apiserver: FakeApiServer, make_app: AppFactory, vclock: VirtualClock
) -> None:
    """When every new pod crashes too, heal restarts three times and the budget escalates."""
    apiserver.cluster.fail_image("registry.local/app:v1", "CrashLoopBackOff")
    apiserver.cluster.add_deployment("default", "producer")
    app = await make_app([HealPolicy()])

    await ticks(app, vclock, 12)

    restarts = [c for c in apiserver.writes() if c.resource == "deployments"]
    assert len(restarts) == 3
    escalated = await app.store.events(kinds=["action.escalated"])
    assert [e.resource for e in escalated] == [PRODUCER]


async def test_a_deployment_deleted_between_observe_and_apply_pages_no_one(
    apiserver: FakeApiServer, make_app: AppFactory, vclock: VirtualClock
) -> None:
    """Heal restarts a crash loop a human deletes after the tick's list and before the
    restart's read: recorded failed as gone; no escalation, quarantine, failure or breaker,
    and the next tick no longer sees it."""
    apiserver.cluster.add_deployment("default", "producer")
    apiserver.cluster.crash_pods("default", "producer")
    apiserver.cluster.delete_before_get("default", "producer")
    app = await make_app([HealPolicy()])

    first, second, _ = await ticks(app, vclock, 3)

    assert await app.store.events(kinds=["action.escalated", "alert"]) == []
    (decision,) = first.decisions
    assert decision.outcome is not None and decision.outcome.gone, decision
    assert PRODUCER not in second.snapshot.resources
    assert apiserver.writes() == []
    (failed,) = await app.store.events(kinds=["action.failed"])
    assert (failed.payload["error_kind"], failed.payload["error_code"]) == ("gone", "NotFound")
    row = (await app.store.load_retries())[(PRODUCER, "restart")]
    assert (row.quarantined, row.consecutive_failures, len(row.attempts)) == (False, 0, 1)


async def test_the_loop_rolls_back_a_bad_deploy(
    apiserver: FakeApiServer, make_app: AppFactory, vclock: VirtualClock
) -> None:
    """A new version that crash-loops is rolled back to the version seen healthy before it."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "producer", image="registry.local/app:v1")
    cluster.fail_image("registry.local/app:v2", "CrashLoopBackOff")
    app = await make_app([HealPolicy(), RollbackPolicy()])
    (healthy,) = await ticks(app, vclock, 1)
    good = healthy.snapshot.resources[PRODUCER].version
    body = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "app", "image": "registry.local/app:v2"}]}
            }
        }
    }
    cluster.patch(
        "deployments", "default", "producer", body, "application/strategic-merge-patch+json"
    )

    bad_tick, after = await ticks(app, vclock, 2)

    assert [(d.action.kind, typed.version(d.action)) for d in bad_tick.applied] == [
        ("rollback", good)
    ]
    state = after.snapshot.resources[PRODUCER]
    assert (state.health, state.version) == (Health.HEALTHY, good)
    assert (
        cluster.deployment_spec("default", "producer")["template"]["spec"]["containers"][0]["image"]
        == "registry.local/app:v1"
    )


async def test_a_failing_kubernetes_api_does_not_stop_other_providers(
    apiserver: FakeApiServer, make_app: AppFactory, vclock: VirtualClock
) -> None:
    """With the API answering 500, the tick records the error and still heals elsewhere."""
    apiserver.fault = "error"
    fleet = FakeActuator(vclock).add("web", health=Health.UNHEALTHY)
    app = await make_app([HealPolicy()], extra=[fleet])

    (report,) = await ticks(app, vclock, 1)

    assert set(report.snapshot.errors) == {"kubernetes"}
    assert "InternalError" in report.snapshot.errors["kubernetes"]
    assert [str(a.target) for a in fleet.applied] == ["sim://web"]
    failed = await app.store.events(kinds=["observe.failed"])
    assert len(failed) == 1


async def test_a_deployment_whose_first_pods_are_still_starting_is_not_restarted(
    apiserver: FakeApiServer, make_app: AppFactory, vclock: VirtualClock
) -> None:
    """A new Deployment whose pods still pull their image (0 available, no pod failing,
    progress deadline not passed) is a rollout in progress: heal leaves it alone."""
    apiserver.cluster.fail_image("registry.local/app:v1", "ContainerCreating")
    apiserver.cluster.add_deployment("default", "producer", replicas=2)
    app = await make_app([HealPolicy()])

    reports = await ticks(app, vclock, 3)

    for report in reports:
        state = report.snapshot.resources[PRODUCER]
        assert state.health is Health.DEGRADED, state.detail
        assert report.decisions == []
    assert [c for c in apiserver.calls if c.verb == "patch"] == []


def _roll_out(cluster: Any, image: str) -> None:
    body = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
    cluster.patch(
        "deployments", "default", "producer", body, "application/strategic-merge-patch+json"
    )


async def test_restart_degraded_leaves_a_rollout_in_progress_until_its_deadline(
    apiserver: FakeApiServer, make_app: AppFactory, vclock: VirtualClock
) -> None:
    """With restart_degraded, a Deployment DEGRADED because its new pods are still starting
    is not restarted tick after tick; once past its progress deadline, it is restarted."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "producer", replicas=2)
    cluster.fail_image("registry.local/app:v2", "ContainerCreating")
    _roll_out(cluster, "registry.local/app:v2")
    app = await make_app([HealPolicy(restart_degraded=True)])

    rolling = await ticks(app, vclock, 3)
    cluster.exceed_progress_deadline("default", "producer")
    (late,) = await ticks(app, vclock, 1)

    for report in rolling:
        state = report.snapshot.resources[PRODUCER]
        assert state.health is Health.DEGRADED, state.detail
        assert report.decisions == []
    assert late.snapshot.resources[PRODUCER].health is Health.UNHEALTHY
    assert [(str(d.action.target), d.action.kind) for d in late.applied] == [(PRODUCER, "restart")]
    assert len([c for c in apiserver.writes() if c.resource == "deployments"]) == 1


async def test_restart_degraded_restarts_a_deployment_degraded_after_its_rollout(
    apiserver: FakeApiServer, make_app: AppFactory, vclock: VirtualClock
) -> None:
    """With restart_degraded, a Deployment whose rollout completed and which then lost a
    pod's readiness is DEGRADED, not rolling out: it is restarted."""
    apiserver.cluster.add_deployment("default", "producer", replicas=2)
    apiserver.cluster.crash_pods("default", "producer", reason="ContainerCreating", count=1)
    app = await make_app([HealPolicy(restart_degraded=True)])

    (report,) = await ticks(app, vclock, 1)

    assert report.snapshot.resources[PRODUCER].health is Health.DEGRADED
    assert [(str(d.action.target), d.action.kind) for d in report.applied] == [
        (PRODUCER, "restart")
    ]


async def test_a_pod_lost_after_a_new_version_rolled_out_does_not_roll_it_back(
    apiserver: FakeApiServer, make_app: AppFactory, vclock: VirtualClock
) -> None:
    """A new version that rolled out completely, then lost one pod's readiness, became
    ready: the rollback policy does not read it as "not ready after the change"."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "producer", replicas=2)
    app = await make_app([RollbackPolicy(ready_timeout_seconds=60)])
    await ticks(app, vclock, 1)
    _roll_out(cluster, "registry.local/app:v2")
    settled = await ticks(app, vclock, 4)
    cluster.crash_pods("default", "producer", reason="ContainerCreating", count=1)

    (report,) = await ticks(app, vclock, 1)

    assert settled[-1].snapshot.resources[PRODUCER].health is Health.HEALTHY
    assert report.snapshot.resources[PRODUCER].health is Health.DEGRADED
    assert report.decisions == []
    assert (
        cluster.deployment_spec("default", "producer")["template"]["spec"]["containers"][0]["image"]
        == "registry.local/app:v2"
    )


async def test_a_namespace_without_a_role_binding_does_not_blind_jarvis_to_the_others(
    apiserver: FakeApiServer, make_app: AppFactory, vclock: VirtualClock
) -> None:
    """RBAC forbids one namespace: its Deployments are unseen and untouched, the 403 is the
    tick's failed observe, and a crash loop in the other namespace is still restarted."""
    apiserver.cluster.add_deployment("default", "producer")
    apiserver.cluster.add_deployment("prod", "ai-brain")
    apiserver.cluster.crash_pods("default", "producer")
    apiserver.cluster.crash_pods("prod", "ai-brain")
    apiserver.forbidden.add("prod")
    app = await make_app([HealPolicy()], namespaces=["default", "prod"])

    (report,) = await ticks(app, vclock, 1)

    assert report.snapshot.resources[PRODUCER].health is Health.UNHEALTHY
    assert "k8s://prod/ai-brain" not in report.snapshot.resources
    assert "Forbidden" in report.snapshot.errors["kubernetes"]
    assert 'in the namespace "prod"' in report.snapshot.errors["kubernetes"]
    (decision,) = report.decisions
    assert str(decision.action.target) == PRODUCER
    assert decision.outcome is not None and decision.outcome.ok, decision.outcome
    assert {c.namespace for c in apiserver.writes()} == {"default"}


async def test_an_unreadable_pod_neither_opens_the_breaker_nor_hides_the_others(
    apiserver: FakeApiServer, make_app: AppFactory, vclock: VirtualClock
) -> None:
    """One pod the client refuses, tick after tick: its Deployment is UNKNOWN and untouched,
    the provider's breaker stays closed, and a crash loop beside it is still restarted."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "producer")
    cluster.add_deployment("default", "consumer")
    pod = cluster.pods_of("default", "producer")[0]["metadata"]["name"]
    cluster.set_field("pods", "default", pod, "status.containerStatuses.0.restartCount", "three")
    app = await make_app([HealPolicy()])

    reports = await ticks(app, vclock, 4)
    cluster.crash_pods("default", "consumer")
    (last,) = await ticks(app, vclock, 1)

    for report in [*reports, last]:
        assert report.snapshot.resources[PRODUCER].health is Health.UNKNOWN
        assert "Unreadable" in report.snapshot.errors["kubernetes"]
    assert app.reconciler.breakers.state("k8s").opened_at is None
    assert [str(d.action.target) for d in last.applied] == ["k8s://default/consumer"]
    assert {c.name for c in apiserver.writes()} == {"consumer"}


async def test_an_override_of_a_deployment_the_api_does_not_list_is_refused_unsent(
    apiserver: FakeApiServer, make_app: AppFactory
) -> None:
    """A Deployment deleted (or never there) is not observed: every provider answered and
    none has it, so `jarvis restart` refuses it before the guard and writes nothing."""
    apiserver.cluster.add_deployment("default", "producer")
    ghost = ResourceRef.parse("k8s://default/ghost")
    action = operator_action(ghost, Restart(), actor="cli:test", reason=None)
    app = await make_app([OneShot(action)], namespaces=("default", "nowhere"))
    report = await app.reconciler.tick()
    assert report.snapshot.errors == {} and PRODUCER in report.snapshot.resources
    assert report.decisions == []
    (note,) = [n for _, n in report.notes]
    assert note.key == "operator:unknown" and note.resource == str(ghost)
    assert apiserver.writes() == []
    assert await app.store.load_retries() == {}


async def test_recovery_records_applied_an_orphan_whose_deployment_carries_its_key(
    apiserver: FakeApiServer, make_app: AppFactory, vclock: VirtualClock
) -> None:
    """An intent a crash left open is closed as applied when its Deployment carries the
    action's key where its kind writes it, and as unknown when it carries another key or none."""
    for name in ("api-0", "api-1", "api-2"):
        apiserver.cluster.add_deployment("default", name)
    crashed = await make_app([])
    k8s = crashed.actuators[0]
    assert isinstance(k8s, KubernetesActuator)
    tick_id = ev.tick_id_for(vclock.now(), "crashed")
    sent = {}
    for name in ("api-0", "api-1", "api-2"):
        action = Action(ResourceRef("k8s", f"default/{name}"), Restart(), "heal", "crash loop")
        action_id = ev.action_id_for(tick_id, action)
        crashed.reconciler.recorder.record(ev.started(tick_id, vclock.now(), action, action_id))
        sent[name] = (action, ev.idempotency_key(action_id))
    await crashed.reconciler.recorder.flush(vclock.now())
    # The process ends after api-0's restart was written; api-1 carries a later action's key;
    # nothing reached api-2.
    assert (await k8s.apply(*sent["api-0"])).ok
    assert (await k8s.apply(sent["api-1"][0], ev.idempotency_key("a later action"))).ok
    await crashed.store.aclose()

    vclock.advance(60)
    restarted = await make_app([])

    kinds = [EventKind.ACTION_APPLIED, EventKind.ACTION_FAILED, EventKind.ACTION_UNKNOWN]
    closed = {e.resource: e for e in await restarted.store.events(kinds=kinds)}
    assert {uri: e.kind for uri, e in closed.items()} == {
        "k8s://default/api-0": EventKind.ACTION_APPLIED,
        "k8s://default/api-1": EventKind.ACTION_UNKNOWN,
        "k8s://default/api-2": EventKind.ACTION_UNKNOWN,
    }
    applied = closed["k8s://default/api-0"]
    assert applied.payload["recovered"] is True
    assert sent["api-0"][1] in str(applied.payload["detail"])
