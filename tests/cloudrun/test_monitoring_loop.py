"""Cloud Run services scaled and rolled back on Cloud Monitoring's metrics, through the loop.

`build_app` builds the Cloud Monitoring source from ``[metrics.cloud_monitoring]``
and ``[cloudrun]``; the services live in the fake Admin API; their metrics are
Cloud Run's series under Cloud Monitoring's PromQL names on a real Prometheus,
behind Google's token endpoint and bearer check (`GoogleFront`), read with
application-default credentials. The loop ticks in virtual time; the test waits
(in real time, with a generous deadline) for each change of traffic to show.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path

import pytest

from jarvis.actuators.base import Actuator
from jarvis.actuators.cloudrun.actuator import CloudRunActuator
from jarvis.app import App, build_app
from jarvis.config import load_settings
from jarvis.loop.clock import VirtualClock
from jarvis.model import Action, Deploy, ResourceRef
from jarvis.policies.base import Policy
from jarvis.policies.hpa import MetricTargets
from jarvis.policies.rollback import RollbackPolicy
from jarvis.policies.scaling import ScalingPolicy
from jarvis.policies.scaling_rules import ScalingRule
from tests import actions as typed
from tests.actions import new_key
from tests.cloudrun.conftest import PROJECT, REGION, service_name
from tests.cloudrun.fake_server import FakeCloudRun
from tests.cloudrun.google_front import GoogleFront
from tests.cloudrun.monitoring_exporter import CloudRunExporter, Traffic
from tests.metric_loop import tick, values_seen

pytestmark = pytest.mark.anyio

API = f"cloudrun://{PROJECT}/{REGION}/api"
NEW_IMAGE = "us-docker.pkg.dev/demo-project/apps/api:2.0"

AppFactory = Callable[[Sequence[Policy]], Awaitable[App]]


@pytest.fixture
async def make_app(
    fake: FakeCloudRun,
    google: GoogleFront,
    adc: Path,
    sqlite_url: str,
    clock: VirtualClock,
    tmp_path: Path,
) -> AsyncIterator[AppFactory]:
    apps: list[App] = []

    async def factory(policies: Sequence[Policy]) -> App:
        settings = load_settings(
            database_url=sqlite_url,
            spool_path=tmp_path / "spool.jsonl",
            allowlist=[
                {
                    "provider": "cloudrun",
                    "resources": f"{PROJECT}/{REGION}/*",
                    "actions": ["rollback", "scale"],
                }
            ],
            cloudrun={
                "project": PROJECT,
                "region": REGION,
                "services": ["api", "worker"],
                "credentials": "anonymous",
                "api_endpoint": fake.endpoint,
                "request_timeout": 2,
                "operation_timeout": 5,
                "poll_initial": 0.01,
                "poll_maximum": 0.05,
            },
            metrics={
                "cloud_monitoring": {
                    "url": google.monitoring_url,
                    "window": "5s",
                    "timeout_seconds": 10,
                }
            },
        )
        assert settings.cloudrun is not None
        cloudrun = CloudRunActuator.from_settings(settings.cloudrun, clock=clock)
        app = await build_app(
            settings, clock=clock, actuators=[cloudrun], policies=policies, run_id="cm"
        )
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.aclose()


seen = partial(values_seen, resource=API, source="Cloud Monitoring")


async def test_a_traffic_spike_in_cloud_monitoring_scales_the_service(
    fake: FakeCloudRun, make_app: AppFactory, exporter: CloudRunExporter, clock: VirtualClock
) -> None:
    """Requests per minute from Cloud Monitoring drive the HPA arithmetic as CloudWatch does on ECS;
    the live instance count is ``replicas.running``."""
    rule = ScalingRule(
        match=f"cloudrun://{PROJECT}/{REGION}/*",
        targets=MetricTargets(requests_per_minute=300),
        max_replicas=10,
    )
    app = await make_app([ScalingPolicy([rule])])
    exporter.traffic("api", Traffic(per_second=4, instances=2))
    await seen(app, lambda v: 180 <= v.get("requests_per_minute", 0) <= 300)
    calm = await tick(app, clock)
    state = calm.snapshot.resources[API]
    assert state.replicas is not None and state.replicas.running == 2  # not min_instances (1)
    assert not [d for d in calm.decisions if str(d.action.target) == API]

    exporter.traffic("api", Traffic(per_second=40, instances=2))
    await seen(app, lambda v: v.get("requests_per_minute", 0) > 2000)
    spike = await tick(app, clock)

    (decision,) = [d for d in spike.applied if str(d.action.target) == API]
    wanted = typed.replicas(decision.action)
    assert decision.action.kind == "scale"
    assert wanted is not None and wanted > 1
    stored = fake.state.get_service(service_name("api"))
    assert stored["scaling"]["minInstanceCount"] == wanted


async def test_metrics_that_stop_arriving_decide_nothing_and_say_so(
    fake: FakeCloudRun, make_app: AppFactory, exporter: CloudRunExporter, clock: VirtualClock
) -> None:
    """Cloud Run stops reporting a service: past the window, no scaling, a note naming why."""
    rule = ScalingRule(
        match=f"cloudrun://{PROJECT}/{REGION}/*",
        targets=MetricTargets(requests_per_minute=300),
        max_replicas=10,
    )
    app = await make_app([ScalingPolicy([rule])])
    exporter.traffic("api", Traffic(per_second=40, instances=3))
    await seen(app, lambda v: v.get("requests_per_minute", 0) > 2000)
    exporter.silence("api")
    await seen(app, lambda v: not v)  # nothing older than the 5 s window is answered

    report = await tick(app, clock)
    state = report.snapshot.resources[API]
    assert "requests_per_minute" not in state.metrics
    assert state.replicas is not None and state.replicas.running == 1  # the floor, not 3
    assert not [d for d in report.decisions if str(d.action.target) == API]
    notes = [note.message for _, note in report.notes if note.resource == API]
    assert notes == [f"{API}: no scaling decision: missing metrics requests_per_minute"]
    assert fake.state.get_service(service_name("api"))["scaling"]["minInstanceCount"] == 1


async def test_an_error_rate_regression_after_a_new_revision_rolls_it_back(
    fake: FakeCloudRun, make_app: AppFactory, exporter: CloudRunExporter, clock: VirtualClock
) -> None:
    """The new revision's 5xx share from Cloud Monitoring, worse than the old one's: rollback."""
    app = await make_app([RollbackPolicy(consecutive_checks=2)])
    first = fake.state.get_service(service_name("api"))["latestReadyRevision"].rsplit("/", 1)[1]
    exporter.traffic("api", Traffic(per_second=20, revision=first))
    await seen(app, lambda v: v.get("error_rate") == 0.0)
    baseline = [await tick(app, clock) for _ in range(3)]
    good = baseline[-1].snapshot.resources[API].version
    assert good is not None

    # Someone ships a new image by hand; it gets ready and starts failing requests.
    (cloudrun,) = app.actuators
    assert isinstance(cloudrun, Actuator)
    target = ResourceRef("cloudrun", f"{PROJECT}/{REGION}/api", "service")
    deploy = await cloudrun.apply(Action(target, Deploy(NEW_IMAGE), "operator", "ship"), new_key())
    assert deploy.ok, deploy
    fresh = fake.state.get_service(service_name("api"))["latestCreatedRevision"].rsplit("/", 1)[1]
    assert fresh != good
    exporter.traffic("api", Traffic(per_second=20, error_share=0.5, revision=fresh))
    await seen(app, lambda v: v.get("error_rate", 0) > 0.3)

    rollbacks = []
    for _ in range(6):
        report = await tick(app, clock)
        rollbacks += [d.action for d in report.applied if d.action.kind == "rollback"]
        if rollbacks:
            break
    assert [typed.version(a) for a in rollbacks] == [good]
    stored = fake.state.get_service(service_name("api"))
    assert stored["traffic"] == [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": good, "percent": 100}
    ]


async def test_a_service_scaled_up_scales_down_again_when_the_traffic_goes(
    fake: FakeCloudRun, make_app: AppFactory, exporter: CloudRunExporter, clock: VirtualClock
) -> None:
    """The min instances a scale-up wrote are the count Jarvis drives, not a floor: they were
    read back as the service's minimum, so after the first scale-up it never scaled down."""
    rule = ScalingRule(
        match=f"cloudrun://{PROJECT}/{REGION}/*",
        targets=MetricTargets(requests_per_minute=300),
        max_replicas=10,
    )
    app = await make_app([ScalingPolicy([rule])])
    exporter.traffic("api", Traffic(per_second=40, instances=2))
    await seen(app, lambda v: v.get("requests_per_minute", 0) > 2000)
    (up,) = [d for d in (await tick(app, clock)).applied if str(d.action.target) == API]
    raised = typed.replicas(up.action)
    assert raised is not None and raised > 1

    exporter.traffic("api", Traffic(per_second=1, instances=raised))
    await seen(app, lambda v: 0 < v.get("requests_per_minute", 0) <= 120)
    downs = []
    for _ in range(12):  # past the scale-down stabilization window (300 s)
        report = await tick(app, clock)
        downs += [d for d in report.applied if str(d.action.target) == API]
        if downs:
            break

    assert downs, "never scaled down"
    lowered = typed.replicas(downs[0].action)
    assert lowered is not None and lowered < raised
    assert fake.state.get_service(service_name("api"))["scaling"]["minInstanceCount"] == lowered
