"""Applying SCALE, RESTART, ROLLBACK and DEPLOY to Cloud Run through the real client."""

from __future__ import annotations

import pytest

from jarvis.actuators.cloudrun.actuator import CloudRunActuator
from jarvis.actuators.cloudrun.client import Clients
from jarvis.loop.clock import VirtualClock
from jarvis.model import (
    Action,
    ActionParams,
    Deploy,
    ErrorKind,
    Health,
    OutcomeStatus,
    ResourceRef,
    ResourceState,
    Restart,
    Rollback,
    Scale,
    SetWeights,
)
from tests.actions import new_key
from tests.cloudrun.conftest import BAD_IMAGE, IMAGE, PROJECT, REGION, make_settings, service_name
from tests.cloudrun.fake_server import FakeCloudRun

pytestmark = pytest.mark.anyio

API = ResourceRef("cloudrun", f"{PROJECT}/{REGION}/api", "service")


def act(params: ActionParams) -> Action:
    return Action(API, params, "test", "because the test says so")


async def observe_api(actuator: CloudRunActuator) -> ResourceState:
    states = {s.ref.name: s for s in await actuator.observe()}
    return states[API.name]


async def test_scale_up_sets_the_service_min_instances_without_a_new_revision(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """SCALE with ``replicas`` raises the service-level minimum; no revision is created."""
    outcome = await actuator.apply(act(Scale(replicas=4)), new_key())
    assert outcome.ok, outcome.detail
    (patch,) = fake.patches()
    assert patch.query["updateMask"] == ["scaling.minInstanceCount,annotations"]
    assert patch.body["scaling"]["minInstanceCount"] == 4
    stored = fake.state.get_service(service_name("api"))
    assert stored["scaling"] == {"minInstanceCount": 4, "maxInstanceCount": 10}
    assert len(fake.state.revisions[service_name("api")]) == 1
    state = await observe_api(actuator)
    assert state.replicas is not None
    assert (state.replicas.desired, state.replicas.max) == (4, 10)


async def test_scale_down_sets_min_and_max_instances(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """SCALE with ``min_replicas`` and ``max_replicas`` writes both bounds."""
    outcome = await actuator.apply(act(Scale(min_replicas=0, max_replicas=3)), new_key())
    assert outcome.ok, outcome.detail
    assert "min 1->0, max 10->3" in outcome.detail
    (patch,) = fake.patches()
    assert patch.query["updateMask"] == [
        "scaling.minInstanceCount,scaling.maxInstanceCount,annotations"
    ]
    scaling = fake.state.get_service(service_name("api"))["scaling"]
    # proto3 JSON leaves zero out: an absent minInstanceCount is 0.
    assert (scaling.get("minInstanceCount", 0), scaling["maxInstanceCount"]) == (0, 3)


async def test_scale_to_the_current_bounds_sends_nothing(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A SCALE that changes nothing succeeds without an update call."""
    outcome = await actuator.apply(act(Scale(replicas=1)), new_key())
    assert outcome.ok and "already at min 1" in outcome.detail
    assert fake.patches() == []


async def test_scale_above_the_maximum_is_refused_as_terminal(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A minimum above the maximum is a terminal failure and never reaches the API."""
    outcome = await actuator.apply(act(Scale(replicas=50)), new_key())
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.error_kind is ErrorKind.TERMINAL and outcome.error_code == "INVALID_ACTION"
    assert fake.patches() == []


async def test_scale_beyond_the_apis_int32_counts_is_refused_as_terminal(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """An instance count the API's int32 fields cannot hold is terminal and never sent."""
    outcome = await actuator.apply(act(Scale(min_replicas=0, max_replicas=2**31)), new_key())
    assert outcome.status is OutcomeStatus.FAILED
    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.TERMINAL, "INVALID_ACTION")
    assert fake.patches() == []


async def test_scale_at_revision_level_writes_the_template_and_makes_a_revision(
    fake: FakeCloudRun, clients: Clients, clock: VirtualClock
) -> None:
    """With ``scaling_level = "revision"`` SCALE changes template.scaling, creating a revision."""
    settings = make_settings(fake, scaling_level="revision")
    actuator = CloudRunActuator.from_settings(settings, clock=clock, clients=clients)
    outcome = await actuator.apply(act(Scale(replicas=2)), new_key())
    assert outcome.ok, outcome.detail
    (patch,) = fake.patches()
    assert patch.query["updateMask"] == [
        "template.scaling.minInstanceCount,template.revision,annotations"
    ]
    stored = fake.state.get_service(service_name("api"))
    assert stored["template"]["scaling"]["minInstanceCount"] == 2
    assert len(fake.state.revisions[service_name("api")]) == 2
    attrs = (await observe_api(actuator)).record_attributes()
    assert attrs["min_instances"] == 2 and attrs["min_replicas_owner"] == "template.scaling"


async def test_restart_heals_a_crash_looping_service_with_a_new_revision(
    actuator: CloudRunActuator, fake: FakeCloudRun, clock: VirtualClock
) -> None:
    """RESTART writes the restart annotation; the new revision is ready and serves 100%."""
    crashed = fake.state.crash(service_name("api"))
    assert (await observe_api(actuator)).health is Health.UNHEALTHY
    outcome = await actuator.apply(act(Restart()), new_key())
    assert outcome.ok, outcome.detail
    (patch,) = fake.patches()
    assert patch.query["updateMask"] == ["template.annotations,template.revision,annotations"]
    annotations = fake.state.get_service(service_name("api"))["template"]["annotations"]
    assert annotations == {"jarvis.dev/restarted-at": clock.now().isoformat()}
    after = await observe_api(actuator)
    assert after.health is Health.HEALTHY
    assert after.version != crashed
    assert after.version is not None and after.version.startswith("api-00002-")
    assert after.record_attributes()["serving_image"] == IMAGE


async def test_restart_whose_new_revision_also_crashes_fails_temporarily(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """When the new revision never becomes ready, the operation's error is a TEMPORARY failure."""
    fake.state.crash(service_name("api"))
    fake.state.revision_ready = lambda _service, _template: False
    outcome = await actuator.apply(act(Restart()), new_key())
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.error_kind is ErrorKind.TEMPORARY
    assert outcome.error_code == "OPERATION_FAILED_PRECONDITION"
    assert "is not ready and cannot serve traffic" in outcome.detail
    assert (await observe_api(actuator)).health is Health.UNHEALTHY


async def test_a_failed_rollout_reads_as_one_line_from_cloud_runs_multiline_message(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """Cloud Run's message for a revision that never got ready goes on with a blank line,
    a logs URL and a troubleshooting link: the outcome and the observed detail keep its
    first paragraph, on one line."""
    outcome = await actuator.apply(act(Deploy(BAD_IMAGE)), new_key())
    state = await observe_api(actuator)
    for text in (outcome.detail, state.detail or ""):
        assert "\n" not in text, text
        assert "failed to start and listen on the port" in text
        assert "Logs URL" not in text
    assert "is not ready and cannot serve traffic" in outcome.detail
    failed = state.record_attributes()["failed_revision"]
    assert f"revision {failed} failed to become ready" in (state.detail or "")


async def test_two_restarts_at_the_same_instant_still_make_two_revisions(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """The restart annotation changes even when a virtual clock has not moved."""
    assert (await actuator.apply(act(Restart()), new_key())).ok
    assert (await actuator.apply(act(Restart()), new_key())).ok
    assert len(fake.state.revisions[service_name("api")]) == 3


async def test_rollback_after_a_bad_deploy_pins_all_traffic_to_the_previous_revision(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """ROLLBACK without a version sends 100% to the previous ready revision; health recovers."""
    assert (await actuator.apply(act(Deploy(f"{IMAGE[:-4]}:1.1")), new_key())).ok
    good = await observe_api(actuator)
    assert not (await actuator.apply(act(Deploy(BAD_IMAGE)), new_key())).ok
    failed = await observe_api(actuator)
    assert failed.record_attributes()["rollout"] == "failed"
    assert (
        failed.record_attributes()["serving_version"] == good.record_attributes()["serving_version"]
    )
    target = good.version
    assert failed.record_attributes()["previous_version"] == target
    fake.requests.clear()

    outcome = await actuator.apply(act(Rollback("")), new_key())
    assert outcome.ok, outcome.detail
    (patch,) = fake.patches()
    assert patch.query["updateMask"] == ["traffic,annotations"]
    assert patch.body["traffic"] == [{"type": 2, "revision": target, "percent": 100}]
    after = await observe_api(actuator)
    assert after.health is Health.HEALTHY
    assert after.version == target
    assert (
        after.record_attributes()["traffic_pinned"] is True
        and after.record_attributes()["rollout"] == "completed"
    )
    assert (
        after.record_attributes()["failed_revision"]
        == failed.record_attributes()["failed_revision"]
    )


async def test_rollback_to_a_named_revision_and_again_is_idempotent(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """ROLLBACK to ``version`` (short or full name) pins it; repeating it sends nothing."""
    first = (await observe_api(actuator)).version
    assert (await actuator.apply(act(Deploy(f"{IMAGE[:-4]}:1.1")), new_key())).ok
    full = f"{service_name('api')}/revisions/{first}"
    assert (await actuator.apply(act(Rollback(full)), new_key())).ok
    assert (await observe_api(actuator)).version == first
    again = await actuator.apply(act(Rollback(str(first))), new_key())
    assert again.ok and "already" in again.detail
    assert len(fake.patches()) == 2


async def test_rollback_to_an_unknown_or_unready_revision_is_terminal(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """ROLLBACK to a revision that does not exist, or never got ready, fails terminally."""
    missing = await actuator.apply(act(Rollback("api-00042-zzz")), new_key())
    assert (missing.error_kind, missing.error_code) == (ErrorKind.TERMINAL, "NOT_FOUND")
    nothing = await actuator.apply(act(Rollback("")), new_key())
    assert (nothing.error_kind, nothing.error_code) == (ErrorKind.TERMINAL, "NO_PREVIOUS_REVISION")
    assert not (await actuator.apply(act(Deploy(BAD_IMAGE)), new_key())).ok
    bad = (await observe_api(actuator)).record_attributes()["failed_revision"]
    unready = await actuator.apply(act(Rollback(bad)), new_key())
    assert (unready.error_kind, unready.error_code) == (ErrorKind.TERMINAL, "REVISION_NOT_READY")
    assert len(fake.patches()) == 1


async def test_restart_is_refused_while_traffic_is_pinned(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """After a rollback pinned traffic, RESTART would deploy the template: terminal refusal."""
    first = (await observe_api(actuator)).version
    assert (await actuator.apply(act(Deploy(f"{IMAGE[:-4]}:1.1")), new_key())).ok
    assert (await actuator.apply(act(Rollback(str(first))), new_key())).ok
    outcome = await actuator.apply(act(Restart()), new_key())
    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.TERMINAL, "TRAFFIC_PINNED")
    assert len(fake.patches()) == 2


async def test_deploy_sets_the_image_and_routes_all_traffic_to_latest(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """DEPLOY changes the serving container's image, un-pins traffic and serves the new revision."""
    first = (await observe_api(actuator)).version
    assert (await actuator.apply(act(Deploy(f"{IMAGE[:-4]}:1.1")), new_key())).ok
    assert (await actuator.apply(act(Rollback(str(first))), new_key())).ok
    outcome = await actuator.apply(act(Deploy(f"{IMAGE[:-4]}:2.0")), new_key())
    assert outcome.ok, outcome.detail
    assert fake.patches()[-1].query["updateMask"] == [
        "template.containers,template.revision,traffic,annotations"
    ]
    after = await observe_api(actuator)
    assert (
        after.record_attributes()["serving_image"]
        == after.record_attributes()["image"]
        == f"{IMAGE[:-4]}:2.0"
    )
    assert after.record_attributes()["traffic_pinned"] is False
    assert (after.version or "").startswith("api-00003-")
    same = await actuator.apply(act(Deploy(f"{IMAGE[:-4]}:2.0")), new_key())
    assert same.ok and "already runs" in same.detail


async def test_a_stale_etag_is_reread_and_retried_once(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """One 409 ABORTED (concurrent writer) is retried after a fresh read; two fail temporarily."""
    fake.state.conflicts = 1
    assert (await actuator.apply(act(Scale(replicas=2)), new_key())).ok
    assert len(fake.patches()) == 2
    fake.state.conflicts = 2
    outcome = await actuator.apply(act(Scale(replicas=3)), new_key())
    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.TEMPORARY, "ABORTED")


async def test_an_operation_that_never_finishes_times_out(
    fake: FakeCloudRun, clients: Clients, clock: VirtualClock
) -> None:
    """An update whose operation outlives ``operation_timeout`` is reported TIMED_OUT."""
    fake.state.operation_polls = None
    settings = make_settings(fake, operation_timeout=0.3)
    actuator = CloudRunActuator.from_settings(settings, clock=clock, clients=clients)
    outcome = await actuator.apply(act(Restart()), new_key())
    assert outcome.status is OutcomeStatus.TIMED_OUT
    assert outcome.error_kind is ErrorKind.TEMPORARY
    assert "still running" in outcome.detail
    assert any("/operations/" in r.path for r in fake.requests)


async def test_actions_on_services_jarvis_does_not_manage_are_terminal(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A target outside the configured project, region and services is refused unsent."""
    for name in (f"{PROJECT}/{REGION}/other", f"other-project/{REGION}/api", "api"):
        target = ResourceRef("cloudrun", name, "service")
        outcome = await actuator.apply(Action(target, Restart(), "test", "r"), new_key())
        assert (outcome.error_kind, outcome.error_code) == (ErrorKind.TERMINAL, "NOT_MANAGED")
    unsupported = await actuator.apply(act(SetWeights({"a": 1.0})), new_key())
    assert unsupported.error_kind is ErrorKind.TERMINAL
    assert fake.requests == []


async def test_rollback_keeps_tagged_targets_at_zero_percent(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """Pinning traffic keeps other tagged targets (at 0%) so their tag URLs still resolve."""
    first = (await observe_api(actuator)).version
    assert (await actuator.apply(act(Deploy(f"{IMAGE[:-4]}:1.1")), new_key())).ok
    tagged = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100, "tag": "edge"}]
    with fake.lock:
        fake.state.update_service(service_name("api"), {"traffic": tagged}, ["traffic"])
    fake.state.finish_operations()
    assert (await actuator.apply(act(Rollback(str(first))), new_key())).ok
    assert fake.patches()[-1].body["traffic"] == [
        {"type": 2, "revision": first, "percent": 100},
        {"type": 1, "tag": "edge"},
    ]
    statuses = (await observe_api(actuator)).record_attributes()["traffic_statuses"]
    assert statuses == [{"latest": False, "revision": first, "percent": 100, "tag": ""}]


async def test_a_replayed_key_finds_its_annotation_and_changes_nothing(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """The key rides on the Service as jarvis.io/action-key; a replay of it sends no update."""
    key = new_key()
    first = await actuator.apply(act(Restart()), key)
    stored = fake.state.get_service(service_name("api"))
    revisions = len(fake.state.revisions[service_name("api")])

    replay = await actuator.apply(act(Restart()), key)

    assert first.ok, first.detail
    assert stored["annotations"]["jarvis.io/action-key"] == key
    assert replay.ok and "already applied" in replay.detail
    assert len(fake.patches()) == 1
    assert len(fake.state.revisions[service_name("api")]) == revisions
    assert fake.patches()[0].body["etag"]  # the write is conditional on the service as read


async def test_rollback_keeps_every_tag_of_the_target_revision(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A revision with two tags (``--set-tags=stable=R,v1=R``) keeps both tag URLs when
    a rollback sends it all traffic: one tag rides on the 100% target, the other stays."""
    first = (await observe_api(actuator)).version
    assert (await actuator.apply(act(Deploy(f"{IMAGE[:-4]}:1.1")), new_key())).ok
    traffic = [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100},
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": first, "tag": "stable"},
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": first, "tag": "v1"},
    ]
    with fake.lock:
        fake.state.update_service(service_name("api"), {"traffic": traffic}, ["traffic"])
    fake.state.finish_operations()
    assert (await actuator.apply(act(Rollback(str(first))), new_key())).ok
    stored = fake.state.get_service(service_name("api"))["traffic"]
    assert sorted(t["tag"] for t in stored if t.get("tag")) == ["stable", "v1"]
    assert [(t.get("revision"), t.get("percent", 0)) for t in stored if t.get("percent")] == [
        (first, 100)
    ]


async def test_a_manually_scaled_service_reads_and_scales_its_instance_count(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """In manual scaling mode the service runs exactly ``manualInstanceCount`` instances
    (min and max unset, revision-level ones ignored): that count is what Jarvis reads as
    desired and what SCALE writes."""
    fake.state.add_service(PROJECT, REGION, "api", image=IMAGE, manual_instances=3)
    before = await observe_api(actuator)
    assert before.replicas is not None
    assert (before.replicas.desired, before.replicas.min, before.replicas.max) == (3, None, None)
    assert before.record_attributes()["scaling_mode"] == "manual"

    outcome = await actuator.apply(act(Scale(replicas=5)), new_key())

    assert outcome.ok, outcome.detail
    (patch,) = fake.patches()
    assert patch.query["updateMask"] == ["scaling.manualInstanceCount,annotations"]
    stored = fake.state.get_service(service_name("api"))["scaling"]
    assert stored == {"scalingMode": "MANUAL", "manualInstanceCount": 5}
    after = await observe_api(actuator)
    assert after.replicas is not None and after.replicas.desired == 5
    only_max = await actuator.apply(act(Scale(max_replicas=8)), new_key())
    assert (only_max.error_kind, only_max.error_code) == (ErrorKind.TERMINAL, "INVALID_ACTION")
    assert len(fake.patches()) == 1


async def split_with_a_canary(actuator: CloudRunActuator, fake: FakeCloudRun) -> str:
    """Two revisions of ``api``: the newer serves 90% through LATEST, the older 10% by name."""
    canary = (await observe_api(actuator)).version
    assert (await actuator.apply(act(Deploy(f"{IMAGE[:-4]}:1.1")), new_key())).ok
    traffic = [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 90},
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": canary, "percent": 10},
    ]
    with fake.lock:
        fake.state.update_service(service_name("api"), {"traffic": traffic}, ["traffic"])
    fake.state.finish_operations()
    return str(canary)


async def test_restart_is_refused_while_a_pinned_canary_crash_loops(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A crash-looping revision pinned at 10% beside LATEST is not replaced by a new
    revision of the template: RESTART refuses (terminal) instead of reporting success
    on a service that stays unhealthy."""
    canary = await split_with_a_canary(actuator, fake)
    fake.state.crash(service_name("api"), revision=canary)
    assert (await observe_api(actuator)).health is Health.UNHEALTHY
    fake.requests.clear()

    outcome = await actuator.apply(act(Restart()), new_key())

    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.TERMINAL, "PINNED_NOT_READY")
    assert str(canary) in outcome.detail
    assert fake.patches() == []


async def test_restart_beside_a_ready_pinned_canary_makes_a_new_revision(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """With a ready canary pinned beside LATEST, RESTART goes ahead: LATEST's share moves
    to a new revision and the canary keeps its 10%."""
    canary = await split_with_a_canary(actuator, fake)
    revisions = len(fake.state.revisions[service_name("api")])

    outcome = await actuator.apply(act(Restart()), new_key())

    assert outcome.ok, outcome.detail
    assert len(fake.state.revisions[service_name("api")]) == revisions + 1
    statuses = (await observe_api(actuator)).record_attributes()["traffic_statuses"]
    assert {"latest": False, "revision": canary, "percent": 10, "tag": ""} in statuses


async def test_revision_level_scale_is_refused_while_traffic_is_pinned(
    fake: FakeCloudRun, clients: Clients, clock: VirtualClock
) -> None:
    """With ``scaling_level = "revision"`` a SCALE makes a new revision of the template;
    while traffic is pinned that revision serves nothing, so the serving one would keep
    its instance counts: refused (terminal), nothing sent."""
    settings = make_settings(fake, scaling_level="revision")
    actuator = CloudRunActuator.from_settings(settings, clock=clock, clients=clients)
    first = (await observe_api(actuator)).version
    assert (await actuator.apply(act(Deploy(f"{IMAGE[:-4]}:1.1")), new_key())).ok
    assert (await actuator.apply(act(Rollback(str(first))), new_key())).ok
    fake.requests.clear()

    outcome = await actuator.apply(act(Scale(replicas=2)), new_key())

    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.TERMINAL, "TRAFFIC_PINNED")
    assert fake.patches() == []


async def test_rollback_of_a_split_moves_only_latests_share(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A failed deploy under a 90/10 split (stable revision pinned at 90%, LATEST at 10%)
    rolls back LATEST's 10% to the previous revision; the stable 90% stays where it is
    instead of moving to the canary."""
    stable = (await observe_api(actuator)).version
    assert (await actuator.apply(act(Deploy(f"{IMAGE[:-4]}:1.1")), new_key())).ok
    canary = (await observe_api(actuator)).version
    traffic = [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": stable, "percent": 90},
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 10},
    ]
    bad = {"containers": [{"image": BAD_IMAGE, "ports": [{"containerPort": 8080}]}]}
    with fake.lock:
        fake.state.update_service(service_name("api"), {"traffic": traffic}, ["traffic"])
        fake.state.update_service(service_name("api"), {"template": bad}, ["template"])
    fake.state.finish_operations()
    failed = await observe_api(actuator)
    assert failed.record_attributes()["rollout"] == "failed"

    outcome = await actuator.apply(act(Rollback("")), new_key())

    assert outcome.ok, outcome.detail
    traffic = fake.state.get_service(service_name("api"))["traffic"]
    shares = {t.get("revision"): t["percent"] for t in traffic if t.get("percent")}
    assert shares == {stable: 90, canary: 10}
    after = await observe_api(actuator)
    assert after.health is Health.HEALTHY and after.record_attributes()["traffic_pinned"] is True


@pytest.mark.parametrize(
    "params",
    [Scale(replicas=2), Restart(), Rollback(""), Deploy(f"{IMAGE[:-4]}:1.1")],
    ids=["scale", "restart", "rollback", "deploy"],
)
async def test_a_service_deleted_since_observe_is_gone(
    actuator: CloudRunActuator, fake: FakeCloudRun, params: ActionParams
) -> None:
    """A service observed, then deleted before the apply: Cloud Run answers NOT_FOUND, and
    the action fails as gone (not terminal), nothing written."""
    await observe_api(actuator)
    fake.state.delete_service(service_name("api"))

    outcome = await actuator.apply(act(params), new_key())

    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.GONE, "NOT_FOUND")
    assert fake.patches() == []
