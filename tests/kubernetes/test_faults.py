"""An API server that answers 500, hangs or refuses the token: errors, never a stuck tick."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from kubernetes import client
from pydantic import SecretStr

from jarvis.actuators.base import ActuatorError, PartialObserveError
from jarvis.actuators.kubernetes.actuator import KubernetesActuator
from jarvis.config.kubernetes import KubernetesSettings
from jarvis.model import Action, ErrorKind, OutcomeStatus, ResourceRef, Restart, Scale
from tests.actions import new_key
from tests.kubernetes.conftest import FakeClock, ungranted
from tests.kubernetes.fake_apiserver import FakeApiServer

pytestmark = pytest.mark.anyio

TOKEN = "s3cr3t-token"
PRODUCER = ResourceRef("k8s", "default/producer", kind="deployment")


@pytest.fixture
async def token_server() -> AsyncIterator[FakeApiServer]:
    with FakeApiServer(token=TOKEN) as server:
        server.cluster.add_deployment("default", "producer")
        yield server
        assert not ungranted(server.calls)


HANG_TIMEOUT = 0.5
"""The request timeout where the server hangs: short, as the test waits it out."""


def built(
    server: FakeApiServer, token: str = TOKEN, request_timeout: float = 10
) -> KubernetesActuator:
    """An actuator whose client is built from settings, as in production.

    A request the fake answers has seconds to arrive, however loaded the machine;
    only the tests of a hanging server shorten the timeout (``HANG_TIMEOUT``).
    """
    settings = KubernetesSettings(
        host=server.url,
        token=SecretStr(token),
        request_timeout=request_timeout,
        observe_timeout=30,
    )
    return KubernetesActuator.from_settings(settings, clock=FakeClock())


async def test_explicit_host_and_token_reach_the_api(token_server: FakeApiServer) -> None:
    """Settings with host and token build a client that authenticates with a bearer token."""
    actuator = built(token_server)
    try:
        states = await actuator.observe()
    finally:
        await actuator.aclose()

    assert [str(s.ref) for s in states] == ["k8s://default/producer"]


async def test_a_refused_token_is_a_terminal_observe_error(token_server: FakeApiServer) -> None:
    """A 401 from the API server makes observe raise a terminal ActuatorError."""
    actuator = built(token_server, token="wrong")
    try:
        with pytest.raises(ActuatorError) as caught:
            await actuator.observe()
    finally:
        await actuator.aclose()

    assert (caught.value.kind, caught.value.code) == (ErrorKind.TERMINAL, "Unauthorized")


async def test_a_500_makes_observe_raise_a_temporary_error(token_server: FakeApiServer) -> None:
    """An API server answering 500 makes observe raise a temporary ActuatorError."""
    token_server.fault = "error"
    actuator = built(token_server)
    try:
        with pytest.raises(ActuatorError) as caught:
            await actuator.observe()
    finally:
        await actuator.aclose()

    assert (caught.value.kind, caught.value.code) == (ErrorKind.TEMPORARY, "InternalError")
    assert "HTTP 500" in str(caught.value)


async def test_a_throttled_api_is_reported_as_429_not_as_a_broken_connection(
    token_server: FakeApiServer,
) -> None:
    """A 429 with Retry-After (API Priority and Fairness) is TooManyRequests, for reads and
    for apply alike, not a ConnectionError made of urllib3's "too many 429 error responses"."""
    token_server.fault = "throttle"
    actuator = built(token_server)
    restart = Action(PRODUCER, Restart(), policy="heal", reason="crash loop")
    try:
        with pytest.raises(ActuatorError) as caught:
            await actuator.observe()
        outcome = await actuator.apply(restart, new_key())
    finally:
        await actuator.aclose()

    assert (caught.value.kind, caught.value.code) == (ErrorKind.TEMPORARY, "TooManyRequests")
    assert "HTTP 429" in str(caught.value)
    assert "(retry after 1s)" in str(caught.value)
    assert (outcome.status, outcome.error_kind, outcome.error_code) == (
        OutcomeStatus.FAILED,
        ErrorKind.TEMPORARY,
        "TooManyRequests",
    )


