"""The simulated cloud: a deterministic fleet of services that crash, scale and roll out.

`SimulatedActuator` (``jarvis.actuators.sim.actuator``) wraps it for the
reconcile loop; the simulation harness (`jarvis.simulation`) drives its fault
hooks (`crash`, `break_permanently`, `bad_deploy`, `set_api_failing`, `surge`)
and its operator's `repair` directly. It is plain and
synchronous: time comes only from the ``now`` passed in, randomness only from
``random.Random(seed)``, so the same seed and the same calls give the same states.
Each service's mutable state is a `Service` (``jarvis.actuators.sim.service``);
what an applied action does to it lives in ``jarvis.actuators.sim.changes``.

Observed states carry the metrics ``requests_per_minute``, ``cpu_utilization``
(percent), ``p95_latency_ms`` and ``error_rate`` (0..1), and these facets:

- ``rollout``: in progress from a deploy or rollback until the next
  observation, then completed.
- ``versions``: ``image`` (the image the current version runs), ``previous``
  (the version that ran before the current one; None until the first deploy
  or rollback) and ``available`` (every other version ever deployed, newest
  first, i.e. what a rollback may target).

One facet of each kind is shared by a service's states until it changes (that
keeps a 10,000-service observation cheap); facets are frozen, so sharing is safe.

With ``script=True`` the fleet plays the newcomer's show, counted in successful
observations: on the 2nd, ``ai-dawg-vocal-coach`` crashes (a restart heals it);
on the 3rd, ``ai-dawg-ai-brain`` crashes and every restart of it fails.
"""

from __future__ import annotations

import random
from datetime import datetime

from jarvis.actuators.base import ActuatorError, Scope
from jarvis.actuators.sim.changes import deploy, restart, rollback, scale, terminal
from jarvis.actuators.sim.service import COMPLETED, PROVIDER, Service
from jarvis.actuators.sim.traffic import DEGRADED_CPU, Profile, day_factor
from jarvis.model import (
    Action,
    Deploy,
    ErrorKind,
    Health,
    Metric,
    Outcome,
    ResourceState,
    Restart,
    Rollback,
    Scale,
)
from jarvis.model.slots import slot_factory

DEFAULT_SERVICE_NAMES = (
    "jarvis-control-plane",
    "ai-dawg-producer",
    "ai-dawg-vocal-coach",
    "ai-dawg-ai-brain",
    "customer-api",
    "billing-worker",
)
CRASH_DETAIL = "CrashLoopBackOff: exit code 137"
BROKEN_DETAIL = "ImagePullBackOff: image registry unreachable"
BAD_VERSION_DETAIL = "CrashLoopBackOff: {version} fails its readiness probe"

# The newcomer's show, keyed by observation number: a crash that a restart
# heals, then a service whose restarts keep failing until the retry budget
# escalates and quarantines it.
_SCRIPT: dict[int, tuple[str, bool]] = {
    2: ("ai-dawg-vocal-coach", False),
    3: ("ai-dawg-ai-brain", True),
}
_CPU = Metric.CPU_UTILIZATION
"""Hoisted: an enum member read from its class costs ten times a module global."""
_new_state = slot_factory(ResourceState)
"""`ResourceState` without the class call: the fleet builds one per service per tick."""


def service_names(count: int) -> list[str]:
    """The six seed-system names, then ``svc-00007`` onwards."""
    named = list(DEFAULT_SERVICE_NAMES[:count])
    return named + [f"svc-{index:05d}" for index in range(len(named) + 1, count + 1)]


