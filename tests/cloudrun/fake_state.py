"""The state machine behind the fake Cloud Run Admin API (`fake_server`).

Holds services, revisions and long-running operations as the v2 REST JSON the
real API speaks (camelCase keys, int64 as strings, RFC 3339 timestamps), and
reconciles them the way Cloud Run does for the subset Jarvis uses: a template
change creates a revision, a revision becomes ready or fails (``revision_ready``
decides), ``LATEST`` traffic follows the newest ready revision, and an update
finishes as an operation that carries the service or an error. The HTTP layer
in `fake_server` calls it under one lock; tests call its hooks directly.
"""

from __future__ import annotations

import copy
import itertools
import json
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

JSON = dict[str, Any]
LATEST = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
SUCCEEDED = "CONDITION_SUCCEEDED"
FAILED = "CONDITION_FAILED"
RECONCILING = "CONDITION_RECONCILING"
SERVICE_TYPE = "type.googleapis.com/google.cloud.run.v2.Service"
# Top-level Service fields a caller may write; everything else is output only.
WRITABLE = ("labels", "annotations", "description", "template", "traffic", "scaling")
_EPOCH = datetime(2024, 5, 1, tzinfo=UTC)


class ApiError(Exception):
    """An error the HTTP layer renders as Google's JSON error body."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


@dataclass
class Operation:
    """One long-running update; ``polls_left`` GETs until it reports ``done``."""

    name: str
    service: str
    polls_left: int | None
    error: JSON | None = None
    done: bool = False


@dataclass
class CloudRunState:
    """Every service, revision and operation of one fake project, keyed by full name."""

    services: dict[str, JSON] = field(default_factory=dict)
    revisions: dict[str, list[JSON]] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    revision_ready: Callable[[str, JSON], bool] = lambda _service, _template: True
    """Decides whether a new revision becomes ready, from its service id and template."""
    operation_polls: int | None = 1
    """GETs an operation answers ``done: false`` before finishing; None: never finishes."""
    conflicts: int = 0
    """The next PATCHes to answer 409 ABORTED, as if another writer got there first."""
    _ticks: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- tests' hooks -------------------------------------------------------------

    def add_service(
        self,
        project: str,
        location: str,
        service_id: str,
        *,
        image: str,
        min_instances: int = 0,
        max_instances: int = 100,
        starting: bool = False,
        manual_instances: int | None = None,
    ) -> JSON:
        """Create a serving service with one ready revision and 100% LATEST traffic (replacing
        any of that name); ``starting``: as just created, its first revision not ready yet;
        ``manual_instances``: in manual scaling mode, running exactly that many instances."""
        name = f"projects/{project}/locations/{location}/services/{service_id}"
        now = self._now()
        scaling: JSON = {"minInstanceCount": min_instances, "maxInstanceCount": max_instances}
        if manual_instances is not None:
            # ServiceScaling (google/cloud/run/v2/vendor_settings.proto): after a switch to
            # manual scaling the service-level min and max are unset
            # (cloud.google.com/run/docs/configuring/services/manual-scaling).
            scaling = {"scalingMode": "MANUAL", "manualInstanceCount": manual_instances}
        self.services[name] = {
            "name": name,
            "uid": str(uuid.uuid4()),
            "generation": "1",
            "createTime": now,
            "updateTime": now,
            "template": {"containers": [{"image": image, "ports": [{"containerPort": 8080}]}]},
            "traffic": [{"type": LATEST, "percent": 100}],
            "scaling": scaling,
            "uri": f"https://{service_id}-fake.a.run.app",
        }
        self.revisions[name] = []
        first = self._create_revision(name)
        if starting:
            first["conditions"] = [_condition("Ready", RECONCILING, "Deploying revision.")]
        self._reconcile(name)
        if starting:
            # What Cloud Run reports in a new service's first minute: nothing ready,
            # LATEST resolved to no revision, the service still reconciling.
            service = self.services[name]
            service["reconciling"] = True
            service["terminalCondition"] = _condition("Ready", RECONCILING, "Deploying.")
            service["conditions"] = [
                _condition("RoutesReady", RECONCILING),
                _condition("ConfigurationsReady", RECONCILING),
            ]
            service.pop("observedGeneration", None)
        return copy.deepcopy(self.services[name])

    def delete_service(self, service: str) -> None:
        """``gcloud run services delete``: the service and its revisions are gone, and every
        later call naming it answers 404 NOT_FOUND."""
        del self.services[service]
        del self.revisions[service]

    def crash(
        self, service: str, reason: str = "Container failed to start.", revision: str = ""
    ) -> str:
        """Make ``revision`` (by default the latest ready one, which LATEST serves) fail
        readiness (a crash loop); return its name."""
        serving = revision or self._short(self.services[service]["latestReadyRevision"])
        self.revision(service, serving)["conditions"] = [
            _condition("Ready", FAILED, reason, "HEALTH_CHECK_CONTAINER_ERROR")
        ]
        self._reconcile(service)
        return serving

    def revision(self, service: str, short: str) -> JSON:
        for revision in self.revisions[service]:
            if self._short(revision["name"]) == short:
                return revision
        raise ApiError(404, "NOT_FOUND", f"Revision '{short}' not found.")

    def finish_operations(self) -> None:
        """Complete every pending operation as if it had been polled to the end."""
        for op in self.operations.values():
            if not op.done:
                self._finish(op)

    # -- API ---------------------------------------------------------------------

    def get_service(self, name: str) -> JSON:
        return copy.deepcopy(self._service(name))

    def list_revisions(self, service: str, page_size: int, page_token: str) -> JSON:
        self._service(service)
        newest_first = sorted(self.revisions[service], key=lambda r: r["createTime"], reverse=True)
        start = int(page_token) if page_token else 0
        size = page_size if page_size > 0 else 100
        page = newest_first[start : start + size]
        out: JSON = {"revisions": copy.deepcopy(page)}
        if start + size < len(newest_first):
            out["nextPageToken"] = str(start + size)
        return out

    def get_revision(self, name: str) -> JSON:
        service, _, short = name.rpartition("/revisions/")
        self._service(service)
        return copy.deepcopy(self.revision(service, short))

    def update_service(self, name: str, body: JSON, update_mask: list[str]) -> JSON:
        """Apply a PATCH: the masked fields of ``body`` (all writable ones without a mask)."""
        stored = self._service(name)
        etag = body.get("etag")
        if self.conflicts > 0:
            self.conflicts -= 1
            stored["etag"] = f'"{uuid.uuid4().hex[:16]}"'
        if etag and etag != stored["etag"]:
            raise ApiError(409, "ABORTED", "The service was modified concurrently; etag mismatch.")
        paths = update_mask or list(WRITABLE)
        candidate = copy.deepcopy(stored)
        for path in paths:
            _set_path(candidate, path, body)
        self._validate_traffic(name, candidate["traffic"])
        before = _spec(stored["template"])
        for key in WRITABLE:
            if key in candidate:
                stored[key] = candidate[key]
        stored["generation"] = str(int(stored["generation"]) + 1)
        stored["updateTime"] = self._now()
        stored["etag"] = f'"{uuid.uuid4().hex[:16]}"'
        created = None
        if _spec(stored["template"]) != before:
            created = self._create_revision(name)
        stored["reconciling"] = True
        stored["terminalCondition"] = _condition("Ready", RECONCILING, "Deploying.")
        op = Operation(
            name=f"{name.split('/services/', maxsplit=1)[0]}/operations/{uuid.uuid4()}",
            service=name,
            polls_left=self.operation_polls,
        )
        self.operations[op.name] = op
        if created is not None and not self.revision_ready(
            name.rsplit("/", 1)[1], stored["template"]
        ):
            short = self._short(created["name"])
            failure = (
                "The user-provided container failed to start and listen on the port defined "
                "provided by the PORT=8080 environment variable. Logs for this revision might "
                f"contain more information.{_logs_footer(name, short)}"
            )
            created["conditions"] = [
                _condition("Ready", FAILED, failure, "HEALTH_CHECK_CONTAINER_ERROR"),
            ]
            op.error = {
                "code": 9,
                "message": f"Revision '{short}' is not ready and cannot serve traffic. {failure}",
            }
        if op.polls_left == 0:
            self._finish(op)
        return self._render_operation(op)

    def get_operation(self, name: str) -> JSON:
        op = self.operations.get(name)
        if op is None:
            raise ApiError(404, "NOT_FOUND", f"Operation {name} not found.")
        if not op.done and op.polls_left is not None:
            op.polls_left -= 1
            if op.polls_left <= 0:
                self._finish(op)
        return self._render_operation(op)

    # -- reconciliation ----------------------------------------------------------

    def _service(self, name: str) -> JSON:
        service = self.services.get(name)
        if service is None:
            parts = name.split("/")
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Resource '{parts[-1]}' of kind 'SERVICE' in region '{parts[3]}' "
                f"in project '{parts[1]}' does not exist.",
            )
        return service

    def _create_revision(self, service: str) -> JSON:
        stored = self.services[service]
        template = stored["template"]
        generation = len(self.revisions[service]) + 1
        service_id = service.rsplit("/", 1)[1]
        suffix = "".join(_letters(generation))
        short = template.get("revision") or f"{service_id}-{generation:05d}-{suffix}"
        if any(self._short(r["name"]) == short for r in self.revisions[service]):
            raise ApiError(409, "ALREADY_EXISTS", f"Revision named '{short}' already exists.")
        revision: JSON = {
            "name": f"{service}/revisions/{short}",
            "uid": str(uuid.uuid4()),
            "generation": "1",
            "service": service_id,
            "createTime": self._now(),
            "annotations": dict(template.get("annotations", {})),
            "containers": copy.deepcopy(template.get("containers", [])),
            "scaling": copy.deepcopy(template.get("scaling", {})),
            "conditions": [_condition("Ready", SUCCEEDED)],
            "observedGeneration": "1",
        }
        self.revisions[service].append(revision)
        stored["latestCreatedRevision"] = revision["name"]
        return revision

    def _finish(self, op: Operation) -> None:
        op.done = True
        service = self.services[op.service]
        service["reconciling"] = False
        self._reconcile(op.service)

    def _reconcile(self, name: str) -> None:
        """Recompute the output-only status the way Cloud Run reports it after a rollout."""
        service = self.services[name]
        # The latest ready revision only moves forward: a serving revision that
        # starts crashing stays "latest ready", as on Cloud Run.
        current = service.get("latestReadyRevision", "")
        floor = self.revision(name, self._short(current))["createTime"] if current else ""
        fresh = [r for r in self.revisions[name] if _ready(r) and r["createTime"] > floor]
        if fresh:
            service["latestReadyRevision"] = max(fresh, key=lambda r: r["createTime"])["name"]
        statuses = []
        serving_ok = True
        for target in service["traffic"]:
            short = target.get("revision") or self._short(service.get("latestReadyRevision", ""))
            status: JSON = {"type": target["type"], "percent": target.get("percent", 0)}
            if target.get("revision"):
                status["revision"] = short
            if target.get("tag"):
                status["tag"] = target["tag"]
            statuses.append(status)
            if status["percent"] and (not short or not _ready(self.revision(name, short))):
                serving_ok = False
        service["trafficStatuses"] = statuses
        latest = self._latest_created(name)
        latest_ok = _ready(latest)
        follows_latest = any(t["type"] == LATEST and t.get("percent") for t in service["traffic"])
        if serving_ok and (latest_ok or not follows_latest):
            service["terminalCondition"] = _condition("Ready", SUCCEEDED)
            service["observedGeneration"] = service["generation"]
        else:
            culprit = latest if not latest_ok else None
            message = (
                f"Revision '{self._short(culprit['name'])}' is not ready and cannot serve traffic."
                if culprit is not None
                else "Traffic is routed to a revision that is not ready."
            )
            service["terminalCondition"] = _condition("Ready", FAILED, message)
        service["conditions"] = [
            _condition("RoutesReady", SUCCEEDED if serving_ok else FAILED),
            _condition("ConfigurationsReady", SUCCEEDED if latest_ok else FAILED),
        ]
        service["reconciling"] = False
        service["etag"] = f'"{uuid.uuid4().hex[:16]}"'

    def _validate_traffic(self, name: str, traffic: list[JSON]) -> None:
        total = 0
        for target in traffic:
            if target.get("type") not in (LATEST, REVISION):
                raise ApiError(400, "INVALID_ARGUMENT", "traffic[].type must be LATEST or REVISION")
            if target["type"] == REVISION:
                self.revision(name, target.get("revision", ""))
            total += int(target.get("percent", 0))
        if total != 100:
            raise ApiError(400, "INVALID_ARGUMENT", f"Traffic percentages sum to {total}, not 100.")

    def _latest_created(self, name: str) -> JSON:
        return self.revision(name, self._short(self.services[name]["latestCreatedRevision"]))

    def _render_operation(self, op: Operation) -> JSON:
        out: JSON = {
            "name": op.name,
            "metadata": {"@type": SERVICE_TYPE, **self._public(op.service)},
            "done": op.done,
        }
        if op.done and op.error is not None:
            out["error"] = op.error
        elif op.done:
            out["response"] = {"@type": SERVICE_TYPE, **self._public(op.service)}
        return out

    def _public(self, name: str) -> JSON:
        return copy.deepcopy(self.services[name])

    def _now(self) -> str:
        # A fake clock: one second per event keeps createTime strictly ordered.
        moment = _EPOCH + timedelta(seconds=next(self._ticks))
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    @staticmethod
    def _short(name: str) -> str:
        return name.rsplit("/", 1)[-1]


def _condition(kind: str, state: str, message: str = "", revision_reason: str = "") -> JSON:
    out: JSON = {"type": kind, "state": state, "lastTransitionTime": "2024-05-01T00:00:00Z"}
    if message:
        out["message"] = message
    if state == FAILED:
        out["severity"] = "ERROR"
    if revision_reason:
        out["revisionReason"] = revision_reason
    return out


def _logs_footer(service: str, revision: str) -> str:
    """What Cloud Run appends to a failed revision's message: a blank line, the logs URL and
    a troubleshooting link, each on its own line (as Terraform and gcloud print it)."""
    project, service_id = service.split("/")[1], service.rsplit("/", 1)[1]
    return (
        "\n\nLogs URL: https://console.cloud.google.com/logs/viewer?project="
        f"{project}&resource=cloud_run_revision/service_name/{service_id}/revision_name/"
        f"{revision}\nFor more troubleshooting guidance, see "
        "https://cloud.google.com/run/docs/troubleshooting#container-failed-to-start"
    )


def _ready(revision: JSON) -> bool:
    return any(
        c["type"] == "Ready" and c["state"] == SUCCEEDED for c in revision.get("conditions", [])
    )


def _spec(template: JSON) -> str:
    """What makes a revision: the template without its (optional) explicit name."""
    return json.dumps({k: v for k, v in template.items() if k != "revision"}, sort_keys=True)


def _letters(n: int) -> list[str]:
    alphabet = string.ascii_lowercase
    return [alphabet[(n * 7) % 26], alphabet[(n * 11) % 26], alphabet[(n * 13) % 26]]


def _set_path(target: JSON, path: str, source: JSON) -> None:
    """Copy the field at dotted camelCase ``path`` from ``source`` into ``target``."""
    parts = path.split(".")
    if parts[0] not in WRITABLE:
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid update mask path: {path!r}")
    src: Any = source
    dst = target
    for part in parts[:-1]:
        src = src.get(part, {}) if isinstance(src, dict) else {}
        dst = dst.setdefault(part, {})
    leaf = parts[-1]
    if isinstance(src, dict) and leaf in src:
        dst[leaf] = copy.deepcopy(src[leaf])
    else:
        dst.pop(leaf, None)
