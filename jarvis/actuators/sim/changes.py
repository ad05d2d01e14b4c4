"""What each action kind does to one simulated service.

Called by `SimulatedFleet.apply` (``jarvis.actuators.sim.fleet``) once it has
found the target `Service`, checked the action kind, the idempotency key and the
injected failure rate. Each function changes the service in place and returns
the `Outcome`; a refusal is a terminal failure that changes nothing.
"""

from __future__ import annotations

from jarvis.actuators.sim.service import MIN_REPLICAS, Service
from jarvis.model import ErrorKind, Outcome, Scale


def scale(service: Service, params: Scale) -> Outcome:
    wanted = params.replicas
    if wanted is None:
        return terminal("scale needs a replica count", "InvalidParameter")
    low = service.min_replicas if params.min_replicas is None else params.min_replicas
    high = service.max_replicas if params.max_replicas is None else params.max_replicas
    if not MIN_REPLICAS <= low <= high:
        return terminal(f"invalid replica bounds {low}..{high}", "InvalidParameter")
    # The guard enforces bounds; a fleet that clamped would hide a guard bug.
    if not low <= wanted <= high:
        return terminal(f"replicas {wanted} outside {low}..{high}", "InvalidParameter")
    before = service.desired
    service.min_replicas, service.max_replicas = low, high
    service.desired = wanted
    service.replicas_seen = None
    if before == wanted:
        return Outcome.success(f"already at {before} replicas")
    return Outcome.success(f"desired replicas {before} -> {wanted}")


def restart(service: Service) -> Outcome:
    if service.broken_detail:
        if service.crash_detail:
            service.crash_detail = service.broken_detail
        return Outcome.failure(service.broken_detail, code="RestartFailed")
    if service.crash_detail:
        service.crash_detail = ""
        service.replicas_seen = None
        return Outcome.success(f"restarted; {service.desired} replicas starting")
    return Outcome.success("rolling restart of a running service")


def rollback(service: Service, target: str) -> Outcome:
    if not target:
        return terminal("rollback needs a version", "InvalidParameter")
    if target == service.version:
        return Outcome.success(f"already at {target}")
    if target not in {version for version, _ in service.versions}:
        return terminal(f"version {target} was never deployed", "VersionNotFound")
    before = service.version
    service.set_version(target)
    if before in service.bad_versions and target not in service.bad_versions:
        # The good version starts cleanly: the bad one's crash loop ends with it.
        service.broken_detail = service.crash_detail = ""
        service.replicas_seen = None
    return Outcome.success(f"rolled back {before} -> {target}")


def deploy(service: Service, image: str) -> Outcome:
    if not image:
        return terminal("deploy needs an image", "InvalidParameter")
    version = f"v{len(service.versions) + 1}"
    service.versions.append((version, image))
    service.set_version(version)
    return Outcome.success(f"deployed {image} as {version}")


def terminal(detail: str, code: str) -> Outcome:
    return Outcome.failure(detail, kind=ErrorKind.TERMINAL, code=code)
