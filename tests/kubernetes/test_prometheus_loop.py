"""Kubernetes Deployments scaled and rolled back on metrics from a real Prometheus.

`build_app` builds the Prometheus source from ``[metrics.prometheus]``; the
Deployment lives in the fake API server; its traffic is an exporter the test
drives, scraped every second by /usr/bin/prometheus. The loop ticks in
virtual time, and the test waits (in real time, with a generous deadline) for
Prometheus to see each change of traffic before the tick that should act on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from functools import partial

import pytest
from kubernetes import client

from jarvis.actuators.kubernetes.actuator import KubernetesActuator
from jarvis.app import App, build_app
from jarvis.config import load_settings
from jarvis.config.kubernetes import KubernetesSettings
from jarvis.loop.clock import VirtualClock
from jarvis.policies.base import Policy
from jarvis.policies.hpa import MetricTargets
from jarvis.policies.rollback import RollbackPolicy
from jarvis.policies.scaling import ScalingPolicy
from jarvis.policies.scaling_rules import ScalingRule
from tests import actions as typed
from tests.kubernetes.fake_apiserver import FakeApiServer
from tests.metric_loop import tick, values_seen
from tests.prometheus.conftest import QUERIES
from tests.prometheus.server import Exporter, Load, PrometheusServer

pytestmark = pytest.mark.anyio

WEB = "k8s://default/web"
ALLOW = [{"provider": "k8s", "resources": "default/*", "actions": ["rollback", "scale"]}]

AppFactory = Callable[[Sequence[Policy], VirtualClock], Awaitable[App]]


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    served = Exporter(["web"])
    yield served
    served.close()


@pytest.fixture
def prometheus(exporter: Exporter) -> Iterator[PrometheusServer]:
    with PrometheusServer([exporter.port]) as server:
        yield server


@pytest.fixture
async def make_app(
    sqlite_url: str,
    apiserver: FakeApiServer,
    api_client: client.ApiClient,
    prometheus: PrometheusServer,
) -> AsyncIterator[AppFactory]:
    apps: list[App] = []

    async def factory(policies: Sequence[Policy], clock: VirtualClock) -> App:
        settings = load_settings(
            database_url=sqlite_url,
            allowlist=ALLOW,
            kubernetes={"host": apiserver.url, "token": "t"},
            metrics={
                "prometheus": {
                    "url": prometheus.url,
                    "timeout_seconds": 10,
                    "queries": QUERIES,
                    "services": {WEB: "web"},
                }
            },
        )
        k8s = KubernetesActuator.from_settings(
            KubernetesSettings(request_timeout=2.0), clock=clock, api_client=api_client
        )
        app = await build_app(
            settings, clock=clock, actuators=[k8s], policies=policies, run_id="prom"
        )
        apps.append(app)
        return app

    yield factory
    for app in apps:
        for source in app.sources:
            await source.aclose()
        await app.store.aclose()  # the shared api_client is closed by its own fixture


seen = partial(values_seen, resource=WEB, source="Prometheus")


async def test_a_traffic_spike_in_prometheus_scales_the_deployment(
    apiserver: FakeApiServer, make_app: AppFactory, exporter: Exporter
) -> None:
    """Requests per minute from PromQL drive the HPA arithmetic as CloudWatch does on ECS."""
    apiserver.cluster.add_deployment("default", "web", replicas=2)
    clock = VirtualClock()
    rule = ScalingRule(
        match="k8s://default/*", targets=MetricTargets(requests_per_minute=300), max_replicas=10
    )
    app = await make_app([ScalingPolicy([rule])], clock)
    exporter.traffic("web", Load(per_second=10))
    await seen(app, lambda v: 500 <= v.get("requests_per_minute", 0) <= 700)
    calm = await tick(app, clock)
    assert calm.snapshot.resources[WEB].metrics["requests_per_minute"] > 0

    exporter.traffic("web", Load(per_second=100))
    await seen(app, lambda v: v.get("requests_per_minute", 0) > 4000)
    spike = await tick(app, clock)

    (decision,) = [d for d in spike.applied if str(d.action.target) == WEB]
    wanted = typed.replicas(decision.action)
    assert decision.action.kind == "scale"
    assert wanted is not None and wanted > 2
    scale = apiserver.cluster.get_scale("default", "web")
    assert scale["spec"]["replicas"] == wanted


async def test_an_error_rate_regression_after_a_new_revision_rolls_it_back(
    apiserver: FakeApiServer, make_app: AppFactory, exporter: Exporter
) -> None:
    """The new revision's error rate, read from PromQL, worse than the old one's: rollback."""
    cluster = apiserver.cluster
    cluster.add_deployment("default", "web", image="registry.local/app:v1")
    clock = VirtualClock()
    app = await make_app([RollbackPolicy(consecutive_checks=2)], clock)
    exporter.traffic("web", Load(per_second=20))
    await seen(app, lambda v: v.get("error_rate") == 0.0)
    baseline = [await tick(app, clock) for _ in range(3)]
    good = baseline[-1].snapshot.resources[WEB].version

    body = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "app", "image": "registry.local/app:v2"}]}
            }
        }
    }
    cluster.patch("deployments", "default", "web", body, "application/strategic-merge-patch+json")
    exporter.traffic("web", Load(per_second=20, error_share=0.5))
    await seen(app, lambda v: v.get("error_rate", 0) > 0.3)

    rollbacks = []
    for _ in range(6):
        report = await tick(app, clock)
        rollbacks += [d.action for d in report.applied if d.action.kind == "rollback"]
        if rollbacks:
            break
    assert [typed.version(a) for a in rollbacks] == [good]
    containers = cluster.deployment_spec("default", "web")["template"]["spec"]["containers"]
    assert containers[0]["image"] == "registry.local/app:v1"
