"""`coordination.k8s.io/v1` Leases for the fake API server, as the real one stores them.

`tests.kubernetes.fake_apiserver` routes ``/apis/coordination.k8s.io/v1/namespaces/{ns}/leases``
here. What a leader election depends on is what is kept faithful (checked against the
API server's lease strategy and validation, and client-go's ``resourcelock``):

- create (POST) answers 201, or 409 ``AlreadyExists`` when the name is taken;
- get (GET) answers 404 ``NotFound`` for a missing Lease;
- replace (PUT) is conditional: a Lease allows no unconditional update, so a body
  without ``metadata.resourceVersion`` is 422 ``Invalid``, a stale one is 409
  ``Conflict`` (optimistic concurrency: of two candidates that read the same
  version, one wins), and a missing Lease is 404 (no create on update);
- every write bumps the cluster-wide ``resourceVersion``; ``leaseDurationSeconds``
  must be positive and ``leaseTransitions`` not negative (422 ``Invalid``);
  ``acquireTime`` and ``renewTime`` are MicroTime, stored as RFC 3339 with microseconds,
  and must arrive so (six fractional digits; 400 ``BadRequest`` otherwise).
"""

from __future__ import annotations

import copy
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.kubernetes.fake_cluster import ApiError, FakeCluster
from tests.kubernetes.fake_status import CREATED

Obj = dict[str, Any]

API_VERSION = "coordination.k8s.io/v1"
GROUP = "coordination.k8s.io"
_RFC3339_MICRO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})")


class FakeLeases:
    """The Lease objects of a `FakeCluster`, under its lock and its resourceVersion."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self._leases: dict[tuple[str, str], Obj] = {}

    def get(self, namespace: str, name: str) -> Obj:
        with self.cluster.lock:
            return self._public(self._stored(namespace, name))

    def create(self, namespace: str, body: Any) -> Obj:
        with self.cluster.lock:
            obj = self._checked(namespace, body)
            name = obj["metadata"]["name"]
            if (namespace, name) in self._leases:
                raise ApiError(
                    409, "AlreadyExists", f'leases.{GROUP} "{name}" already exists', name=name
                )
            obj["metadata"]["uid"] = str(uuid.uuid4())
            obj["metadata"]["creationTimestamp"] = CREATED
            obj["metadata"]["resourceVersion"] = self.cluster.resource_version()
            self._leases[(namespace, name)] = obj
            return self._public(obj)

    def replace(self, namespace: str, name: str, body: Any) -> Obj:
        with self.cluster.lock:
            current = self._stored(namespace, name)
            obj = self._checked(namespace, body)
            if obj["metadata"]["name"] != name:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"the name of the object ({obj['metadata']['name']}) does not match "
                    f"the name on the URL ({name})",
                )
            sent = obj["metadata"].get("resourceVersion")
            if not sent:
                raise ApiError(
                    422,
                    "Invalid",
                    f'Lease.{GROUP} "{name}" is invalid: metadata.resourceVersion: '
                    "Invalid value: 0x0: must be specified for an update",
                    name=name,
                )
            if sent != current["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on leases.{GROUP} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again",
                    name=name,
                    kind="leases",
                )
            for key in ("uid", "creationTimestamp"):
                obj["metadata"][key] = current["metadata"][key]
            obj["metadata"]["resourceVersion"] = self.cluster.resource_version()
            self._leases[(namespace, name)] = obj
            return self._public(obj)

    def forget(self, namespace: str, name: str) -> None:
        """A test hook: someone deleted the Lease (Jarvis's Role may not)."""
        with self.cluster.lock:
            self._leases.pop((namespace, name), None)

    def _stored(self, namespace: str, name: str) -> Obj:
        found = self._leases.get((namespace, name))
        if found is None:
            raise ApiError(404, "NotFound", f'leases.{GROUP} "{name}" not found', name=name)
        return found

    @staticmethod
    def _checked(namespace: str, body: Any) -> Obj:
        """The body as it would be stored; 400 or 422 for what the real server refuses."""
        if not isinstance(body, dict) or body.get("kind", "Lease") != "Lease":
            raise ApiError(400, "BadRequest", "the body is not a Lease")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", "Lease is invalid: metadata.name: Required value")
        if meta.setdefault("namespace", namespace) != namespace:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent "
                "on the request",
            )
        spec = obj.setdefault("spec", {})
        duration = spec.get("leaseDurationSeconds")
        transitions = spec.get("leaseTransitions")
        if (duration is not None and (not isinstance(duration, int) or duration <= 0)) or (
            transitions is not None and (not isinstance(transitions, int) or transitions < 0)
        ):
            raise ApiError(
                422,
                "Invalid",
                f'Lease.{GROUP} "{name}" is invalid: spec: leaseDurationSeconds must be '
                "greater than 0 and leaseTransitions must be non-negative",
                name=name,
            )
        for key in ("acquireTime", "renewTime"):
            if spec.get(key) is not None:
                spec[key] = _micro_time(spec[key], key)
        obj["apiVersion"], obj["kind"] = API_VERSION, "Lease"
        return obj

    @staticmethod
    def _public(obj: Obj) -> Obj:
        return copy.deepcopy(obj)


def _micro_time(value: Any, field: str) -> str:
    """RFC 3339 with microseconds in UTC, as the API server writes a MicroTime.

    Read as apimachinery's ``MicroTime.UnmarshalJSON`` does, with Go's
    ``time.Parse(RFC3339Micro)``: exactly six fractional digits, then ``Z`` or an
    offset. A time without its fraction (``…T12:00:00+00:00``) is refused.
    """
    if not isinstance(value, str) or not _RFC3339_MICRO.fullmatch(value):
        raise ApiError(
            400,
            "BadRequest",
            f'Lease in version "v1" cannot be handled as a Lease: parsing time {value!r} '
            f'as "2006-01-02T15:04:05.000000Z07:00": spec.{field} is not RFC3339Micro',
        )
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
