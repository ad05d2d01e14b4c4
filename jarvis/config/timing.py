"""Timeouts that cannot work together: what `jarvis config check` prints and `jarvis run`
logs once at start (`timing_warnings`).

The loop's timeouts enclose the providers': every apply is cut at
``loop.apply_timeout`` (`jarvis.loop.dispatch`), every observe and metric read at
``loop.observe_timeout`` (`jarvis.loop.observe`), and a leader that has not renewed
within ``lease.renew_deadline`` steps down (`jarvis.loop.election`). A provider's own
timeout at or past the one enclosing it never fires first: the outer one cuts the
call, so an operator who raised only the inner key (a slow Cloud Run rollout, a
large cluster) sees every such call fail as timed out.

Such a configuration starts and runs, as it did before these warnings existed, so it
is not refused. What cannot run safely is refused at load instead, by the sections'
validators: ``loop.tick_timeout`` shorter than an observe and an apply, the lease's
``duration > renew_deadline > 1.2 x retry_period``, and a local service's
``start_timeout + stop_timeout`` at or past ``loop.apply_timeout``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from jarvis.config import Settings
    from jarvis.config.kubernetes import KubernetesSettings

__all__ = ["timing_warnings"]

_APPLY = "loop.apply_timeout"
_OBSERVE = "loop.observe_timeout"


class _Nested(NamedTuple):
    """A timeout (``key``) waited inside another (``outer``), and what the outer one cuts."""

    key: str
    value: float
    outer: str
    limit: float
    what: str

    def warning(self) -> str | None:
        if self.value < self.limit:
            return None
        if self.outer == "lease.renew_deadline":
            cut = "one slow renewal makes the leader step down with no time to try again"
        else:
            cut = f"{self.what} still waiting at {self.limit:g} s is cut there"
            if self.outer == _APPLY:
                cut += " and the action counts as timed out"
        return (
            f"{self.key} ({self.value:g} s) is not shorter than {self.outer} "
            f"({self.limit:g} s): {cut}; raise {self.outer} too, or lower {self.key}"
        )


def timing_warnings(settings: Settings) -> list[str]:
    """One line per pair of timeouts where the inner one cannot take effect, naming both."""
    apply = settings.loop.apply_timeout
    nested: list[_Nested] = []
    if settings.cloudrun is not None:
        waited = settings.cloudrun.operation_timeout
        nested.append(_Nested("cloudrun.operation_timeout", waited, _APPLY, apply, "an update"))
    if settings.kubernetes is not None:
        nested.extend(_kubernetes(settings.kubernetes, settings))
    if settings.aws is not None:
        waited = settings.aws.connect_timeout + settings.aws.read_timeout
        key = "aws.connect_timeout + aws.read_timeout"
        nested.append(_Nested(key, waited, _APPLY, apply, "an ECS call"))
    if settings.failover.enabled:
        waited = settings.failover.connect_timeout + settings.failover.read_timeout
        key = "failover.connect_timeout + failover.read_timeout"
        nested.append(_Nested(key, waited, _APPLY, apply, "a Route 53 call"))
    customers = settings.customers
    if customers.enabled and customers.stripe is not None:
        waited = customers.stripe.timeout
        nested.append(_Nested("customers.stripe.timeout", waited, _APPLY, apply, "a Stripe call"))
    if customers.enabled and customers.email is not None:
        waited = customers.email.timeout
        nested.append(_Nested("customers.email.timeout", waited, _APPLY, apply, "a send"))
    observe = settings.loop.observe_timeout
    for name, source in (
        ("prometheus", settings.metrics.prometheus),
        ("cloud_monitoring", settings.metrics.cloud_monitoring),
    ):
        # Equal is harmless here (one query is all a read waits for), and is a default.
        if source is not None and source.timeout_seconds > observe:
            key = f"metrics.{name}.timeout_seconds"
            nested.append(_Nested(key, source.timeout_seconds, _OBSERVE, observe, "a query"))
    return [line for line in (pair.warning() for pair in nested) if line is not None]


def _kubernetes(cluster: KubernetesSettings, settings: Settings) -> list[_Nested]:
    apply = settings.loop.apply_timeout
    request = cluster.request_timeout
    nested = [_Nested("kubernetes.request_timeout", request, _APPLY, apply, "a request")]
    if cluster.verify_seconds > 0:
        watch = cluster.verify_seconds
        nested.append(_Nested("kubernetes.verify_seconds", watch, _APPLY, apply, "a rollout watch"))
    if "observe_timeout" in cluster.model_fields_set:
        # Only when set: the defaults (15 s inside the loop's 10 s) have always been so,
        # and the loop's limit fails the observe as temporary just as this one would.
        observe, own = settings.loop.observe_timeout, cluster.observe_timeout
        nested.append(_Nested("kubernetes.observe_timeout", own, _OBSERVE, observe, "an observe"))
    if settings.lease.backend == "kubernetes":
        # Each renewal is one request, and the elector gives it renew_deadline in all.
        deadline = settings.lease.renew_deadline
        nested.append(
            _Nested("kubernetes.request_timeout", request, "lease.renew_deadline", deadline, "")
        )
    return nested
