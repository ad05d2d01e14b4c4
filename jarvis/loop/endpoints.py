"""The loop's watch over endpoint probes: their metrics, and one alert per broken SLO.

The reconciler (`jarvis.loop.reconciler`) owns one `EndpointWatch` and hands it
every tick's observed resources (`observed`). It sets ``jarvis_endpoint_up``
and ``jarvis_endpoint_latency_seconds`` from each ``endpoint://`` resource,
keeps each endpoint's recent latencies in memory, judges every SLO over its
window (`jarvis.policies.slo`, pure), sets ``jarvis_slo_ok``, and records one
`alert` when an SLO breaks and one (``resolved: true``) when it is met again.
It also folds endpoint health into the snapshot the tick decides on (`fold`).
A failed probe's sample is its endpoint's timeout, not its (often short) latency.

What a restart loses: the samples. After a start an SLO says nothing until
``min_samples`` new probes fill its window. Whether an alert is open is not
lost: `restore` reads it from the last recorded SLO alerts, as the breakers
do, so a breach that outlives a restart is not alerted twice, and one that
ended while Jarvis was down is resolved by the first verdict that it is met.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from jarvis.loop.record import Recorder
from jarvis.model import Event, EventKind, Metric, ResourceState, Snapshot
from jarvis.policies.slo import Judgement, Objective, alert_change, judge, with_endpoint_health
from jarvis.telemetry.metrics import Metrics

CAUSE = "slo:"
"""Prefix of the ``cause`` of an SLO alert; the notifier groups by cause."""


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """What the watch needs from the settings (built by `jarvis.app`)."""

    objectives: tuple[Objective, ...] = ()
    labels: Mapping[str, tuple[str, str, str]] = field(default_factory=dict)
    """Endpoint URI to its (name, region, cloud) metric labels."""
    serves: Mapping[str, str] = field(default_factory=dict)
    """Endpoint URI to the resource behind it (``serves`` in the settings)."""
    timeouts_ms: Mapping[str, float] = field(default_factory=dict)
    """Endpoint URI to its probe timeout in ms: what a failed probe counts as in an SLO."""


class EndpointWatch:
    """Endpoint metrics, recent latencies and SLO alert state, as the loop holds them."""

    def __init__(self, config: EndpointConfig, *, recorder: Recorder, metrics: Metrics) -> None:
        self._objectives = config.objectives
        self._labels = dict(config.labels)
        self._serves = dict(config.serves)
        self._timeouts_ms = dict(config.timeouts_ms)
        self._recorder = recorder
        self._metrics = metrics
        self._samples: dict[str, deque[tuple[datetime, float]]] = {}
        self._open: dict[str, bool] = {}
        self._horizon = max((o.window for o in self._objectives), default=None)

    def restore(self, alerts: Iterable[Event]) -> None:
        """Take each SLO's open alert from its last recorded alert (oldest first)."""
        for event in alerts:
            cause = event.payload.get("cause")
            if isinstance(cause, str) and cause.startswith(CAUSE):
                self._open[cause.removeprefix(CAUSE)] = event.payload.get("resolved") is not True

    def observed(self, tick_id: str, now: datetime, resources: Mapping[str, ResourceState]) -> None:
        """One tick's observation: metrics per endpoint, then a verdict per SLO."""
        if not self._labels:
            return
        for uri, (name, region, cloud) in self._labels.items():
            state = resources.get(uri)
            if state is None:
                # Not probed here this tick (its shard is another replica's, or the
                # probes failed): no reading, rather than the last one kept forever.
                self._metrics.endpoint_up.remove(name, region, cloud)
                continue
            latency = state.metrics.get(Metric.LATENCY_MS)
            up = state.attributes.get("failures") == 0
            self._metrics.endpoint_up.labels(endpoint=name, region=region, cloud=cloud).set(
                1 if up else 0
            )
            if latency is None:
                continue
            self._metrics.endpoint_latency.labels(
                endpoint=name, region=region, cloud=cloud
            ).observe(latency / 1000.0)
            if self._horizon is not None:
                # A failed probe (a 503, a refused connection) often comes back
                # fast; counted as its latency it would meet the SLO, and
                # resolve a breach, while the endpoint is down. It counts as
                # a timeout, as a probe that timed out does.
                sample = latency if up else max(latency, self._timeouts_ms.get(uri, latency))
                kept = self._samples.setdefault(uri, deque())
                kept.append((now, sample))
                while kept and kept[0][0] <= now - self._horizon:
                    kept.popleft()
        for objective in self._objectives:
            self._judge(tick_id, now, objective)

    def fold(self, snapshot: Snapshot) -> Snapshot:
        """The snapshot policies and the guard see: a served resource is unhealthy while
        its endpoint is (`with_endpoint_health`).

        Folded once, here, rather than in each policy, so heal, rollback and the
        retry budget's "still broken" judge a service by the same health: restarts
        that leave its endpoint failing escalate like any other failed fix.
        """
        return with_endpoint_health(snapshot, self._serves) if self._serves else snapshot

    def _judge(self, tick_id: str, now: datetime, objective: Objective) -> None:
        pooled = [s for uri in sorted(objective.endpoints) for s in self._samples.get(uri, ())]
        verdict = judge(objective, pooled, now)
        if verdict.ok is None:
            # Too few probes in the window (none arrive: the endpoints went to
            # another shard, or the probes fail to run): no verdict, rather than
            # the last one kept forever, as ``jarvis_endpoint_up`` does.
            self._metrics.slo_ok.remove(objective.name)
        else:
            self._metrics.slo_ok.labels(slo=objective.name).set(1 if verdict.ok else 0)
        change = alert_change(self._open.get(objective.name, False), verdict)
        if change is None:
            return
        self._open[objective.name] = change
        worst = self._worst(objective, now)
        self._recorder.record(slo_alert(tick_id, now, objective, verdict, worst, firing=change))

    def _worst(self, objective: Objective, now: datetime) -> str:
        """The endpoint with the highest p95 in the window, for the alert's words."""
        best: tuple[float, str] | None = None
        for uri in sorted(objective.endpoints):
            alone = Objective(uri, frozenset(), objective.p95_ms, objective.window, 1)
            verdict = judge(alone, self._samples.get(uri, ()), now)
            if verdict.p95_ms is not None and (best is None or verdict.p95_ms > best[0]):
                best = (verdict.p95_ms, uri)
        return "" if best is None else f"{best[1]} p95 {best[0]:.0f} ms"


