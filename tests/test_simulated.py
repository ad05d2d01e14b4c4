"""The simulated fleet and its actuator: determinism, traffic, the script, apply outcomes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from jarvis.actuators.base import Actuator, ActuatorError
from jarvis.actuators.sim import (
    BROKEN_DETAIL,
    CRASH_DETAIL,
    DEFAULT_SERVICE_NAMES,
    SimulatedActuator,
    SimulatedFleet,
)
from jarvis.model import (
    Action,
    ActionKind,
    Deploy,
    ErrorKind,
    Health,
    Outcome,
    OutcomeStatus,
    ResourceRef,
    ResourceState,
    Restart,
    Rollback,
    Scale,
    SetWeights,
)
from tests.actions import new_key

pytestmark = pytest.mark.anyio

MORNING = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
TICK = timedelta(seconds=30)


class FixedClock:
    """A clock that moves only when told: `tick` or `sleep` advance it."""

    def __init__(self, now: datetime = MORNING) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._now.timestamp()  # it never steps back

    def tick(self, delta: timedelta = TICK) -> None:
        self._now += delta

    async def sleep(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


def make(
    *,
    seed: int = 7,
    services: int = 6,
    script: bool = False,
    fail_rate: float = 0.0,
    now: datetime = MORNING,
) -> tuple[SimulatedActuator, FixedClock]:
    clock = FixedClock(now)
    fleet = SimulatedFleet(
        seed=seed, services=services, script=script, fail_rate=fail_rate, start=now
    )
    return SimulatedActuator(fleet, clock), clock


def ref(name: str) -> ResourceRef:
    return ResourceRef("sim", name)


def restart(name: str) -> Action:
    return Action(ref(name), Restart(), "test", "restart it")


def by_name(states: list[ResourceState]) -> dict[str, ResourceState]:
    return {state.ref.name: state for state in states}


async def observe_ticks(actuator: SimulatedActuator, clock: FixedClock, count: int) -> None:
    for _ in range(count):
        clock.tick()
        await actuator.observe()


async def test_actuator_satisfies_the_actuator_protocol() -> None:
    """The simulated actuator is an Actuator owning sim:// and four action kinds."""
    actuator, _ = make()
    assert isinstance(actuator, Actuator)
    assert actuator.name == "simulated"
    assert actuator.provider == "sim"
    assert actuator.action_kinds == {
        ActionKind.SCALE,
        ActionKind.RESTART,
        ActionKind.ROLLBACK,
        ActionKind.DEPLOY,
    }
    await actuator.aclose()


async def test_default_fleet_is_the_six_seed_services() -> None:
    """Six services named after the seed system, as sim:// services with full metrics."""
    actuator, _ = make()
    states = await actuator.observe()
    assert [state.ref.name for state in states] == list(DEFAULT_SERVICE_NAMES)
    for state in states:
        assert str(state.ref) == f"sim://{state.ref.name}"
        assert state.ref.kind == "service"
        assert state.health is Health.HEALTHY
        assert state.version == "v1"
        assert state.replicas is not None
        assert state.replicas.running == state.replicas.desired
        assert (state.replicas.min, state.replicas.max) == (1, 20)
        assert set(state.metrics) == {
            "requests_per_minute",
            "cpu_utilization",
            "p95_latency_ms",
            "error_rate",
        }
        assert 0 <= state.metrics["error_rate"] <= 1


async def test_services_past_six_get_generated_names() -> None:
    """A fleet of eight adds svc-00007 and svc-00008 after the named six."""
    actuator, _ = make(services=8)
    names = [state.ref.name for state in await actuator.observe()]
    assert names[6:] == ["svc-00007", "svc-00008"]


async def test_same_seed_and_calls_give_equal_states() -> None:
    """Two fleets with one seed, fed the same calls and times, report equal states."""
    runs = []
    for _ in range(2):
        actuator, clock = make(seed=11, script=True, fail_rate=0.3)
        trace: list[object] = []
        for _ in range(5):
            clock.tick(timedelta(minutes=17))
            trace.append(await actuator.observe())
            trace.append(await actuator.apply(restart("ai-dawg-vocal-coach"), new_key()))
        runs.append(trace)
    assert runs[0] == runs[1]


