"""All three real providers at once: `jarvis plan` and `tick` on ECS, Kubernetes and Cloud Run.

End to end through the installed `jarvis` command (a subprocess, SQLite store):
one TOML file configures ``[aws]`` (moto), ``[kubernetes]`` (the fake API
server, host + token) and ``[cloudrun]`` (the fake Admin API, anonymous), so the
composition root builds every actuator from settings exactly as in production.
Each cloud holds one unhealthy and one healthy service; the heal policy should
restart the unhealthy one on every provider, and one provider failing must not
stop the others. Helpers live in `tests.three_providers_support`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.aws.moto_server import running_moto
from tests.cloudrun.conftest import service_name
from tests.cloudrun.fake_server import FakeCloudRun
from tests.kubernetes.fake_apiserver import FakeApiServer
from tests.three_providers_support import (
    ECS_SICK,
    HEALTHY,
    K8S_SICK,
    K8S_TOKEN,
    RUN_SICK,
    SICK,
    ThreeClouds,
    by_resource,
    ecs_client,
    primary_deployment,
    reset_moto,
    seed_cloudrun,
    seed_ecs,
    seed_kubernetes,
    write_config,
)

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """moto on 127.0.0.1 (a free port) for this module; each test resets its state."""
    with running_moto() as url:
        yield url


@pytest.fixture
def clouds(
    moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ThreeClouds]:
    """The three seeded clouds and a config file naming them all; the fakes stop at the end."""
    reset_moto(moto_server)
    ecs = ecs_client(moto_server)
    seed_ecs(ecs, monkeypatch)
    with FakeApiServer(token=K8S_TOKEN) as apiserver, FakeCloudRun() as cloudrun:
        seed_kubernetes(apiserver)
        seed_cloudrun(cloudrun)
        config = write_config(
            tmp_path / "jarvis.toml",
            moto=moto_server,
            k8s=apiserver.url,
            cloudrun=cloudrun.endpoint,
        )
        try:
            yield ThreeClouds(tmp_path, config, ecs, apiserver, cloudrun)
        finally:
            ecs.close()


def test_plan_proposes_a_dry_run_restart_on_every_provider(clouds: ThreeClouds) -> None:
    """`jarvis plan` proposes heal restarts on all three providers, blocked as a dry run."""
    before = primary_deployment(clouds.ecs, "api")

    rows = by_resource(clouds.rows("plan"))

    assert set(rows) == SICK, rows
    for uri, row in rows.items():
        assert (row["action"], row["policy"], row["decision"]) == (
            "restart",
            "heal",
            "blocked: dry_run",
        ), uri
    assert clouds.apiserver.writes() == []
    assert clouds.cloudrun.patches() == []
    assert primary_deployment(clouds.ecs, "api") == before
    # `plan` records nothing, and in a fresh directory creates nothing: there is no
    # database for it to have written an event to (the readers refuse a missing one).
    assert not (clouds.tmp_path / "jarvis.db").exists()


def test_tick_restarts_the_unhealthy_service_on_every_provider(clouds: ThreeClouds) -> None:
    """`jarvis tick` restarts the one unhealthy service on ECS, Kubernetes and Cloud Run."""
    ecs_before = {name: primary_deployment(clouds.ecs, name) for name in ("api", "web")}

    rows = by_resource(clouds.rows("tick"))

    assert {uri: row["decision"] for uri, row in rows.items()} == dict.fromkeys(SICK, "applied")
    # ECS: a forced new deployment of api only.
    assert primary_deployment(clouds.ecs, "api") != ecs_before["api"]
    assert primary_deployment(clouds.ecs, "web") == ecs_before["web"]
    # Kubernetes: one patch, of producer's pod template (`kubectl rollout restart`).
    writes = [(c.verb, c.resource, c.name) for c in clouds.apiserver.writes()]
    assert writes == [("patch", "deployments", "producer")]
    template = clouds.apiserver.cluster.deployment_spec("default", "producer")["template"]
    assert RESTARTED_AT in template["metadata"]["annotations"]
    # Cloud Run: one update of api, which makes a new revision.
    assert [p.path for p in clouds.cloudrun.patches()] == [f"/v2/{service_name('api')}"]
    assert len(clouds.cloudrun.state.revisions[service_name("api")]) == 2

    events = clouds.events("resource.changed", "action.applied", "observe.failed")
    changed = {e["resource"] for e in events["resource.changed"]}
    assert changed == SICK | HEALTHY
    assert {uri.split("://", 1)[0] for uri in changed} == {"ecs", "k8s", "cloudrun"}
    assert {e["resource"] for e in events["action.applied"]} == SICK
    assert events["observe.failed"] == []


@pytest.mark.parametrize(
    ("failing", "sick", "code"),
    [("kubernetes", K8S_SICK, "InternalError"), ("cloudrun", RUN_SICK, "INTERNAL")],
)
def test_a_provider_answering_500_does_not_stop_the_tick(
    clouds: ThreeClouds, failing: str, sick: str, code: str
) -> None:
    """With one provider's API answering 500, its failure is recorded and the others still heal."""
    if failing == "kubernetes":
        clouds.apiserver.fault = "error"
    else:
        clouds.cloudrun.fail_with(500)
    still_healing = SICK - {sick}

    rows = by_resource(clouds.rows("tick"))

    assert {uri: row["decision"] for uri, row in rows.items()} == dict.fromkeys(
        still_healing, "applied"
    )
    assert ECS_SICK in still_healing
    events = clouds.events("observe.failed", "action.applied")
    (failed,) = events["observe.failed"]
    assert failed["payload"]["actuator"] == failing
    assert code in failed["reason"]
    assert {e["resource"] for e in events["action.applied"]} == still_healing
    if failing == "kubernetes":
        assert clouds.apiserver.writes() == []
        assert len(clouds.cloudrun.patches()) == 1
    else:
        assert clouds.cloudrun.patches() == []
        assert [c.name for c in clouds.apiserver.writes()] == ["producer"]
