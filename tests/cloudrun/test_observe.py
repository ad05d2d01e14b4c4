"""Observing Cloud Run services through the real client against the fake Admin API."""

from __future__ import annotations

import pytest

from jarvis.actuators.cloudrun.actuator import CloudRunActuator
from jarvis.actuators.cloudrun.revisions import RELIST_AFTER
from jarvis.loop.clock import VirtualClock
from jarvis.model import Action, Deploy, Health, ResourceState, Rollout, RolloutState, Versions
from tests.actions import new_key
from tests.cloudrun.conftest import BAD_IMAGE, IMAGE, PROJECT, REGION, make_settings, service_name
from tests.cloudrun.fake_server import FakeCloudRun

pytestmark = pytest.mark.anyio


def by_name(states: object) -> dict[str, ResourceState]:
    assert isinstance(states, list)
    return {state.ref.name.rsplit("/", 1)[-1]: state for state in states}


async def test_a_healthy_service_is_observed_with_its_revision_scaling_and_traffic(
    actuator: CloudRunActuator,
) -> None:
    """A serving service is HEALTHY, versioned by its revision, with instance bounds and traffic."""
    states = by_name(list(await actuator.observe()))
    api = states["api"]
    assert str(api.ref) == f"cloudrun://{PROJECT}/{REGION}/api"
    assert api.ref.kind == "service"
    assert api.health is Health.HEALTHY
    assert api.version is not None and api.version.startswith("api-00001-")
    assert api.replicas is not None
    assert (api.replicas.desired, api.replicas.min, api.replicas.max) == (1, None, 10)
    attrs = api.record_attributes()
    assert attrs["rollout"] == "completed"
    assert attrs["image"] == IMAGE and attrs["serving_image"] == IMAGE
    assert attrs["traffic"] == [{"latest": True, "revision": "", "percent": 100, "tag": ""}]
    assert attrs["traffic_statuses"] == [
        {"latest": True, "revision": api.version, "percent": 100, "tag": ""}
    ]
    assert attrs["terminal_condition"]["state"] == "succeeded"
    assert attrs["previous_version"] is None and attrs["versions_available"] == []
    assert attrs["latest_created_revision"] == attrs["latest_ready_revision"] == api.version
    assert states["worker"].health is Health.HEALTHY