async def test_a_different_seed_gives_a_different_fleet() -> None:
    """Another seed draws other traffic and replica counts."""
    first, _ = make(seed=1)
    second, _ = make(seed=2)
    assert await first.observe() != await second.observe()


async def test_traffic_is_lower_at_night_than_in_the_afternoon() -> None:
    """Every service sees fewer requests at 03:00 UTC than at 15:00 UTC."""
    night, _ = make(now=datetime(2026, 1, 5, 3, 0, tzinfo=UTC))
    afternoon, _ = make(now=datetime(2026, 1, 5, 15, 0, tzinfo=UTC))
    night_states = by_name(await night.observe())
    afternoon_states = by_name(await afternoon.observe())
    for name, state in night_states.items():
        busy = afternoon_states[name]
        assert state.metrics["requests_per_minute"] < busy.metrics["requests_per_minute"] / 2
        assert state.metrics["cpu_utilization"] < busy.metrics["cpu_utilization"]


async def test_the_same_instant_shows_the_same_traffic() -> None:
    """Traffic depends on time alone: re-observing the same instant changes no metric."""
    actuator, _ = make()
    assert await actuator.observe() == await actuator.observe()


async def test_script_crashes_the_vocal_coach_on_the_second_observation() -> None:
    """The vocal coach crashes on observation 2 and a restart heals it on the next one."""
    actuator, clock = make(script=True)
    first = by_name(await actuator.observe())
    assert all(state.health is Health.HEALTHY for state in first.values())
    clock.tick()
    coach = by_name(await actuator.observe())["ai-dawg-vocal-coach"]
    assert coach.health is Health.UNHEALTHY
    assert coach.detail == CRASH_DETAIL
    assert coach.replicas is not None
    assert coach.replicas.running == 0
    assert coach.metrics["error_rate"] == 1.0

    outcome = await actuator.apply(restart("ai-dawg-vocal-coach"), new_key())
    assert outcome.ok
    clock.tick()
    healed = by_name(await actuator.observe())["ai-dawg-vocal-coach"]
    assert healed.health is Health.HEALTHY
    assert healed.replicas is not None
    assert healed.replicas.running == healed.replicas.desired > 0


async def test_script_breaks_the_ai_brain_for_good_on_the_third_observation() -> None:
    """The AI brain crashes on observation 3 and every restart fails with a temporary error."""
    actuator, clock = make(script=True)
    await observe_ticks(actuator, clock, 2)
    assert by_name(await actuator.observe())["ai-dawg-ai-brain"].health is Health.UNHEALTHY
    for _ in range(4):
        outcome = await actuator.apply(restart("ai-dawg-ai-brain"), new_key())
        assert outcome.status is OutcomeStatus.FAILED
        assert outcome.error_kind is ErrorKind.TEMPORARY
        assert outcome.detail == BROKEN_DETAIL
        clock.tick()
        brain = by_name(await actuator.observe())["ai-dawg-ai-brain"]
        assert brain.health is Health.UNHEALTHY
        assert brain.detail == BROKEN_DETAIL


async def test_without_the_script_nothing_crashes() -> None:
    """With script off, ten observations in a row show a healthy fleet."""
    actuator, clock = make(script=False)
    for _ in range(10):
        clock.tick()
        assert all(state.health is Health.HEALTHY for state in await actuator.observe())


async def test_a_failed_observation_does_not_advance_the_script() -> None:
    """The script counts successful observations, so an API outage delays it."""
    actuator, clock = make(script=True)
    await actuator.observe()
    actuator.fleet.set_api_failing(True)
    with pytest.raises(ActuatorError):
        await actuator.observe()
    actuator.fleet.set_api_failing(False)
    clock.tick()
    assert by_name(await actuator.observe())["ai-dawg-vocal-coach"].health is Health.UNHEALTHY
    assert actuator.fleet.observations == 2