async def test_a_throttled_request_is_sent_again_after_its_retry_after(
    token_server: FakeApiServer,
) -> None:
    """A 429 is answered before the request is served, so it is sent again after Retry-After
    (waited on the injected clock): a change and an observe throttled twice both succeed."""
    settings = KubernetesSettings(host=token_server.url, token=SecretStr(TOKEN), request_timeout=10)
    clock = FakeClock()
    actuator = KubernetesActuator.from_settings(settings, clock=clock)
    start = clock.now()
    try:
        token_server.fault, token_server.fault_times = "throttle", 2
        outcome = await actuator.apply(
            Action(PRODUCER, Scale(replicas=4), policy="h", reason="r"), new_key()
        )
        waited = clock.now() - start
        token_server.fault, token_server.fault_times = "throttle", 2
        states = await actuator.observe()
    finally:
        await actuator.aclose()

    assert outcome.ok, outcome.detail
    assert waited == timedelta(seconds=2)
    assert token_server.cluster.deployment_spec("default", "producer")["replicas"] == 4
    assert [str(s.ref) for s in states] == ["k8s://default/producer"]


async def test_a_hanging_api_makes_observe_raise_instead_of_waiting(
    token_server: FakeApiServer,
) -> None:
    """An API server that never answers makes observe raise a temporary timeout error."""
    token_server.fault = "hang"
    actuator = built(token_server, request_timeout=HANG_TIMEOUT)
    try:
        with pytest.raises(ActuatorError) as caught:
            await actuator.observe()
    finally:
        await actuator.aclose()

    assert (caught.value.kind, caught.value.code) == (ErrorKind.TEMPORARY, "Timeout")


async def test_apply_reports_500_as_temporary_and_a_hang_as_timed_out(
    token_server: FakeApiServer,
) -> None:
    """apply() never raises: a 500 is a temporary failure, a hanging write a timed-out outcome."""
    answering = built(token_server)
    hanging = built(token_server, request_timeout=HANG_TIMEOUT)
    restart = Action(PRODUCER, Restart(), policy="heal", reason="crash loop")
    try:
        token_server.fault = "error"
        failed = await answering.apply(restart, new_key())
        token_server.fault, token_server.fault_verbs = "hang", {"patch"}
        hung = await hanging.apply(restart, new_key())
    finally:
        await answering.aclose()
        await hanging.aclose()

    assert (failed.status, failed.error_kind) == (OutcomeStatus.FAILED, ErrorKind.TEMPORARY)
    assert (hung.status, hung.error_kind) == (OutcomeStatus.TIMED_OUT, ErrorKind.TEMPORARY)


async def test_a_change_whose_answer_is_lost_is_timed_out_not_failed(
    token_server: FakeApiServer,
) -> None:
    """A PATCH the API server served but whose answer never came (the connection closed)
    may have landed: the outcome is timed out (unknown), not a failure."""
    token_server.fault, token_server.fault_verbs, token_server.fault_times = "drop", {"patch"}, 1
    actuator = built(token_server)
    key = new_key()
    try:
        outcome = await actuator.apply(Action(PRODUCER, Restart(), policy="h", reason="r"), key)
    finally:
        await actuator.aclose()

    assert (outcome.status, outcome.error_kind) == (OutcomeStatus.TIMED_OUT, ErrorKind.TEMPORARY)
    assert "answer was lost" in outcome.detail
    template = token_server.cluster.deployment_spec("default", "producer")["template"]
    assert template["metadata"]["annotations"]["jarvis.io/action-key"] == key