async def test_a_crash_looping_serving_revision_is_unhealthy(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A serving revision that fails readiness makes the service UNHEALTHY, naming the revision."""
    crashed = fake.state.crash(service_name("api"), "Container exited with code 1.")
    api = by_name(list(await actuator.observe()))["api"]
    assert api.health is Health.UNHEALTHY
    assert api.version == crashed
    assert f"revision {crashed} serving 100% is not ready" in api.detail
    assert "exited with code 1" in api.detail
    assert api.replicas is not None and api.replicas.running == 0


async def test_cloud_runs_message_reaches_the_detail_inert(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A revision's message carrying a terminal escape and a bidi override reaches the
    detail (and so events, alerts and notifications) with each shown as its escape, its
    first paragraph only, as every outside text Jarvis repeats."""
    fake.state.crash(
        service_name("api"),
        "Container \x1b]0;owned\x07exited \u202ewith code 1.\n\nLogs URL: https://logs",
    )
    detail = by_name(list(await actuator.observe()))["api"].detail
    assert "\x1b" not in detail and "\u202e" not in detail and "\x07" not in detail, detail
    assert "Container \\x1b]0;owned\\x07exited \\u202ewith code 1." in detail, detail
    assert "Logs URL" not in detail, detail


async def test_a_revision_that_never_becomes_ready_is_a_failed_rollout(
    actuator: CloudRunActuator,
) -> None:
    """A bad deploy leaves traffic on the old revision: DEGRADED, rollout failed, a target."""
    before = by_name(list(await actuator.observe()))["api"]
    outcome = await actuator.apply(
        Action(before.ref, Deploy(BAD_IMAGE), "test", "new release"), new_key()
    )
    assert not outcome.ok
    after = by_name(list(await actuator.observe()))["api"]
    assert after.health is Health.DEGRADED
    attrs = after.record_attributes()
    assert attrs["rollout"] == "failed"
    # The version is the one being rolled out; the old one still serves.
    assert after.version == attrs["failed_revision"] == attrs["latest_created_revision"]
    assert after.version != before.version
    assert attrs["serving_version"] == attrs["latest_ready_revision"] == before.version
    assert attrs["previous_version"] == before.version
    assert attrs["versions_available"] == [before.version]
    assert attrs["image"] == BAD_IMAGE and attrs["serving_image"] == IMAGE
    assert after.rollout == Rollout(RolloutState.FAILED)
    old = str(before.version)
    assert after.versions == Versions(previous=old, available=(old,), image=BAD_IMAGE)
    assert "failed to become ready" in after.detail


async def test_versions_available_lists_ready_revisions_newest_first(
    actuator: CloudRunActuator,
) -> None:
    """After two deploys, the two older ready revisions are rollback candidates, newest first."""
    first = by_name(list(await actuator.observe()))["api"]
    for tag in ("1.1", "1.2"):
        action = Action(first.ref, Deploy(f"{IMAGE[:-4]}:{tag}"), "test", "release")
        assert (await actuator.apply(action, new_key())).ok
    api = by_name(list(await actuator.observe()))["api"]
    assert api.version is not None and api.version.startswith("api-00003-")
    available = api.record_attributes()["versions_available"]
    assert [v[:9] for v in available] == ["api-00002", "api-00001"]
    assert api.record_attributes()["previous_version"] == available[0]
    assert first.version == available[1]


async def test_an_update_still_running_is_observed_in_progress(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """While an update's operation runs, the service is reconciling and the rollout in progress."""
    fake.state.operation_polls = None
    name = service_name("api")
    with fake.lock:
        fake.state.update_service(
            name, {"template": {"containers": [{"image": f"{IMAGE[:-4]}:2.0"}]}}, ["template"]
        )
    api = by_name(list(await actuator.observe()))["api"]
    assert api.health is Health.HEALTHY
    assert api.record_attributes()["rollout"] == "in_progress"
    assert api.record_attributes()["reconciling"] is True
    fake.state.finish_operations()
    done = by_name(list(await actuator.observe()))["api"]
    assert done.record_attributes()["rollout"] == "completed"
    assert done.version is not None and done.version.startswith("api-00002-")


async def test_a_missing_service_is_unknown_and_does_not_hide_the_others(
    fake: FakeCloudRun, clock: VirtualClock
) -> None:
    """A configured service the API does not know is UNKNOWN; the other services are observed."""
    settings = make_settings(fake, services=["api", "ghost"])
    # Built from settings alone: the actuator makes and owns its clients.
    actuator = CloudRunActuator.from_settings(settings, clock=clock)
    try:
        states = by_name(list(await actuator.observe()))
    finally:
        await actuator.aclose()
    assert states["ghost"].health is Health.UNKNOWN
    assert states["ghost"].detail == "service not found"
    assert states["api"].health is Health.HEALTHY


def revision_reads(fake: FakeCloudRun) -> tuple[int, list[str]]:
    """The revision lists (pages) and the single revisions (short names) read so far."""
    lists = [r for r in fake.requests if r.path.endswith("/revisions")]
    gets = [r.path.rsplit("/", 1)[-1] for r in fake.requests if "/revisions/" in r.path]
    return len(lists), gets


async def test_a_tick_lists_revisions_only_when_the_latest_revision_changed(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """The first tick lists each service's revisions; the next ones read only the revision
    traffic reaches (one GET each), and observe the same, until a new revision is
    created, which lists that service's revisions again."""
    first = by_name(list(await actuator.observe()))
    assert revision_reads(fake) == (2, [])
    fake.requests.clear()

    again = by_name(list(await actuator.observe()))

    lists, gets = revision_reads(fake)
    assert (lists, sorted(gets)) == (0, sorted(str(s.version) for s in first.values()))
    assert again == first
    deploy = Action(first["api"].ref, Deploy(f"{IMAGE[:-4]}:1.1"), "test", "release")
    assert (await actuator.apply(deploy, new_key())).ok
    fake.requests.clear()
    after = by_name(list(await actuator.observe()))
    assert revision_reads(fake)[0] == 1
    assert after["api"].record_attributes()["versions_available"] == [first["api"].version]


async def test_a_serving_revision_that_starts_crashing_between_ticks_is_seen_at_once(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """Revisions are not listed again, but the one traffic reaches is read every tick: a
    crash loop that starts after the listing makes the service UNHEALTHY on the next."""
    assert by_name(list(await actuator.observe()))["api"].health is Health.HEALTHY
    crashed = fake.state.crash(service_name("api"), "Container exited with code 1.")
    api = by_name(list(await actuator.observe()))["api"]
    assert api.health is Health.UNHEALTHY
    assert f"revision {crashed} serving 100% is not ready" in api.detail
    assert revision_reads(fake)[0] == 2  # the first tick's two listings only


async def test_a_pinned_canary_that_starts_crashing_between_ticks_is_seen_at_once(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A revision traffic reaches by name beside LATEST is read every tick too."""
    canary = str(by_name(list(await actuator.observe()))["api"].version)
    deploy = Action(
        by_name(list(await actuator.observe()))["api"].ref,
        Deploy(f"{IMAGE[:-4]}:1.1"),
        "test",
        "release",
    )
    assert (await actuator.apply(deploy, new_key())).ok
    traffic = [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 90},
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": canary, "percent": 10},
    ]
    with fake.lock:
        fake.state.update_service(service_name("api"), {"traffic": traffic}, ["traffic"])
    fake.state.finish_operations()
    assert by_name(list(await actuator.observe()))["api"].health is Health.HEALTHY
    fake.state.crash(service_name("api"), revision=canary)
    fake.requests.clear()
    api = by_name(list(await actuator.observe()))["api"]
    assert api.health is Health.UNHEALTHY
    assert f"revision {canary} serving 10% is not ready" in api.detail
    assert revision_reads(fake)[0] == 0


async def test_revisions_deleted_by_hand_leave_the_candidates_by_the_next_listing(
    actuator: CloudRunActuator, fake: FakeCloudRun, clock: VirtualClock
) -> None:
    """A listing stands in for the rollback candidates for at most `RELIST_AFTER`: a
    revision deleted by hand (no new revision since) is no longer offered after that."""
    first = by_name(list(await actuator.observe()))["api"]
    for tag in ("1.1", "1.2"):
        deploy = Action(first.ref, Deploy(f"{IMAGE[:-4]}:{tag}"), "test", "release")
        assert (await actuator.apply(deploy, new_key())).ok
    listed = by_name(list(await actuator.observe()))["api"]
    assert listed.record_attributes()["versions_available"][1] == first.version
    name = service_name("api")
    fake.state.revisions[name] = [
        r for r in fake.state.revisions[name] if not r["name"].endswith(f"/{first.version}")
    ]
    clock.advance(RELIST_AFTER.total_seconds())
    api = by_name(list(await actuator.observe()))["api"]
    assert first.version not in api.record_attributes()["versions_available"]
    assert len(api.record_attributes()["versions_available"]) == 1


async def test_a_revision_seen_failing_stays_failed_once_traffic_leaves_it(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A canary read failing while traffic reached it is no rollback candidate once traffic
    leaves it: what a tick reads of a revision replaces the listing's older word on it."""
    canary = str(by_name(list(await actuator.observe()))["api"].version)
    deploy = Action(
        by_name(list(await actuator.observe()))["api"].ref,
        Deploy(f"{IMAGE[:-4]}:1.1"),
        "test",
        "release",
    )
    assert (await actuator.apply(deploy, new_key())).ok
    split = [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 90},
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": canary, "percent": 10},
    ]
    with fake.lock:
        fake.state.update_service(service_name("api"), {"traffic": split}, ["traffic"])
    fake.state.finish_operations()
    split_state = by_name(list(await actuator.observe()))["api"]
    assert canary in split_state.record_attributes()["versions_available"]
    fake.state.crash(service_name("api"), revision=canary)
    assert by_name(list(await actuator.observe()))["api"].health is Health.UNHEALTHY
    latest = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
    with fake.lock:
        fake.state.update_service(service_name("api"), {"traffic": latest}, ["traffic"])
    fake.state.finish_operations()

    api = by_name(list(await actuator.observe()))["api"]

    assert api.health is Health.HEALTHY
    assert api.record_attributes()["versions_available"] == []
    assert api.record_attributes()["previous_version"] is None


async def test_a_service_deleted_and_created_again_is_listed_anew(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A service deleted and created again under its name, its latest revision named as
    before (``--revision-suffix``), is another service: its revisions are listed again,
    not taken from the old one's listing."""
    first = by_name(list(await actuator.observe()))["api"]
    deploy = Action(first.ref, Deploy(f"{IMAGE[:-4]}:1.1"), "test", "release")
    assert (await actuator.apply(deploy, new_key())).ok
    before = by_name(list(await actuator.observe()))["api"]
    assert before.record_attributes()["versions_available"] == [first.version]
    fake.state.add_service(PROJECT, REGION, "api", image=IMAGE)
    fake.state.crash(service_name("api"))
    template = {"containers": [{"image": f"{IMAGE[:-4]}:1.1", "ports": [{"containerPort": 8080}]}]}
    with fake.lock:
        fake.state.update_service(service_name("api"), {"template": template}, ["template"])
    fake.state.finish_operations()

    again = by_name(list(await actuator.observe()))["api"]

    assert again.version == before.version  # the same name, another revision
    assert again.record_attributes()["versions_available"] == []
