"""One simulated service's mutable state, and the limits every simulated service shares.

Private to the simulated fleet: `jarvis.actuators.sim.fleet` keeps one `Service`
per name and builds observed states from it, and `jarvis.actuators.sim.changes`
changes it when an action is applied. `SimulatedActuator` takes ``PROVIDER``
from here.
"""

from __future__ import annotations

from jarvis.actuators.sim.traffic import Profile
from jarvis.model import Replicas, ResourceRef, ResourceState, Rollout, RolloutState, Versions

PROVIDER = "sim"
MIN_REPLICAS = 1
MAX_REPLICAS = 20

COMPLETED = Rollout(RolloutState.COMPLETED)
_IN_PROGRESS = Rollout(RolloutState.IN_PROGRESS)


class Service:
    """The mutable state of one simulated service. Private to the fleet."""

    __slots__ = (
        "bad_versions",
        "broken_detail",
        "crash_detail",
        "desired",
        "load",
        "max_replicas",
        "min_replicas",
        "name",
        "previous",
        "profile",
        "ref",
        "replicas_seen",
        "rollout",
        "running",
        "seen",
        "version",
        "versions",
        "versions_facet",
    )

    def __init__(self, name: str, profile: Profile, replicas: int) -> None:
        self.name = name
        self.ref = ResourceRef(PROVIDER, name, "service")
        self.profile = profile
        self.desired = replicas
        self.running = replicas
        self.min_replicas = MIN_REPLICAS
        self.max_replicas = MAX_REPLICAS
        self.versions: list[tuple[str, str]] = [("v1", f"registry.sim.local/{name}:1.0.0")]
        self.version = "v1"
        self.previous: str | None = None
        self.rollout = COMPLETED
        self.crash_detail = ""
        """Non-empty while crashed: the service runs nothing until restarted."""
        self.broken_detail = ""
        """Non-empty when every restart fails with this detail."""
        self.bad_versions: set[str] = set()
        """Versions that crash-loop whenever they run (from `bad_deploy`)."""
        self.load = 1.0
        self.versions_facet = self.facet()
        self.replicas_seen: Replicas | None = None
        """The `Replicas` last reported, reused until a count changes (None: rebuild)."""
        self.seen: ResourceState | None = None
        """The state the fleet last built at its current time (None: rebuild).

        Dropped by the fleet whenever it changes this service or moves its clock.
        """

    def replicas(self) -> Replicas:
        seen = self.replicas_seen
        if seen is None:
            pending = 0 if self.crash_detail else max(0, self.desired - self.running)
            seen = Replicas(
                self.desired, self.running, pending, self.min_replicas, self.max_replicas
            )
            self.replicas_seen = seen
        return seen

    def facet(self) -> Versions:
        # Rebuilt only when the version changes and shared by every state
        # observed until then.
        return Versions(
            previous=self.previous,
            available=tuple(v for v, _ in reversed(self.versions) if v != self.version),
            image=dict(self.versions)[self.version],
        )

    def set_version(self, version: str) -> None:
        self.previous, self.version, self.rollout = self.version, version, _IN_PROGRESS
        self.versions_facet = self.facet()
