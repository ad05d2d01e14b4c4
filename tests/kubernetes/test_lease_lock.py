"""The Lease lock's writes as the real API server parses them: MicroTimes in RFC3339Micro."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from kubernetes import client

from jarvis.actuators.kubernetes.lease import LeaseLock
from tests.kubernetes.fake_apiserver import FakeApiServer

pytestmark = pytest.mark.anyio

WHOLE_SECOND = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def lock(api_client: client.ApiClient) -> Iterator[LeaseLock]:
    yield LeaseLock(
        api_client,
        namespace="default",
        name="jarvis",
        holder="a",
        duration=15,
        request_timeout=5.0,
        monotonic=lambda: 1000.0,
        wall=lambda: WHOLE_SECOND,
    )


async def test_a_lease_taken_and_renewed_on_a_whole_second_is_written(
    apiserver: FakeApiServer, lock: LeaseLock
) -> None:
    """A wall clock on a whole second (microsecond 0) still takes, renews and releases the
    Lease: its times go out with six fractional digits, as the API server requires."""
    term = await lock.acquire(0)
    assert term == 1
    assert await lock.renew(term)
    stored = apiserver.leases.get("default", "jarvis")["spec"]
    assert stored["renewTime"] == stored["acquireTime"] == "2026-01-02T03:04:05.000001Z"
    await lock.release(term)
    assert apiserver.leases.get("default", "jarvis")["spec"]["holderIdentity"] == ""