async def test_scale_changes_desired_and_running_follows_next_observation() -> None:
    """A scale sets desired at once; running catches up on the next observation."""
    actuator, clock = make()
    await actuator.observe()
    outcome = await actuator.apply(
        Action(ref("customer-api"), Scale(replicas=9), "test", "busy"), new_key()
    )
    assert outcome.ok
    between = actuator.fleet.state("customer-api").replicas
    assert between is not None
    assert between.desired == 9
    assert between.running != 9
    assert between.pending == 9 - between.running
    clock.tick()
    after = by_name(await actuator.observe())["customer-api"].replicas
    assert after is not None
    assert (after.desired, after.running, after.pending) == (9, 9, 0)


@pytest.mark.parametrize("replicas", [0, 21, -3])
async def test_scale_outside_bounds_fails_terminally(replicas: int) -> None:
    """The fleet refuses, without clamping, a replica count outside 1..20."""
    actuator, _ = make()
    before = actuator.fleet.state("customer-api").replicas
    outcome = await actuator.apply(
        Action(ref("customer-api"), Scale(replicas=replicas), "test", "x"), new_key()
    )
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.error_kind is ErrorKind.TERMINAL
    assert "outside 1..20" in outcome.detail
    assert actuator.fleet.state("customer-api").replicas == before


async def test_scale_may_move_the_bounds() -> None:
    """A scale carrying min/max replicas sets the service's bounds too."""
    actuator, clock = make()
    action = Action(ref("billing-worker"), Scale(replicas=1, max_replicas=3), "test", "night")
    assert (await actuator.apply(action, new_key())).ok
    clock.tick()
    replicas = by_name(await actuator.observe())["billing-worker"].replicas
    assert replicas is not None
    assert (replicas.desired, replicas.min, replicas.max) == (1, 1, 3)


async def test_deploy_then_rollback_moves_the_version_and_its_attributes() -> None:
    """A deploy adds v2 from the image; a rollback returns to v1, with rollout attributes."""
    actuator, clock = make()
    target = ref("customer-api")
    deployed = await actuator.apply(
        Action(target, Deploy("registry.sim.local/api:2.0"), "test", "ship"), new_key()
    )
    assert deployed.ok
    mid = actuator.fleet.state("customer-api")
    assert mid.version == "v2"
    assert mid.record_attributes()["rollout"] == "in_progress"
    clock.tick()
    after = by_name(await actuator.observe())["customer-api"]
    assert after.record_attributes() == {
        "rollout": "completed",
        "image": "registry.sim.local/api:2.0",
        "previous_version": "v1",
        "versions_available": ["v1"],
    }
    rolled = await actuator.apply(Action(target, Rollback("v1"), "test", "bad"), new_key())
    assert rolled.ok
    clock.tick()
    back = by_name(await actuator.observe())["customer-api"]
    assert back.version == "v1"
    assert back.record_attributes()["previous_version"] == "v2"
    assert back.record_attributes()["versions_available"] == ["v2"]


async def test_rollback_to_a_version_never_deployed_fails_terminally() -> None:
    """Rolling back to v9 when only v1 exists is refused for good."""
    actuator, _ = make()
    outcome = await actuator.apply(
        Action(ref("customer-api"), Rollback("v9"), "test", "x"), new_key()
    )
    assert outcome.error_kind is ErrorKind.TERMINAL
    assert "never deployed" in outcome.detail
    assert actuator.fleet.state("customer-api").version == "v1"


@pytest.mark.parametrize(
    ("action", "needle"),
    [
        (Action(ref("no-such"), Restart(), "t", "x"), "no such service"),
        (Action(ResourceRef("ecs", "customer-api"), Restart(), "t", "x"), "no such"),
        (Action(ref("customer-api"), SetWeights({}), "t", "x"), "cannot set_weights"),
        (Action(ref("customer-api"), Scale(), "t", "x"), "replica count"),
        (Action(ref("customer-api"), Deploy(""), "t", "x"), "needs an image"),
    ],
)
async def test_impossible_actions_fail_terminally(action: Action, needle: str) -> None:
    """Unknown resources, unsupported kinds and missing parameters fail terminally."""
    actuator, _ = make()
    outcome = await actuator.apply(action, new_key())
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.error_kind is ErrorKind.TERMINAL
    assert needle in outcome.detail