async def test_a_change_answered_504_timeout_is_timed_out_not_failed(
    token_server: FakeApiServer,
) -> None:
    """A PATCH answered 504 Timeout (the API server's own deadline passed while its handler
    went on) may still land: timed out (unknown), not a temporary failure."""
    token_server.fault, token_server.fault_verbs, token_server.fault_times = "late", {"patch"}, 1
    actuator = built(token_server)
    try:
        outcome = await actuator.apply(
            Action(PRODUCER, Scale(replicas=5), policy="h", reason="r"), new_key()
        )
    finally:
        await actuator.aclose()

    assert (outcome.status, outcome.error_kind) == (OutcomeStatus.TIMED_OUT, ErrorKind.TEMPORARY)
    assert "HTTP 504" in outcome.detail
    assert token_server.cluster.deployment_spec("default", "producer")["replicas"] == 5


async def test_a_read_that_hangs_before_any_write_is_a_failure_not_unknown(
    token_server: FakeApiServer,
) -> None:
    """A change whose first read times out sent nothing: a temporary Timeout failure, not a
    timed-out (unknown) outcome."""
    token_server.fault, token_server.fault_verbs = "hang", {"get", "list"}
    actuator = built(token_server, request_timeout=HANG_TIMEOUT)
    try:
        outcome = await actuator.apply(
            Action(PRODUCER, Restart(), policy="h", reason="r"), new_key()
        )
    finally:
        await actuator.aclose()

    assert (outcome.status, outcome.error_kind, outcome.error_code) == (
        OutcomeStatus.FAILED,
        ErrorKind.TEMPORARY,
        "Timeout",
    )
    assert token_server.writes() == []


async def test_observe_gives_up_at_its_own_deadline(token_server: FakeApiServer) -> None:
    """The observe deadline bounds a pass even when single requests may wait longer."""
    token_server.fault = "hang"
    settings = KubernetesSettings(
        host=token_server.url, token=SecretStr(TOKEN), request_timeout=60, observe_timeout=0.3
    )
    actuator = KubernetesActuator.from_settings(settings, clock=FakeClock())
    try:
        with pytest.raises(ActuatorError) as caught:
            await actuator.observe()
    finally:
        await actuator.aclose()

    assert caught.value.code == "Timeout"
    assert "longer than 0.3s" in str(caught.value)


async def test_rbac_forbidding_every_namespace_fails_the_observe(
    apiserver: FakeApiServer, api_client: client.ApiClient
) -> None:
    """Forbidden in every namespace is a lost permission, not one namespace's: observe fails."""
    apiserver.cluster.add_deployment("default", "producer")
    apiserver.forbidden.update({"default", "prod"})
    settings = KubernetesSettings(namespaces=["default", "prod"], request_timeout=10)
    actuator = KubernetesActuator.from_settings(settings, clock=FakeClock(), api_client=api_client)
    with pytest.raises(ActuatorError) as raised:
        await actuator.observe()
    assert not isinstance(raised.value, PartialObserveError)
    assert (raised.value.kind, raised.value.code) == (ErrorKind.TERMINAL, "Forbidden")


async def test_rbac_forbidding_one_namespace_leaves_the_others_observed(
    apiserver: FakeApiServer, api_client: client.ApiClient
) -> None:
    """Forbidden in one namespace: PartialObserveError carries the other namespace's states."""
    apiserver.cluster.add_deployment("default", "producer")
    apiserver.cluster.add_deployment("prod", "ai-brain")
    apiserver.forbidden.add("prod")
    settings = KubernetesSettings(namespaces=["default", "prod"], request_timeout=10)
    actuator = KubernetesActuator.from_settings(settings, clock=FakeClock(), api_client=api_client)
    with pytest.raises(PartialObserveError) as raised:
        await actuator.observe()
    assert [str(s.ref) for s in raised.value.states] == ["k8s://default/producer"]
    assert (raised.value.kind, raised.value.code) == (ErrorKind.TERMINAL, "Forbidden")
