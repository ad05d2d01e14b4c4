"""The fake API server serves Leases as the real one does: the lock's semantics depend on it.

Driven through the official client's `CoordinationV1Api`, as Jarvis's lock is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from kubernetes import client

from tests.kubernetes.fake_apiserver import FakeApiServer


@pytest.fixture
def leases(api_client: client.ApiClient) -> Iterator[client.CoordinationV1Api]:
    yield client.CoordinationV1Api(api_client)


def lease(
    name: str,
    holder: str,
    *,
    version: str | None = None,
    duration: int | None = None,
    transitions: int | None = None,
    renewed: datetime | None = None,
) -> client.V1Lease:
    return client.V1Lease(
        metadata=client.V1ObjectMeta(name=name, resource_version=version),
        spec=client.V1LeaseSpec(
            holder_identity=holder,
            lease_duration_seconds=duration,
            lease_transitions=transitions,
            renew_time=renewed,
        ),
    )


def spec_of(found: client.V1Lease) -> client.V1LeaseSpec:
    assert found.spec is not None
    return found.spec


def version_of(found: client.V1Lease) -> str:
    assert found.metadata is not None and found.metadata.resource_version
    return found.metadata.resource_version


def status_of(exc: pytest.ExceptionInfo[client.ApiException]) -> tuple[int, str]:
    body = json.loads(exc.value.body or "{}")
    return int(exc.value.status or 0), str(body["reason"])


def test_a_created_lease_reads_back_with_a_version_and_micro_times(
    apiserver: FakeApiServer, leases: client.CoordinationV1Api
) -> None:
    """Create answers the stored Lease; get returns its spec, times in UTC to the microsecond."""
    now = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    made = leases.create_namespaced_lease(
        "default",
        lease("jarvis", "a", duration=15, transitions=1, renewed=now),
    )
    read = leases.read_namespaced_lease("jarvis", "default")

    assert version_of(read) == version_of(made)
    spec = spec_of(read)
    assert spec.holder_identity == "a"
    assert (spec.lease_duration_seconds, spec.lease_transitions) == (15, 1)
    assert spec.renew_time == now


def test_a_second_create_of_one_name_is_already_exists(
    apiserver: FakeApiServer, leases: client.CoordinationV1Api
) -> None:
    """Two candidates creating the Lease at once: one wins, the other gets 409 AlreadyExists."""
    leases.create_namespaced_lease("default", lease("jarvis", "a", duration=15))
    with pytest.raises(client.ApiException) as raised:
        leases.create_namespaced_lease("default", lease("jarvis", "b", duration=15))
    assert status_of(raised) == (409, "AlreadyExists")


def test_a_replace_on_a_stale_version_is_a_conflict(
    apiserver: FakeApiServer, leases: client.CoordinationV1Api
) -> None:
    """Of two replaces from one read, the second carries a stale resourceVersion: 409 Conflict."""
    made = leases.create_namespaced_lease("default", lease("jarvis", "a", duration=5))
    version = version_of(made)
    first = leases.replace_namespaced_lease(
        "jarvis", "default", lease("jarvis", "b", version=version, duration=5)
    )
    with pytest.raises(client.ApiException) as raised:
        leases.replace_namespaced_lease(
            "jarvis", "default", lease("jarvis", "c", version=version, duration=5)
        )

    assert status_of(raised) == (409, "Conflict")
    assert version_of(first) != version
    assert spec_of(leases.read_namespaced_lease("jarvis", "default")).holder_identity == "b"


def test_a_lease_allows_no_unconditional_update_and_no_create_on_update(
    apiserver: FakeApiServer, leases: client.CoordinationV1Api
) -> None:
    """A replace without a resourceVersion is 422; one of a missing Lease is 404."""
    leases.create_namespaced_lease("default", lease("jarvis", "a", duration=5))
    with pytest.raises(client.ApiException) as unconditional:
        leases.replace_namespaced_lease("jarvis", "default", lease("jarvis", "b"))
    with pytest.raises(client.ApiException) as missing:
        leases.replace_namespaced_lease("other", "default", lease("other", "b", version="1"))
    with pytest.raises(client.ApiException) as unread:
        leases.read_namespaced_lease("other", "default")

    assert status_of(unconditional) == (422, "Invalid")
    assert status_of(missing) == (404, "NotFound")
    assert status_of(unread) == (404, "NotFound")


def test_a_lease_duration_must_be_positive(
    apiserver: FakeApiServer, leases: client.CoordinationV1Api
) -> None:
    """leaseDurationSeconds 0 is refused as the real validation refuses it (422 Invalid)."""
    with pytest.raises(client.ApiException) as raised:
        leases.create_namespaced_lease("default", lease("jarvis", "a", duration=0))
    assert status_of(raised) == (422, "Invalid")


def test_a_micro_time_without_its_six_fractional_digits_is_refused(
    apiserver: FakeApiServer, leases: client.CoordinationV1Api
) -> None:
    """As Go's time.Parse(RFC3339Micro): a time on a whole second, which the client writes
    without ".000000" (`datetime.isoformat`), is a 400, not a Lease."""
    whole = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with pytest.raises(client.ApiException) as refused:
        leases.create_namespaced_lease("default", lease("jarvis", "a", duration=15, renewed=whole))
    assert status_of(refused) == (400, "BadRequest")