async def test_a_service_deleted_since_observe_is_gone() -> None:
    """A service deleted after observe fails as gone, not terminally; then it is unobserved."""
    actuator, _ = make()
    assert ref("customer-api") in {s.ref for s in await actuator.observe()}
    actuator.fleet.delete("customer-api")

    outcome = await actuator.apply(Action(ref("customer-api"), Restart(), "t", "x"), new_key())

    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.GONE, "NotFound")
    assert ref("customer-api") not in {s.ref for s in await actuator.observe()}


async def test_fail_rate_one_fails_every_apply_temporarily() -> None:
    """With fail_rate 1, every apply fails with a temporary error and changes nothing."""
    actuator, _ = make(fail_rate=1.0)
    for _ in range(5):
        outcome = await actuator.apply(
            Action(ref("customer-api"), Scale(replicas=12), "t", "x"), new_key()
        )
        assert outcome.error_kind is ErrorKind.TEMPORARY
    replicas = actuator.fleet.state("customer-api").replicas
    assert replicas is not None
    assert replicas.desired != 12


async def test_fail_rate_fails_a_seeded_share_of_applies() -> None:
    """fail_rate 0.5 fails some applies and not others, the same ones for the same seed."""

    async def pattern(seed: int) -> list[bool]:
        actuator, _ = make(seed=seed, fail_rate=0.5)
        outcomes: list[Outcome] = [
            await actuator.apply(restart("customer-api"), new_key()) for _ in range(40)
        ]
        return [outcome.ok for outcome in outcomes]

    first = await pattern(3)
    assert 5 < sum(first) < 35
    assert await pattern(3) == first
    assert await pattern(4) != first


async def test_api_failure_makes_observe_raise_and_apply_fail() -> None:
    """While the API is failing, observe raises ActuatorError and apply fails temporarily."""
    actuator, _ = make()
    actuator.fleet.set_api_failing(True)
    with pytest.raises(ActuatorError) as raised:
        await actuator.observe()
    assert raised.value.kind is ErrorKind.TEMPORARY
    outcome = await actuator.apply(restart("customer-api"), new_key())
    assert outcome.error_kind is ErrorKind.TEMPORARY
    actuator.fleet.set_api_failing(False)
    assert len(await actuator.observe()) == 6


async def test_crash_hook_and_restart_of_a_healthy_service() -> None:
    """The crash hook downs a service; restarting a running service is a harmless success."""
    actuator, clock = make()
    assert (await actuator.apply(restart("billing-worker"), new_key())).ok
    actuator.fleet.crash("billing-worker", detail="OOMKilled")
    clock.tick()
    state = by_name(await actuator.observe())["billing-worker"]
    assert (state.health, state.detail) == (Health.UNHEALTHY, "OOMKilled")
    with pytest.raises(KeyError):
        actuator.fleet.crash("no-such")


async def test_break_permanently_fails_restarts_of_a_running_service() -> None:
    """A broken service keeps running, but every restart of it fails temporarily."""
    actuator, clock = make()
    actuator.fleet.break_permanently("customer-api")
    outcome = await actuator.apply(restart("customer-api"), new_key())
    assert outcome.error_kind is ErrorKind.TEMPORARY
    clock.tick()
    assert by_name(await actuator.observe())["customer-api"].health is Health.HEALTHY


async def test_a_traffic_surge_overloads_a_service() -> None:
    """Five times the traffic drives CPU past 90 % and the service reports DEGRADED."""
    actuator, clock = make(now=datetime(2026, 1, 5, 15, 0, tzinfo=UTC))
    actuator.fleet.surge("customer-api", 5.0)
    clock.tick()
    state = by_name(await actuator.observe())["customer-api"]
    assert state.health is Health.DEGRADED
    assert state.detail.startswith("overloaded")
    assert state.metrics["cpu_utilization"] > 90
    assert state.metrics["error_rate"] > 0.5


