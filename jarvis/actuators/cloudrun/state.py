"""Cloud Run services as Jarvis sees them: SDK objects parsed into typed views and judged.

`jarvis.actuators.cloudrun.actuator` reads a `run_v2.Service`, and its `run_v2.Revision`s
through `jarvis.actuators.cloudrun.revisions` (which parses them with `revision_view`),
and calls `parse_service`, then `resource_state`. Everything here is pure (no
I/O): the parsing happens once, at the boundary, and the judgement works on the
frozen views below. Revision names are always the short form (``api-00003-xyz``);
the v2 API mixes full resource names (``latestReadyRevision``) and short ones
(traffic targets).

Health:
- UNHEALTHY: no revision carries traffic, or a revision carrying traffic is not ready
  (a crash loop on the serving revision).
- DEGRADED: the latest created revision failed to become ready while traffic
  follows LATEST (a failed deploy; the previous revision keeps serving), the
  service's terminal condition failed for another reason, or a new service's
  first revision is still deploying (nothing ready yet; rollout in progress).
- HEALTHY: everything carrying traffic is ready (also during a rollout, and after
  a rollback that pinned traffic to a ready revision).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.cloud import run_v2

from jarvis.model import (
    JSON,
    Health,
    Replicas,
    ResourceRef,
    ResourceState,
    Rollout,
    RolloutState,
    Versions,
)
from jarvis.text import one_line

# Recorded as null when unknown, not left out (see `ResourceState.record_nulls`).
_NULLS = frozenset({"previous_version"})

_LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
_MANUAL = run_v2.ServiceScaling.ScalingMode.MANUAL
_NEVER = datetime.min.replace(tzinfo=UTC)
_STARTING = ("pending", "reconciling")
"""Ready states of a revision still deploying."""
_STATES = {
    run_v2.Condition.State.CONDITION_SUCCEEDED: "succeeded",
    run_v2.Condition.State.CONDITION_FAILED: "failed",
    run_v2.Condition.State.CONDITION_RECONCILING: "reconciling",
    run_v2.Condition.State.CONDITION_PENDING: "pending",
}


@dataclass(frozen=True, slots=True)
class ConditionView:
    type: str
    state: str
    """succeeded | failed | reconciling | pending | unspecified"""
    reason: str = ""
    message: str = ""

    def to_json(self) -> dict[str, JSON]:
        return {
            "type": self.type,
            "state": self.state,
            "reason": self.reason,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class RevisionView:
    name: str
    ready: str
    """The state of the revision's Ready condition; "pending" when it has none."""
    message: str
    image: str
    created: datetime | None


@dataclass(frozen=True, slots=True)
class TrafficView:
    latest: bool
    revision: str
    """The named revision; for a LATEST target in a status, the one it resolved to."""
    percent: int
    tag: str = ""

    def to_json(self) -> dict[str, JSON]:
        return {
            "latest": self.latest,
            "revision": self.revision,
            "percent": self.percent,
            "tag": self.tag,
        }


@dataclass(frozen=True, slots=True)
class ServiceView:
    """One service and its revisions (newest first), as typed facts."""

    name: str
    uri: str
    uid: str
    """Cloud Run's id of the service: another one for a service created again."""
    generation: int
    observed_generation: int
    reconciling: bool
    terminal: ConditionView | None
    conditions: tuple[ConditionView, ...]
    latest_created: str
    latest_ready: str
    traffic: tuple[TrafficView, ...]
    statuses: tuple[TrafficView, ...]
    image: str
    min_instances: int
    max_instances: int | None
    revisions: tuple[RevisionView, ...]
    manual_scaling: bool = False
    """The service runs exactly ``min_instances`` (= ``max_instances``) instances:
    its ``scaling.manual_instance_count``."""

    def revision(self, name: str) -> RevisionView | None:
        return next((r for r in self.revisions if r.name == name), None)

    def serving(self) -> list[TrafficView]:
        """Traffic as routed (statuses, else the declared split), LATEST resolved, > 0%."""
        source = self.statuses or self.traffic
        out = []
        for entry in source:
            name = entry.revision or (self.latest_ready if entry.latest else "")
            if entry.percent > 0:
                out.append(TrafficView(entry.latest, name, entry.percent, entry.tag))
        return out

    def named_revisions(self) -> list[str]:
        """The revisions whose state the judgement reads: every one traffic reaches, and
        the latest created one."""
        names = [entry.revision for entry in self.serving()]
        return [name for name in dict.fromkeys([*names, self.latest_created]) if name]

    def serving_version(self) -> str | None:
        """The revision carrying the most traffic."""
        serving = self.serving()
        return max(serving, key=lambda t: t.percent).revision if serving else None

    def version(self) -> str | None:
        """The version the service is meant to run: the latest created revision while
        traffic follows LATEST (so a rollout that never got ready is "the version",
        as on Kubernetes), else the pinned revision carrying the most traffic."""
        if self.follows_latest() and self.latest_created:
            return self.latest_created
        return self.serving_version()

    def follows_latest(self) -> bool:
        return any(t.latest and t.percent > 0 for t in self.traffic)

    def ready_revisions(self, *, excluding: str | None = None) -> list[str]:
        return [r.name for r in self.revisions if r.ready == "succeeded" and r.name != excluding]

    def previous_version(self) -> str | None:
        """The newest ready revision created before `version`."""
        current = self.version()
        found = current is None
        for revision in self.revisions:
            if found and revision.ready == "succeeded":
                return revision.name
            found = found or revision.name == current
        return None


