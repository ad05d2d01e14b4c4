"""A Cloud Run API that errors or never answers: observe raises, apply reports, nothing hangs."""

from __future__ import annotations

import pytest

from jarvis.actuators.base import ActuatorError, PartialObserveError
from jarvis.actuators.cloudrun.actuator import CloudRunActuator
from jarvis.actuators.cloudrun.client import Clients, build_clients
from jarvis.loop.clock import VirtualClock
from jarvis.model import Action, ErrorKind, Health, OutcomeStatus, ResourceRef, Restart
from tests.actions import new_key
from tests.cloudrun.conftest import PROJECT, REGION, make_settings
from tests.cloudrun.fake_server import FakeCloudRun
from tests.loopback import free_port

pytestmark = pytest.mark.anyio

API = ResourceRef("cloudrun", f"{PROJECT}/{REGION}/api", "service")
RESTART = Action(API, Restart(), "test", "crash loop")


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (500, ErrorKind.TEMPORARY, "INTERNAL"),
        (503, ErrorKind.TEMPORARY, "UNAVAILABLE"),
        (429, ErrorKind.TEMPORARY, "RESOURCE_EXHAUSTED"),
        (403, ErrorKind.TERMINAL, "PERMISSION_DENIED"),
        (400, ErrorKind.TERMINAL, "INVALID_ARGUMENT"),
    ],
)
async def test_an_api_error_makes_observe_raise_and_apply_fail_by_kind(
    actuator: CloudRunActuator, fake: FakeCloudRun, status: int, kind: ErrorKind, code: str
) -> None:
    """Each error status is classified: observe raises it, apply returns it as a failed outcome."""
    fake.fail_with(status)
    with pytest.raises(ActuatorError) as raised:
        await actuator.observe()
    assert (raised.value.kind, raised.value.code) == (kind, code)
    outcome = await actuator.apply(RESTART, new_key())
    assert outcome.status is OutcomeStatus.FAILED
    assert (outcome.error_kind, outcome.error_code) == (kind, code)
    assert fake.patches() == []


async def test_an_api_that_recovers_is_observed_again(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """After a 500, the next observe succeeds once the API answers again."""
    fake.fail_with(500)
    with pytest.raises(ActuatorError):
        await actuator.observe()
    fake.heal()
    states = await actuator.observe()
    assert [s.health for s in states] == [Health.HEALTHY, Health.HEALTHY]


async def test_a_hanging_api_makes_observe_raise_within_the_request_timeout(
    fake: FakeCloudRun, clock: VirtualClock
) -> None:
    """A server that never answers turns into a TEMPORARY ActuatorError, not a stuck tick."""
    settings = make_settings(fake, request_timeout=0.3)
    clients = build_clients(settings)
    actuator = CloudRunActuator.from_settings(settings, clock=clock, clients=clients)
    fake.hang()
    try:
        with pytest.raises(ActuatorError) as raised:
            await actuator.observe()
        assert raised.value.kind is ErrorKind.TEMPORARY
        assert raised.value.code == "UNAVAILABLE"
        outcome = await actuator.apply(RESTART, new_key())
        assert outcome.status is OutcomeStatus.FAILED
        assert outcome.error_kind is ErrorKind.TEMPORARY
    finally:
        fake.heal()
        clients.close()
    assert fake.patches() == []


@pytest.mark.parametrize("fault", ["500", "403", "cut"])
async def test_a_poll_failing_after_the_update_was_accepted_is_timed_out_not_failed(
    fake: FakeCloudRun, clients: Clients, clock: VirtualClock, fault: str
) -> None:
    """Cloud Run accepted the update, then polling its operation failed for good (a 500,
    a 403 on operations.get, a connection cut): the change probably landed, so the
    outcome is TIMED_OUT (unknown), neither a failure nor a terminal error."""
    actuator = CloudRunActuator.from_settings(
        make_settings(fake, operation_timeout=0.3), clock=clock, clients=clients
    )
    if fault == "cut":
        fake.cut(path_contains="/operations/")
    else:
        fake.fail_with(int(fault), path_contains="/operations/")
    outcome = await actuator.apply(RESTART, new_key())
    assert outcome.status is OutcomeStatus.TIMED_OUT, outcome
    assert outcome.error_kind is ErrorKind.TEMPORARY
    assert "accepted" in outcome.detail and "outcome is unknown" in outcome.detail
    assert len(fake.patches()) == 1
    fake.heal()
    fake.state.finish_operations()
    assert (await actuator.observe())[0].version == latest_created(fake)


async def test_a_poll_that_never_answers_is_given_up_after_the_request_timeout(
    fake: FakeCloudRun, clients: Clients, clock: VirtualClock
) -> None:
    """A poll the network swallows times out after ``request_timeout`` and is polled
    again, and the actuator reports the update's outcome unknown itself, instead of the
    poll holding its worker thread until the apply's outer deadline gives up on it."""
    settings = make_settings(fake, request_timeout=0.3, operation_timeout=0.5)
    actuator = CloudRunActuator.from_settings(settings, clock=clock, clients=clients)
    fake.hang(path_contains="/operations/")
    try:
        outcome = await actuator.apply(RESTART, new_key())
    finally:
        fake.heal()
    assert outcome.status is OutcomeStatus.TIMED_OUT, outcome
    assert "accepted as operation" in outcome.detail, outcome.detail
    assert "polls kept failing" in outcome.detail and "ReadTimeout" in outcome.detail
    assert len(fake.patches()) == 1


@pytest.mark.parametrize("landed", [True, False])
async def test_an_update_whose_answer_is_lost_is_timed_out_not_failed(
    actuator: CloudRunActuator, fake: FakeCloudRun, landed: bool
) -> None:
    """The connection drops after the update was sent (Cloud Run may have applied it, and
    Jarvis cannot tell): TIMED_OUT, the outcome unknown, not a failure; sent once."""
    fake.cut(path_contains="/services/api", method="PATCH", times=1, landed=landed)
    outcome = await actuator.apply(RESTART, new_key())
    assert outcome.status is OutcomeStatus.TIMED_OUT, outcome
    assert "outcome is unknown" in outcome.detail
    assert len(fake.patches()) == 1
    revisions = fake.state.revisions[f"projects/{PROJECT}/locations/{REGION}/services/api"]
    assert len(revisions) == (2 if landed else 1)


async def test_an_update_that_cannot_connect_fails_temporarily(
    fake: FakeCloudRun, clients: Clients, clock: VirtualClock
) -> None:
    """A refused connection sent nothing: a TEMPORARY failure, not an unknown outcome."""
    settings = make_settings(fake, api_endpoint=f"http://127.0.0.1:{free_port()}")
    lost = build_clients(settings)
    try:
        actuator = CloudRunActuator.from_settings(settings, clock=clock, clients=lost)
        outcome = await actuator.apply(RESTART, new_key())
    finally:
        lost.close()
    assert outcome.status is OutcomeStatus.FAILED, outcome
    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.TEMPORARY, "UNAVAILABLE")