async def test_create_builds_a_fleet_at_the_clocks_time() -> None:
    """The create() shortcut starts the fleet at the clock's now."""
    clock = FixedClock()
    actuator = SimulatedActuator.create(clock, seed=7, services=3, script=False)
    assert actuator.fleet.now == clock.now()
    assert actuator.fleet.names == list(DEFAULT_SERVICE_NAMES[:3])


def test_fleet_rejects_a_naive_start_time() -> None:
    """A start time without a time zone is refused."""
    with pytest.raises(ValueError, match="timezone-aware"):
        SimulatedFleet(seed=1, start=datetime(2026, 1, 1))  # noqa: DTZ001 -- the naive time under test


async def test_ten_thousand_services_observe_in_one_pass() -> None:
    """A 10,000-service fleet observes every service, named svc-00007 to svc-10000."""
    actuator, _ = make(services=10_000)
    states = await actuator.observe()
    assert len(states) == 10_000
    assert states[-1].ref.name == "svc-10000"
    assert len({str(state.ref) for state in states}) == 10_000


def scale(name: str, replicas: int) -> Action:
    return Action(ref(name), Scale(replicas=replicas), "test", "scale it")


def test_an_apply_rebuilds_only_its_services_state_at_the_same_instant() -> None:
    """After an apply, a read at the same instant rebuilds that service's state, reuses the rest."""
    fleet = SimulatedFleet(seed=7, services=6, script=False, start=MORNING)
    before = by_name(fleet.states())
    assert fleet.apply(scale("customer-api", 5), new_key()).ok
    after = by_name(fleet.states())
    assert after["customer-api"].replicas is not None
    assert after["customer-api"].replicas.desired == 5
    assert fleet.state("customer-api") is after["customer-api"]
    for name, state in before.items():
        assert (after[name] is state) == (name != "customer-api")


def test_every_fault_hook_shows_in_the_next_read_at_the_same_instant() -> None:
    """Crash, surge, bad deploy and repair each change the states read at the same instant."""
    fleet = SimulatedFleet(seed=7, services=6, script=False, start=MORNING)
    fleet.states()
    fleet.crash("billing-worker", detail="OOMKilled")
    assert by_name(fleet.states())["billing-worker"].detail == "OOMKilled"
    calm = fleet.state("customer-api").metrics["requests_per_minute"]
    fleet.surge("customer-api", 2.0)
    assert fleet.state("customer-api").metrics["requests_per_minute"] == pytest.approx(2 * calm)
    version = fleet.bad_deploy("ai-dawg-producer")
    assert by_name(fleet.states())["ai-dawg-producer"].version == version
    fleet.repair("ai-dawg-producer")
    assert by_name(fleet.states())["ai-dawg-producer"].version == "v1"


def test_states_read_between_changes_equal_those_of_a_fleet_never_read() -> None:
    """Reading the fleet (and so caching its states) never changes what a later read shows."""
    read, unread = (
        SimulatedFleet(seed=7, services=6, script=False, start=MORNING) for _ in range(2)
    )
    read.states()
    for fleet in (read, unread):
        assert fleet.apply(scale("customer-api", 4), "k1").ok
        fleet.crash("billing-worker")
    read.states()
    for fleet in (read, unread):
        fleet.advance(MORNING + TICK)
        assert fleet.apply(restart("billing-worker"), "k2").ok
    assert read.states() == unread.states()


def test_the_fleet_builds_states_positionally_in_the_model_field_order() -> None:
    """`SimulatedFleet._state` passes ten fields by position, for speed: this pins their order.

    ``version`` and ``detail`` are both text, so mypy would not notice the model
    swapping them; a change to this order must change `_state` with it.
    """
    names = [f.name for f in dataclasses.fields(ResourceState)][:10]
    assert names == [
        "ref",
        "health",
        "observed_at",
        "replicas",
        "version",
        "detail",
        "metrics",
        "attributes",
        "rollout",
        "versions",
    ]