class SimulatedFleet:
    """A deterministic simulated cloud of ``services`` services, starting at ``start``."""

    def __init__(
        self,
        *,
        seed: int,
        services: int = 6,
        script: bool = True,
        fail_rate: float = 0.0,
        start: datetime,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if services < 1:
            raise ValueError(f"a fleet needs at least one service, not {services}")
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be within 0..1, not {fail_rate}")
        rng = random.Random(seed)  # noqa: S311 -- a reproducible simulation, not cryptography
        # Apply failures draw from their own stream, so how often the fleet is
        # observed does not change which applies fail.
        self._apply_rng = random.Random(rng.getrandbits(64))  # noqa: S311 -- as above
        self._services: list[Service] = []
        for name in service_names(services):
            replicas = rng.randint(2, 6)
            self._services.append(Service(name, Profile.draw(rng, replicas), replicas))
        self._by_uri = {str(service.ref): service for service in self._services}
        self._script = script
        self._fail_rate = fail_rate
        self._api_failing = False
        self._now = start
        self._observations = 0
        self._deleted: set[str] = set()
        """URIs of the services `delete` removed: gone, where any other unknown URI is a
        request for something that never was."""
        self._applied_keys: dict[str, str] = {}
        """Each service's last key whose change took effect, as a provider's tag keeps it."""
        self._states: list[ResourceState] | None = None
        """`states()` as last built; None once anything changed since (see `states`)."""
        self._factors: tuple[float, float] | None = None
        """`day_factor` and epoch seconds of ``now`` once a state needed them (None: not yet)."""

    @property
    def now(self) -> datetime:
        """The fleet's current time: ``start``, then the latest `advance`."""
        return self._now

    @property
    def observations(self) -> int:
        """How many observations succeeded; the script is counted in these."""
        return self._observations

    @property
    def names(self) -> list[str]:
        return [service.name for service in self._services]

    # -- reading ----------------------------------------------------------------

    def observe(self, now: datetime, scope: Scope | None = None) -> list[ResourceState]:
        """One observation: play the script, move to ``now``, return every state (in ``scope``).

        Raises ActuatorError (temporary) while the API is failing; a failed
        observation is not counted, so the script waits for a successful one.
        """
        if self._api_failing:
            raise ActuatorError("simulated provider API unavailable", code="ServiceUnavailable")
        self._observations += 1
        if self._script and self._observations in _SCRIPT:
            name, broken = _SCRIPT[self._observations]
            if self._lookup(name) is not None:
                self.crash(name, detail=BROKEN_DETAIL if broken else CRASH_DETAIL)
                if broken:
                    self.break_permanently(name)
        self.advance(now)
        if scope is None:
            return self.states()
        # Only the owned services' states are built, as a provider describes only those.
        return [self._seen(s) for s in self._services if scope.keeps(s.ref)]

    def advance(self, now: datetime) -> None:
        """Move to ``now``: running replicas catch up with desired, rollouts complete."""
        self._now = now
        self._states = None
        self._factors = None
        for service in self._services:
            if service.running != service.desired and not service.crash_detail:
                service.running = service.desired
                service.replicas_seen = None
            service.rollout = COMPLETED
            service.seen = None

    def states(self) -> list[ResourceState]:
        """Every service as it looks at the fleet's current time, without advancing.

        Built once per change: the simulation reads the fleet twice per tick
        at the same instant (the observe, then the invariant checker's ground
        truth), and when nothing was applied in between the answer is the same.
        Building it was a fifth of a simulated tick. Every change goes through
        `advance` (every service), `apply` or `_require` (one service), which
        drop the cached list and the changed services' `Service.seen`; a
        service nothing touched keeps its state, so a tick that applied one
        action rebuilds one state, not fifty.
        """
        if self._states is None:
            now = self._now
            day, epoch = self._day_and_epoch()
            states = []
            # `_seen` written out: this loop runs for every service every tick.
            for service in self._services:
                state = service.seen
                if state is None:
                    state = service.seen = self._state(service, now, day, epoch)
                states.append(state)
            self._states = states
        return list(self._states)

    def state(self, name: str) -> ResourceState:
        """One service as it looks now; KeyError if there is no such service."""
        service = self._lookup(name)
        if service is None:
            raise KeyError(f"no such service: {name}")
        return self._seen(service)

    def _seen(self, service: Service) -> ResourceState:
        """``service`` as it looks now: its `Service.seen`, built if a change dropped it."""
        state = service.seen
        if state is None:
            day, epoch = self._day_and_epoch()
            state = service.seen = self._state(service, self._now, day, epoch)
        return state

    def _day_and_epoch(self) -> tuple[float, float]:
        """`day_factor` and epoch seconds of the fleet's time, worked out once per `advance`."""
        if self._factors is None:
            now = self._now
            self._factors = (day_factor(now), now.timestamp())
        return self._factors

    @staticmethod
    def _state(service: Service, now: datetime, day: float, epoch: float) -> ResourceState:
        running = service.running
        metrics = service.profile.metrics(epoch, day, service.load, running)
        if service.crash_detail:
            health, detail = Health.UNHEALTHY, service.crash_detail
        elif running == 0:
            health, detail = Health.DEGRADED, f"starting: 0 of {service.desired} replicas running"
        elif metrics[_CPU] > DEGRADED_CPU:
            health = Health.DEGRADED
            detail = f"overloaded: cpu above {DEGRADED_CPU:g}% on {running} replicas"
        else:
            health, detail = Health.HEALTHY, ""
        # Positional, in the field order of `ResourceState`: this runs for every
        # service every tick, and matching nine keywords against a 17-field
        # dataclass's signature cost a sixth of building the state. ``{}`` is
        # the ``attributes`` default; mypy checks each argument's type.
        return _new_state(
            service.ref,
            health,
            now,
            service.replicas_seen or service.replicas(),  # the call only to rebuild it
            service.version,
            detail,
            metrics,
            {},
            service.rollout,
            service.versions_facet,
        )

    # -- fault hooks for the simulation harness ---------------------------------

    def crash(self, name: str, *, detail: str = CRASH_DETAIL) -> None:
        """The service goes UNHEALTHY, running nothing, until a restart succeeds."""
        service = self._require(name)
        service.crash_detail = detail
        service.running = 0
        service.replicas_seen = None

    def delete(self, name: str) -> None:
        """Someone outside Jarvis deletes the service: observed no more, and an action on
        it fails as gone (`ErrorKind.GONE`)."""
        service = self._require(name)
        self._services.remove(service)
        del self._by_uri[str(service.ref)]
        self._deleted.add(str(service.ref))

    def break_permanently(self, name: str, *, detail: str = BROKEN_DETAIL) -> None:
        """Every later restart of the service fails with a temporary error."""
        self._require(name).broken_detail = detail

    def bad_deploy(self, name: str, image: str | None = None) -> str:
        """Someone outside Jarvis deploys a version that crash-loops; returns the version.

        Restarts fail while it runs; a rollback to a good version mends it.
        """
        service = self._require(name)
        version = f"v{len(service.versions) + 1}"
        service.versions.append((version, image or f"registry.sim.local/{name}:{version}-bad"))
        service.set_version(version)
        service.bad_versions.add(version)
        detail = BAD_VERSION_DETAIL.format(version=version)
        self.crash(name, detail=detail)
        self.break_permanently(name, detail=detail)
        return version

    def repair(self, name: str) -> None:
        """An operator mends the cause: broken restarts work again, a bad version is rolled back.

        A crashed service stays crashed: the restart is still Jarvis's to make.
        """
        service = self._require(name)
        service.broken_detail = ""
        if service.version in service.bad_versions:
            good = [v for v, _ in reversed(service.versions) if v not in service.bad_versions]
            service.set_version(good[0])
            service.crash_detail = ""
            service.replicas_seen = None

    def set_api_failing(self, failing: bool) -> None:
        """While failing, observe raises ActuatorError and every apply fails (temporary)."""
        self._api_failing = failing

    def surge(self, name: str, factor: float) -> None:
        """Multiply the service's traffic by ``factor`` (1.0 is normal) from now on."""
        if factor < 0:
            raise ValueError(f"a traffic factor cannot be negative: {factor}")
        self._require(name).load = factor

    def _lookup(self, name: str) -> Service | None:
        return self._by_uri.get(f"{PROVIDER}://{name}")

    def _require(self, name: str) -> Service:
        """The service, for a change: its cached state and `states()` are dropped."""
        self._states = None
        service = self._lookup(name)
        if service is None:
            raise KeyError(f"no such service: {name}")
        service.seen = None
        return service

    # -- applying ---------------------------------------------------------------

    def _missing(self, uri: str) -> Outcome:
        """An action on no service: gone if `delete` removed it, else one that never was."""
        if uri in self._deleted:
            return Outcome.failure(
                f"service {uri} was deleted", kind=ErrorKind.GONE, code="NotFound"
            )
        return terminal(f"no such service: {uri}", "NotFound")

    def applied(self, key: str) -> bool:
        """Whether ``key`` is the last idempotency key a service's change took effect with."""
        return key in self._applied_keys.values()

    def apply(self, action: Action, key: str | None = None) -> Outcome:
        """Apply one action; provider-ish problems come back as failure outcomes.

        An apply whose ``key`` was the service's last to take effect succeeds
        without a change, as a provider reading the key from the tag or
        annotation it wrote would answer; an older key is not remembered.
        """
        if self._api_failing:
            return Outcome.failure("simulated provider API unavailable", code="ServiceUnavailable")
        self._states = None
        uri = str(action.target)
        service = self._by_uri.get(uri)
        if service is None:
            return self._missing(uri)
        service.seen = None  # the changes below touch this service only
        params = action.params
        if not isinstance(params, Scale | Restart | Rollback | Deploy):
            return terminal(f"the simulated fleet cannot {action.kind}", "Unsupported")
        if key is not None and self._applied_keys.get(uri) == key:
            return Outcome.success(f"already applied (key {key})")
        if self._fail_rate and self._apply_rng.random() < self._fail_rate:
            return Outcome.failure(
                f"injected failure (fail_rate={self._fail_rate:g})", code="InjectedFailure"
            )
        match params:
            case Scale():
                outcome = scale(service, params)
            case Restart():
                outcome = restart(service)
            case Rollback(version=version):
                outcome = rollback(service, version)
            case Deploy(image=image):
                outcome = deploy(service, image)
        if outcome.ok and key is not None:
            self._applied_keys[uri] = key
        return outcome