@pytest.mark.parametrize("fault", ["429", "cut"])
async def test_polls_throttled_or_cut_a_few_times_go_on_until_the_operation_is_done(
    actuator: CloudRunActuator, fake: FakeCloudRun, fault: str
) -> None:
    """A 429 RESOURCE_EXHAUSTED or a dropped connection on a poll is polled again, within
    the operation timeout: the update that then completes is a success."""
    fake.state.operation_polls = 2
    if fault == "cut":
        fake.cut(path_contains="/operations/", times=2)
    else:
        fake.fail_with(429, path_contains="/operations/", times=2)
    outcome = await actuator.apply(RESTART, new_key())
    assert outcome.ok, outcome
    polls = [r for r in fake.requests if "/operations/" in r.path]
    assert len(polls) == 4
    assert len(fake.patches()) == 1


def latest_created(fake: FakeCloudRun) -> str:
    stored = fake.state.get_service(f"projects/{PROJECT}/locations/{REGION}/services/api")
    return str(stored["latestCreatedRevision"]).rsplit("/", 1)[-1]


async def test_a_service_denied_reads_unknown_and_the_others_are_observed(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A 403 on one service: observe raises PartialObserveError holding every service,
    that one UNKNOWN with the permission error in its detail."""
    fake.deny("worker")
    with pytest.raises(PartialObserveError) as raised:
        await actuator.observe()
    assert (raised.value.kind, raised.value.code) == (ErrorKind.TERMINAL, "PERMISSION_DENIED")
    assert "worker" in str(raised.value) and "run.services.get" in str(raised.value)
    api, worker = raised.value.states
    assert (api.ref.name, api.health) == (f"{PROJECT}/{REGION}/api", Health.HEALTHY)
    assert (worker.ref.name, worker.health) == (f"{PROJECT}/{REGION}/worker", Health.UNKNOWN)
    assert worker.detail is not None and "PERMISSION_DENIED" in worker.detail


async def test_a_denied_service_beside_a_failing_one_fails_the_whole_observe(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A 403 on one service, a 503 on the other: nothing was read, the observe fails
    temporarily."""
    fake.deny("worker")
    fake.fail_with(503, path_contains="/services/api")
    with pytest.raises(ActuatorError) as raised:
        await actuator.observe()
    assert not isinstance(raised.value, PartialObserveError)
    assert raised.value.kind is ErrorKind.TEMPORARY


async def test_a_revision_name_conflict_is_terminal_and_sent_once(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A 409 ALREADY_EXISTS (a revision name taken) is terminal ALREADY_EXISTS, not a stale
    etag: no re-read and second update, no retry every tick."""
    fake.fail_with(
        409,
        path_contains="/services/api",
        method="PATCH",
        status_name="ALREADY_EXISTS",
        message="Revision named 'api-v7' with different configuration already exists.",
    )
    outcome = await actuator.apply(RESTART, new_key())
    assert outcome.status is OutcomeStatus.FAILED
    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.TERMINAL, "ALREADY_EXISTS")
    assert "Revision named 'api-v7'" in outcome.detail
    assert len(fake.patches()) == 1


async def test_a_failed_precondition_is_reported_by_its_own_status(
    actuator: CloudRunActuator, fake: FakeCloudRun
) -> None:
    """A 400 whose status is FAILED_PRECONDITION is reported as FAILED_PRECONDITION, not
    as the INVALID_ARGUMENT every 400 would otherwise read as."""
    fake.fail_with(400, method="PATCH", status_name="FAILED_PRECONDITION")
    outcome = await actuator.apply(RESTART, new_key())
    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.TERMINAL, "FAILED_PRECONDITION")
    assert len(fake.patches()) == 1