def slo_alert(
    tick_id: str,
    now: datetime,
    objective: Objective,
    verdict: Judgement,
    worst: str,
    *,
    firing: bool,
) -> Event:
    """One `alert` when an SLO breaks and one, resolving it, when it is met again."""
    state = "broken" if firing else "met"
    window = f"{objective.window.total_seconds():g} s"
    measured = f"p95 {verdict.p95_ms:.0f} ms over the last {window} ({verdict.samples} probes)"
    if firing:
        reason = f"SLO {objective.name} broken: {measured}, above {objective.p95_ms:g} ms"
        reason += f"; slowest {worst}" if worst else ""
    else:
        reason = f"SLO {objective.name} met again: {measured}, within {objective.p95_ms:g} ms"
    return Event(
        kind=EventKind.ALERT,
        ts=now,
        idempotency_key=f"{tick_id}:alert:slo:{objective.name}:{state}",
        tick_id=tick_id,
        policy="slo",
        reason=reason,
        payload={
            # What the notifier reads (`jarvis.notify.alerts`): one incident per
            # SLO, resolved by the alert that says it is met again.
            "cause": f"{CAUSE}{objective.name}",
            "severity": objective.severity,
            "resolved": not firing,
            "provider": "endpoint",
            "slo": objective.name,
            "p95_ms": round(verdict.p95_ms or 0.0, 3),
            "objective_ms": objective.p95_ms,
            "window_seconds": objective.window.total_seconds(),
            "samples": verdict.samples,
            "endpoints": sorted(objective.endpoints),
        },
    )
