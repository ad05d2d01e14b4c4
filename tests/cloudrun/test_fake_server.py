"""The fake Cloud Run API speaks the wire format the real client expects."""

from __future__ import annotations

import pytest
import requests
from google.api_core import exceptions as gexc
from google.cloud import run_v2
from google.protobuf import field_mask_pb2

from jarvis.actuators.cloudrun.client import Clients
from tests.cloudrun.conftest import service_name
from tests.cloudrun.fake_server import FakeCloudRun


def test_an_unknown_service_raises_not_found_from_the_client(clients: Clients) -> None:
    """A 404 in Google's JSON error format becomes `NotFound` with the server's message."""
    with pytest.raises(gexc.NotFound, match="does not exist"):
        clients.services.get_service(name=service_name("ghost"))


def test_an_invalid_update_mask_raises_invalid_argument(clients: Clients) -> None:
    """A PATCH naming an output-only field is refused with INVALID_ARGUMENT."""
    request = run_v2.UpdateServiceRequest(
        service=run_v2.Service(name=service_name("api")),
        update_mask=field_mask_pb2.FieldMask(paths=["latest_ready_revision"]),
    )
    with pytest.raises(gexc.BadRequest, match="Invalid update mask path"):
        clients.services.update_service(request=request)


def test_revisions_are_listed_across_pages_newest_first(
    clients: Clients, fake: FakeCloudRun
) -> None:
    """With a page size of one, the client's pager follows nextPageToken through every page."""
    name = service_name("api")
    for tag in ("a", "b"):
        with fake.lock:
            fake.state.update_service(
                name, {"template": {"containers": [{"image": tag}]}}, ["template"]
            )
    fake.state.finish_operations()
    pager = clients.revisions.list_revisions(
        request=run_v2.ListRevisionsRequest(parent=name, page_size=1)
    )
    names = [r.name.rsplit("/", 1)[-1][:9] for r in pager]
    assert names == ["api-00003", "api-00002", "api-00001"]
    listed = [r for r in fake.requests if r.path.endswith("/revisions")]
    assert [r.query.get("pageToken") for r in listed] == [None, ["1"], ["2"]]


def test_an_update_is_a_long_running_operation_polled_to_a_typed_service(
    clients: Clients, fake: FakeCloudRun
) -> None:
    """PATCH answers an unfinished Operation; polling it yields a `run_v2.Service`."""
    fake.state.operation_polls = 2
    request = run_v2.UpdateServiceRequest(
        service=run_v2.Service(
            name=service_name("api"), scaling=run_v2.ServiceScaling(max_instance_count=7)
        ),
        update_mask=field_mask_pb2.FieldMask(paths=["scaling.max_instance_count"]),
    )
    operation = clients.services.update_service(request=request)
    assert operation.done() is False  # type: ignore[no-untyped-call]  # api_core is untyped
    result = operation.result(timeout=5)  # type: ignore[no-untyped-call]  # api_core is untyped
    assert isinstance(result, run_v2.Service)
    assert result.scaling.max_instance_count == 7
    polls = [r for r in fake.requests if "/operations/" in r.path]
    assert len(polls) == 2


def test_a_denied_service_is_permission_denied_and_the_others_answer(
    clients: Clients, fake: FakeCloudRun
) -> None:
    """`deny` answers 403 PERMISSION_DENIED on one service and its revisions (the REST client
    raises Forbidden), naming the permission and the resource as Google does; the other
    services answer; `heal` lifts it."""
    fake.deny("worker")
    with pytest.raises(gexc.Forbidden, match=r"'run\.services\.get' denied on resource"):
        clients.services.get_service(name=service_name("worker"))
    with pytest.raises(gexc.Forbidden, match=r"'run\.revisions\.list' denied"):
        list(clients.revisions.list_revisions(parent=service_name("worker")))
    assert clients.services.get_service(name=service_name("api")).name == service_name("api")
    fake.heal()
    assert clients.services.get_service(name=service_name("worker")).name.endswith("/worker")


def test_a_fault_for_a_few_requests_heals_itself_and_a_cut_closes_unanswered(
    clients: Clients, fake: FakeCloudRun
) -> None:
    """``fail_with(..., times=n)`` answers the next n matching requests with the error and
    then answers normally; `cut` closes the connection with no answer at all, which the
    REST client reports as a dropped connection."""
    fake.fail_with(429, path_contains="/services/api", times=1)
    with pytest.raises(gexc.TooManyRequests):
        clients.services.get_service(name=service_name("api"))
    assert clients.services.get_service(name=service_name("api")).name == service_name("api")
    fake.cut(path_contains="/services/api", times=1)
    with pytest.raises(requests.ConnectionError, match="without response"):
        clients.services.get_service(name=service_name("api"))
    assert clients.services.get_service(name=service_name("api")).name == service_name("api")
