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
``duration > renew_deadline > 1.2 x retry_period``, Kubernetes'
``verify_seconds + verify_poll_seconds`` at or past ``loop.apply_timeout``, and a local service's
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
    """A wait (``key``) inside another (``outer``), and what the outer one cuts (``cut``)."""

    key: str
    value: float
    outer: str
    limit: float
    cut: str

    def warning(self) -> str | None:
        if self.value < self.limit:
            return None
        return (
            f"{self.key} ({self.value:g} s) is not shorter than {self.outer} "
            f"({self.limit:g} s): {self.cut}; raise {self.outer}, or lower {self.key}"
        )


def _applied(key: str, value: float, apply: float, what: str) -> _Nested:
    cut = f"{what} still waiting at {apply:g} s is cut there and the action counts as timed out"
    return _Nested(key, value, _APPLY, apply, cut)


def _observed(key: str, value: float, observe: float, what: str) -> _Nested:
    return _Nested(
        key, value, _OBSERVE, observe, f"{what} still waiting at {observe:g} s is cut there"
    )


def timing_warnings(settings: Settings) -> list[str]:
    """One line per pair of timeouts where the inner one cannot take effect, naming both."""
    apply = settings.loop.apply_timeout
    nested: list[_Nested] = []
    if settings.cloudrun is not None:
        run = settings.cloudrun
        nested.append(
            _applied("cloudrun.operation_timeout", run.operation_timeout, apply, "an update")
        )
        nested.append(_applied("cloudrun.request_timeout", run.request_timeout, apply, "a request"))
    if settings.kubernetes is not None:
        nested.extend(_kubernetes(settings.kubernetes, settings))
    if settings.aws is not None:
        waited = settings.aws.connect_timeout + settings.aws.read_timeout
        key = "aws.connect_timeout + aws.read_timeout"
        nested.append(_applied(key, waited, apply, "an ECS call"))
    if settings.failover.enabled:
        waited = settings.failover.connect_timeout + settings.failover.read_timeout
        key = "failover.connect_timeout + failover.read_timeout"
        nested.append(_applied(key, waited, apply, "a Route 53 call"))
    customers = settings.customers
    if customers.enabled and customers.stripe is not None:
        waited = customers.stripe.timeout
        nested.append(_applied("customers.stripe.timeout", waited, apply, "a Stripe call"))
    if customers.enabled and customers.email is not None:
        waited = customers.email.timeout
        nested.append(_applied("customers.email.timeout", waited, apply, "a send"))
    observe = settings.loop.observe_timeout
    for name, source in (
        ("prometheus", settings.metrics.prometheus),
        ("cloud_monitoring", settings.metrics.cloud_monitoring),
    ):
        # Equal is harmless here (one query is all a read waits for), and is a default.
        if source is not None and source.timeout_seconds > observe:
            key = f"metrics.{name}.timeout_seconds"
            nested.append(_observed(key, source.timeout_seconds, observe, "a query"))
    if settings.notify.enabled:
        nested.append(_stall(settings))
    return [line for line in (pair.warning() for pair in nested) if line is not None]


def _stall(settings: Settings) -> _Nested:
    """The notifier pages ``loop_stalled`` when no tick has finished for ``stall_intervals``
    intervals (`jarvis.notify.service`); a tick may finish as late as the next start
    (jitter included) plus the tick timeout, so a shorter watch pages a loop that is fine."""
    loop = settings.loop
    gap = loop.interval * (1 + loop.jitter) + settings.tick_timeout
    watch = settings.notify.stall_intervals * loop.interval
    return _Nested(
        "loop.interval x (1 + loop.jitter) + the tick timeout",
        gap,
        "notify.stall_intervals x loop.interval",
        watch,
        "a tick that takes its allowed time pages loop_stalled though the loop is fine",
    )


def _kubernetes(cluster: KubernetesSettings, settings: Settings) -> list[_Nested]:
    apply = settings.loop.apply_timeout
    request = cluster.request_timeout
    # verify_seconds past the apply timeout is refused at load (`jarvis.config`): every
    # verified restart and rollback would be cut and charged, not merely slowed.
    nested = [_applied("kubernetes.request_timeout", request, apply, "a request")]
    if "observe_timeout" in cluster.model_fields_set:
        # Only when set: the defaults (15 s inside the loop's 10 s) have always been so,
        # and the loop's limit fails the observe as temporary just as this one would.
        observe, own = settings.loop.observe_timeout, cluster.observe_timeout
        nested.append(_observed("kubernetes.observe_timeout", own, observe, "an observe"))
    if settings.lease.backend == "kubernetes":
        # Each renewal is one request, and the elector gives a round renew_deadline in all.
        cut = "one slow renewal makes the leader step down with no time to try again"
        deadline = settings.lease.renew_deadline
        nested.append(
            _Nested("kubernetes.request_timeout", request, "lease.renew_deadline", deadline, cut)
        )
    return nested
