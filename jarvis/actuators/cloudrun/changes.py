"""What each action changes on a Cloud Run service: a new `run_v2.Service` and its update mask.

`jarvis.actuators.cloudrun.actuator` reads the service, calls `plan_change`, and sends the
result as one ``UpdateService`` (PATCH with ``updateMask``). Pure: no I/O, the
time comes in as ``now``. The whole service as read is sent back, with its
``etag`` for optimistic concurrency, and the mask names exactly the fields that
change. A change to the template clears ``template.revision`` so that Cloud Run
names the new revision instead of colliding with an explicit name.

Every change also writes the action's idempotency key as the Service
annotation ``jarvis.io/action-key`` (mask path ``annotations``, the map as
read plus the key); a service that already carries the key needs no change,
so a replay, or the re-read after a conflict, does not change it twice.

Recovery asks `confirmation` whether an orphaned intent's change was applied.
The key annotation alone proves the update was accepted: it is written in the
same UpdateService as the change, and Cloud Run keeps the written spec even when
the rollout fails (only the serving status stays behind). For every kind that is
"made" (a RESTART re-sent would create a second revision), but it is not what
this provider calls applied: the actuator awaits the update's operation, and an
accepted update still running is TIMED_OUT (unknown), one whose operation failed
(the new revision never became ready) a temporary failure. So the key confirms
a change only once the service has finished reconciling it: not reconciling, its
``observed_generation`` at its ``generation`` and its terminal condition
succeeded, which is the state in which that operation has ended in success (or a
later update that kept the annotation, an operator's, has: the key's change was
made, and what serves is past it). An
accepted update still rolling out, or one that failed, stays unknown, as a
process that had lived would not have called it applied either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from google.cloud import run_v2

from jarvis.actuators.base import ActuatorError
from jarvis.actuators.cloudrun.state import ServiceView, primary_container, short_name
from jarvis.model import Action, Deploy, ErrorKind, Restart, Rollback, Scale

_LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
_REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
ACTION_KEY = "jarvis.io/action-key"
_INT32_MAX = 2**31 - 1  # instance counts are int32 fields; proto refuses larger values


@dataclass(frozen=True, slots=True)
class Change:
    """One update to send: the full desired service and the (snake_case) mask paths."""

    service: run_v2.Service
    paths: tuple[str, ...]
    summary: str


@dataclass(frozen=True, slots=True)
class NoChange:
    """The service already is as the action asks: nothing to send."""

    detail: str


def plan_change(
    action: Action,
    service: run_v2.Service,
    view: ServiceView,
    *,
    scaling_level: str,
    annotation: str,
    now: datetime,
    key: str,
) -> Change | NoChange | ActuatorError:
    """The update ``action`` (idempotency key ``key``) needs, none, or why it cannot be done."""
    if service.annotations.get(ACTION_KEY) == key:
        return NoChange(f"{view.name}: already applied (key {key})")
    desired = run_v2.Service.deserialize(run_v2.Service.serialize(service))
    planned: Change | NoChange | ActuatorError
    match action.params:
        case Scale() as params:
            planned = _scale(params, desired, view, scaling_level)
        case Rollback(version=version):
            planned = _rollback(version, desired, view)
        case Restart():
            planned = _restart(desired, view, annotation, now)
        case Deploy(image=image):
            planned = _deploy(image, desired, view)
        case _:
            return _refuse(f"cloudrun cannot {action.kind}", "UNSUPPORTED")
    if not isinstance(planned, Change):
        return planned
    planned.service.annotations[ACTION_KEY] = key
    return Change(planned.service, (*planned.paths, "annotations"), planned.summary)


def confirmation(service: run_v2.Service, key: str) -> str | None:
    """What proves the change with ``key`` was applied to ``service`` as read, or None.

    The service carries the key and its update has finished reconciling in success
    (see the module docstring): accepted alone, the rollout may still fail.
    """
    if service.annotations.get(ACTION_KEY) != key:
        return None
    succeeded = service.terminal_condition.state == run_v2.Condition.State.CONDITION_SUCCEEDED
    generation = service.generation
    if service.reconciling or service.observed_generation != generation or not succeeded:
        return None
    return (
        f"service {short_name(service.name)} carries {ACTION_KEY}={key}, "
        f"and its generation {generation} is ready"
    )


def _refuse(message: str, code: str) -> ActuatorError:
    return ActuatorError(f"cloudrun: {message}", kind=ErrorKind.TERMINAL, code=code)


def _scale(
    params: Scale, desired: run_v2.Service, view: ServiceView, level: str
) -> Change | NoChange | ActuatorError:
    if view.manual_scaling:
        return _scale_manual(params, desired, view)
    new_min = params.min_replicas if params.min_replicas is not None else params.replicas
    new_max = params.max_replicas
    invalid = _invalid_bounds(new_min, new_max, view)
    if invalid is not None:
        return invalid
    target_min = view.min_instances if new_min is None else new_min
    target_max = view.max_instances if new_max is None else new_max
    if (target_min, target_max) == (view.min_instances, view.max_instances):
        return NoChange(f"already at min {target_min}, max {target_max}")
    if level == "revision" and not view.follows_latest():
        return _pinned(view, "a revision-level scale")
    scaling = desired.scaling if level == "service" else desired.template.scaling
    prefix = "scaling" if level == "service" else "template.scaling"
    paths = []
    if new_min is not None:
        scaling.min_instance_count = new_min
        paths.append(f"{prefix}.min_instance_count")
    if new_max is not None:
        scaling.max_instance_count = new_max
        paths.append(f"{prefix}.max_instance_count")
    if level == "revision":
        desired.template.revision = ""
        paths.append("template.revision")
    return Change(
        desired,
        tuple(paths),
        f"scaled {view.name} instances min {view.min_instances}->{target_min}, "
        f"max {view.max_instances}->{target_max}",
    )


def _invalid_bounds(
    new_min: int | None, new_max: int | None, view: ServiceView
) -> ActuatorError | None:
    """Why the requested min/max instance counts cannot be sent, or None."""
    if new_min is None and new_max is None:
        return _refuse("SCALE needs replicas, min_replicas or max_replicas", "INVALID_ACTION")
    if (new_min is not None and not 0 <= new_min <= _INT32_MAX) or (
        new_max is not None and not 1 <= new_max <= _INT32_MAX
    ):
        return _refuse(f"invalid instance counts min={new_min} max={new_max}", "INVALID_ACTION")
    target_min = view.min_instances if new_min is None else new_min
    target_max = view.max_instances if new_max is None else new_max
    if target_max is not None and target_min > target_max:
        return _refuse(
            f"min instances {target_min} exceed max instances {target_max}", "INVALID_ACTION"
        )
    return None


def _scale_manual(
    params: Scale, desired: run_v2.Service, view: ServiceView
) -> Change | NoChange | ActuatorError:
    """SCALE of a manually scaled service: its instance count, ``replicas`` (else
    ``min_replicas``). Min and max instances are ignored in manual mode, so a SCALE
    that only sets a maximum cannot be done."""
    count = params.replicas if params.replicas is not None else params.min_replicas
    if count is None:
        return _refuse(
            f"{view.name} scales manually (no maximum): SCALE needs replicas or min_replicas",
            "INVALID_ACTION",
        )
    if not 0 <= count <= _INT32_MAX:
        return _refuse(f"invalid instance count {count}", "INVALID_ACTION")
    if count == view.min_instances:
        return NoChange(f"already at {count} instances (manual scaling)")
    desired.scaling.manual_instance_count = count
    return Change(
        desired,
        ("scaling.manual_instance_count",),
        f"scaled {view.name} instances {view.min_instances}->{count} (manual scaling)",
    )


def _rollback(
    version: str, desired: run_v2.Service, view: ServiceView
) -> Change | NoChange | ActuatorError:
    current = view.serving_version()
    target = short_name(version) if version else view.previous_version()
    if target is None:
        return _refuse(
            f"{view.name} has no earlier ready revision to roll back to", "NO_PREVIOUS_REVISION"
        )
    revision = view.revision(target)
    if revision is None:
        return _refuse(f"revision {target} of {view.name} does not exist", "NOT_FOUND")
    if revision.ready != "succeeded":
        return _refuse(f"revision {target} is not ready ({revision.message})", "REVISION_NOT_READY")
    latest_share = sum(t.percent for t in view.traffic if t.latest)
    if 0 < latest_share < 100:
        # A split (a stable revision pinned beside LATEST): only LATEST's share was
        # following the revision being rolled back; the pinned shares stay put rather
        # than all moving to ``target``, typically the canary.
        desired.traffic = _latest_share_to(target, view)
        return Change(
            desired,
            ("traffic",),
            f"rolled {view.name}'s LATEST share ({latest_share}%) back to {target}; "
            "pinned shares unchanged",
        )
    pinned = [t for t in view.traffic if t.percent > 0]
    if len(pinned) == 1 and not pinned[0].latest and pinned[0].revision == target:
        return NoChange(f"100% of traffic already on {target}")
    desired.traffic = _traffic_to(
        run_v2.TrafficTarget(type_=_REVISION, revision=target, percent=100), view
    )
    return Change(desired, ("traffic",), f"rolled {view.name} back from {current} to {target}")


def _restart(
    desired: run_v2.Service, view: ServiceView, annotation: str, now: datetime
) -> Change | ActuatorError:
    if not view.follows_latest():
        return _pinned(view, "a restart")
    broken = _pinned_not_ready(view)
    if broken:
        # The new revision only takes LATEST's share; the pinned one keeps its share
        # and keeps failing, so the restart would "succeed" and heal nothing.
        return _refuse(
            f"{', '.join(broken)} of {view.name} carries traffic pinned to it and is not "
            "ready; a restart only replaces the revision LATEST serves",
            "PINNED_NOT_READY",
        )
    value = now.isoformat()
    if desired.template.annotations.get(annotation) == value:
        value = f"{value}#{view.generation}"  # same instant twice (virtual clocks): still new
    desired.template.annotations[annotation] = value
    desired.template.revision = ""
    return Change(
        desired,
        ("template.annotations", "template.revision"),
        f"restarted {view.name} with a new revision of its template",
    )


def _pinned(view: ServiceView, what: str) -> ActuatorError:
    """Refuse a change that makes a new revision while traffic is pinned: the new
    revision, built from the template (not what the pinned revision runs), would get
    no traffic, and the serving revision would stay as it is."""
    return _refuse(
        f"traffic of {view.name} is pinned to {view.serving_version()}; {what} would deploy "
        "the template as a revision that serves nothing",
        "TRAFFIC_PINNED",
    )


def _pinned_not_ready(view: ServiceView) -> list[str]:
    """Revisions carrying traffic by name (not through LATEST) that are not ready."""
    out = []
    for entry in view.serving():
        revision = view.revision(entry.revision)
        if not entry.latest and (revision is None or revision.ready != "succeeded"):
            out.append(f"revision {entry.revision} ({entry.percent}%)")
    return out


def _deploy(
    image: str, desired: run_v2.Service, view: ServiceView
) -> Change | NoChange | ActuatorError:
    if not image:
        return _refuse("DEPLOY needs an image", "INVALID_ACTION")
    containers = desired.template.containers
    if not containers:
        return _refuse(f"{view.name} has no container to deploy into", "INVALID_ACTION")
    only_latest = [(t.latest, t.percent) for t in view.traffic if t.percent > 0] == [(True, 100)]
    if view.image == image and only_latest:
        return NoChange(f"{view.name} already runs {image}")
    containers[primary_container(containers)].image = image
    desired.template.revision = ""
    desired.traffic = _traffic_to(run_v2.TrafficTarget(type_=_LATEST, percent=100), view)
    return Change(
        desired,
        ("template.containers", "template.revision", "traffic"),
        f"deployed {image} to {view.name} (was {view.image})",
    )


def _latest_share_to(target: str, view: ServiceView) -> list[run_v2.TrafficTarget]:
    """The declared traffic with every LATEST share pinned to ``target`` (added to an
    untagged share ``target`` already has); every other target, share and tag stays, and
    a tag on a LATEST share stays on a 0% LATEST target so its URL keeps working."""
    out: list[run_v2.TrafficTarget] = []
    moved = 0
    for entry in view.traffic:
        if entry.latest and entry.percent > 0:
            moved += entry.percent
            if entry.tag:
                out.append(run_v2.TrafficTarget(type_=_LATEST, tag=entry.tag))
            continue
        out.append(
            run_v2.TrafficTarget(
                type_=_LATEST if entry.latest else _REVISION,
                revision=entry.revision,
                percent=entry.percent,
                tag=entry.tag,
            )
        )
    for existing in out:
        if existing.type_ == _REVISION and existing.revision == target and not existing.tag:
            existing.percent += moved
            return out
    return [run_v2.TrafficTarget(type_=_REVISION, revision=target, percent=moved), *out]


def _traffic_to(main: run_v2.TrafficTarget, view: ServiceView) -> list[run_v2.TrafficTarget]:
    """All traffic to ``main``; other tagged targets stay, at 0%, so tag URLs keep working.

    ``main`` takes the first tag of its own revision; a second tag of that revision
    (``--set-tags=stable=R,v1=R`` makes two targets) stays a 0% target of its own,
    since a target carries one tag.
    """
    out = [main]
    for entry in view.traffic:
        if not entry.tag:
            continue
        same = entry.latest == (main.type_ == _LATEST) and (
            entry.latest or entry.revision == main.revision
        )
        if same and not main.tag:
            main.tag = entry.tag
            continue
        out.append(
            run_v2.TrafficTarget(
                type_=_LATEST if entry.latest else _REVISION, revision=entry.revision, tag=entry.tag
            )
        )
    return out