def first_paragraph(message: str) -> str:
    """Cloud Run's message as one line: its first paragraph, as `jarvis.text.one_line`
    says outside text (whitespace collapsed, control and bidi characters escaped).

    A revision that never got ready is explained in a paragraph followed by a blank
    line, ``Logs URL: ...`` and a troubleshooting link, each on its own line; the
    paragraph is what an operator reads in a detail, an event or an alert.
    """
    return one_line(message.strip().split("\n\n", 1)[0])


def short_name(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def primary_container(containers: Sequence[Any]) -> int:
    """The index of the serving (ingress) container: the one exposing a port, else the first."""
    for index, container in enumerate(containers):
        if container.ports:
            return index
    return 0


def parse_service(
    service: run_v2.Service, revisions: Sequence[RevisionView], *, scaling_level: str
) -> ServiceView:
    template = service.template
    containers = list(template.containers)
    image = containers[primary_container(containers)].image if containers else ""
    parsed = sorted(
        revisions,
        key=lambda r: (r.created is not None, r.created or _NEVER, r.name),
        reverse=True,
    )
    terminal = service.terminal_condition
    min_instances, max_instances, manual = _instance_bounds(service, scaling_level)
    return ServiceView(
        name=short_name(service.name),
        uri=service.uri,
        uid=service.uid,
        generation=int(service.generation),
        observed_generation=int(service.observed_generation),
        reconciling=bool(service.reconciling),
        terminal=_condition(terminal) if terminal.type_ else None,
        conditions=tuple(_condition(c) for c in service.conditions),
        latest_created=short_name(service.latest_created_revision),
        latest_ready=short_name(service.latest_ready_revision),
        traffic=tuple(_traffic(t) for t in service.traffic),
        statuses=tuple(_traffic(t) for t in service.traffic_statuses),
        image=image,
        min_instances=min_instances,
        max_instances=max_instances,
        revisions=tuple(parsed),
        manual_scaling=manual,
    )


def _instance_bounds(service: run_v2.Service, scaling_level: str) -> tuple[int, int | None, bool]:
    """The min and max instances of a service, and whether it scales manually.

    In manual scaling mode the service runs exactly ``manual_instance_count``
    instances; its min and max are unset and the revisions' are ignored
    (cloud.google.com/run/docs/configuring/services/manual-scaling), whatever
    ``scaling_level`` says.
    """
    if service.scaling.scaling_mode == _MANUAL:
        count = int(service.scaling.manual_instance_count)
        return count, count, True
    scaling = service.scaling if scaling_level == "service" else service.template.scaling
    # A max of 0 means "not set": Cloud Run then applies its default ceiling.
    return int(scaling.min_instance_count), int(scaling.max_instance_count) or None, False


@dataclass(frozen=True, slots=True)
class Judgement:
    health: Health
    rollout: str
    """in_progress | completed | failed"""
    detail: str
    failed_revision: str | None = None


def judge(view: ServiceView) -> Judgement:
    """Health and rollout state of a parsed service (see the module docstring)."""
    problem = _serving_problem(view)
    if problem is not None:
        return problem
    latest = view.revision(view.latest_created)
    current = view.serving_version()
    if latest is not None and latest.ready == "failed":
        if view.follows_latest():
            return Judgement(
                Health.DEGRADED,
                "failed",
                f"revision {latest.name} failed to become ready ({latest.message}); "
                f"traffic stays on {current}",
                failed_revision=latest.name,
            )
        return Judgement(
            Health.HEALTHY,
            "completed",
            f"serving {current} (pinned); latest revision {latest.name} failed",
            failed_revision=latest.name,
        )
    if view.reconciling or (latest is not None and latest.ready != "succeeded"):
        return Judgement(Health.HEALTHY, "in_progress", f"serving {current}; rolling out")
    if view.terminal is not None and view.terminal.state == "failed":
        message = view.terminal.message or "terminal condition failed"
        return Judgement(Health.DEGRADED, "completed", message)
    return Judgement(Health.HEALTHY, "completed", f"serving {current}")


def _serving_problem(view: ServiceView) -> Judgement | None:
    """UNHEALTHY when nothing serves, or something serving is not ready (a crash loop)."""
    serving = view.serving()
    if not serving:
        return Judgement(Health.UNHEALTHY, "failed", "no revision serves traffic")
    first = view.revision(view.latest_created)
    if not view.latest_ready and first is not None and first.ready in _STARTING:
        # A new service: LATEST resolves to no revision until its first is ready.
        # Nothing was serving before, so nothing is broken yet; the rollout decides.
        return Judgement(
            Health.DEGRADED, "in_progress", f"first revision {first.name} still deploying"
        )
    for entry in serving:
        revision = view.revision(entry.revision)
        if revision is None or revision.ready != "succeeded":
            why = revision.message if revision is not None else "revision not found"
            pending = revision is not None and revision.ready in _STARTING
            return Judgement(
                Health.UNHEALTHY,
                "in_progress" if pending else "completed",
                f"revision {entry.revision} serving {entry.percent}% is not ready: {why}",
            )
    return None


def resource_state(
    ref: ResourceRef, view: ServiceView, *, observed_at: datetime, scaling_level: str
) -> ResourceState:
    """The `ResourceState` of one service (attribute keys: `jarvis.actuators.cloudrun.actuator`)."""
    verdict = judge(view)
    version = view.version()
    serving = view.serving_version()
    serving_revision = view.revision(serving) if serving else None
    # The Admin API reports no live instance count: ``running`` is the floor Cloud Run
    # keeps warm while the serving revision is ready, until Cloud Monitoring's
    # instance_count replaces it (`jarvis.actuators.cloudrun.monitoring`, merged by
    # `jarvis.loop.observe.enrich`).
    running = view.min_instances if verdict.health is not Health.UNHEALTHY else 0
    attributes: dict[str, JSON] = {
        "serving_version": serving,
        "latest_created_revision": view.latest_created,
        "latest_ready_revision": view.latest_ready,
        "failed_revision": verdict.failed_revision,
        "traffic": [t.to_json() for t in view.traffic],
        "traffic_statuses": [t.to_json() for t in view.serving()],
        "traffic_pinned": not view.follows_latest(),
        "terminal_condition": view.terminal.to_json() if view.terminal else None,
        "conditions": [c.to_json() for c in view.conditions],
        "serving_image": serving_revision.image if serving_revision else None,
        "min_instances": view.min_instances,
        "max_instances": view.max_instances,
        "autoscaler": "cloudrun",
        "min_replicas_owner": "service.scaling"
        if scaling_level == "service" or view.manual_scaling
        else "template.scaling",
        "scaling_mode": "manual" if view.manual_scaling else "automatic",
        "reconciling": view.reconciling,
        "generation": view.generation,
        "observed_generation": view.observed_generation,
        "uri": view.uri,
    }
    return ResourceState(
        ref=ref,
        health=verdict.health,
        observed_at=observed_at,
        # The min instances are the count SCALE writes, not a floor: read back as the
        # service's minimum, the first scale-up held for good and Jarvis never scaled
        # down. They stay in the record (``min_instances``); the max still bounds,
        # except in manual mode, where it is that same count.
        replicas=Replicas(
            desired=view.min_instances,
            running=running,
            max=None if view.manual_scaling else view.max_instances,
        ),
        version=version,
        detail=verdict.detail,
        attributes=attributes,
        rollout=Rollout(RolloutState(verdict.rollout)),
        versions=Versions(
            previous=view.previous_version(),
            available=tuple(view.ready_revisions(excluding=version)),
            image=view.image,
        ),
        record_nulls=_NULLS,
    )


def _condition(condition: run_v2.Condition) -> ConditionView:
    reason = ""
    for field in ("reason", "revision_reason", "execution_reason"):
        value = getattr(condition, field)
        if value:
            reason = value.name
            break
    return ConditionView(
        type=condition.type_,
        state=_STATES.get(condition.state, "unspecified"),
        reason=reason,
        message=first_paragraph(condition.message),
    )


def revision_view(revision: run_v2.Revision) -> RevisionView:
    ready = next((c for c in revision.conditions if c.type_ == "Ready"), None)
    containers = list(revision.containers)
    created = revision.create_time if revision.create_time else None
    return RevisionView(
        name=short_name(revision.name),
        ready=_STATES.get(ready.state, "pending") if ready is not None else "pending",
        message=first_paragraph(ready.message) if ready is not None else "",
        image=containers[primary_container(containers)].image if containers else "",
        created=created,
    )


def _traffic(target: run_v2.TrafficTarget | run_v2.TrafficTargetStatus) -> TrafficView:
    return TrafficView(
        latest=target.type_ == _LATEST,
        revision=target.revision,
        percent=int(target.percent),
        tag=target.tag,
    )
