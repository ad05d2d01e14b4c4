"""Service metrics from Prometheus: one instant query per metric template per tick.

Built by `jarvis.providers.build_metric_sources` from ``[metrics.prometheus]``
and read by the reconciler beside the observe (`jarvis.loop.observe.enrich`). Each
template selects every configured service at once through ``$services`` (a
regex alternation of their label values) and answers one series per service,
told apart by the service label; so the query count per tick is the number of
templates, however many services there are. An answer that is missing, not a
finite number, or ambiguous (two series for one service) supplies nothing for
that service: Prometheus itself drops a series whose target stopped answering
(staleness markers, then its lookback window), so a stale metric arrives here
as a missing one.

Cloud Monitoring's Prometheus-compatible endpoint speaks the same API:
`jarvis.actuators.cloudrun.monitoring` builds this source under another name,
with an ``authorize`` callable that supplies a fresh OAuth bearer header.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import aiohttp
import anyio

from jarvis.actuators.base import ActuatorError, MetricReading
from jarvis.config.metrics import SERVICES_PLACEHOLDER, PrometheusSettings

#: Supplies the request headers of one tick's queries (a bearer token, say);
#: raises ActuatorError when it cannot, and the tick reads nothing.
Authorize = Callable[[], Awaitable[Mapping[str, str]]]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def services_regex(labels: Collection[str]) -> str:
    """A PromQL regex (inside a double-quoted string) matching exactly these label values."""
    escaped = (
        _CONTROL.sub(
            # A raw line break ends a PromQL string ("unterminated quoted string").
            lambda c: f"\\x{ord(c.group()):02x}",
            re.escape(label).replace("\\", "\\\\").replace('"', '\\"'),
        )
        for label in labels
    )
    return "|".join(sorted(escaped))


class PrometheusSource:
    """Reads the configured metrics of the configured services from one Prometheus server."""

    def __init__(
        self,
        settings: PrometheusSettings,
        *,
        session: aiohttp.ClientSession | None = None,
        name: str = "prometheus",
        authorize: Authorize | None = None,
    ) -> None:
        self._name = name
        self._authorize = authorize
        self._url = str(settings.url).rstrip("/") + "/api/v1/query"
        self._timeout = settings.timeout_seconds
        self._label = settings.service_label
        self._by_label = {label: uri for uri, label in settings.services.items()}
        selector = services_regex(self._by_label)
        self._queries = {
            str(metric): template.replace(SERVICES_PLACEHOLDER, selector)
            for metric, template in settings.queries.items()
        }
        self._session = session

    @property
    def name(self) -> str:
        return self._name

    @property
    def url(self) -> str:
        """Where every query is POSTed."""
        return self._url

    @property
    def services(self) -> Collection[str]:
        return self._by_label.values()

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset(self._queries)

    @property
    def queries(self) -> Mapping[str, str]:
        """Metric name to the PromQL sent each tick, with ``$services`` filled in."""
        return self._queries

    async def read(self) -> MetricReading:
        """Every template at once; raises ActuatorError only when none of them answered."""
        values: dict[str, dict[str, float]] = {uri: {} for uri in self._by_label.values()}
        problems: list[str] = []
        answers: dict[str, list[dict[str, Any]] | str] = {}
        headers = await self._authorize() if self._authorize is not None else {}
        timeout = self._query_timeout()

        async def one(metric: str, query: str) -> None:
            answers[metric] = await self._query(query, headers, timeout)

        async with anyio.create_task_group() as group:
            for metric, query in self._queries.items():
                group.start_soon(one, metric, query)
        for metric in sorted(answers):
            answer = answers[metric]
            if isinstance(answer, str):
                problems.append(f"{metric}: {answer}")
                continue
            problems.extend(self._collect(metric, answer, values))
        if all(isinstance(answer, str) for answer in answers.values()):
            raise ActuatorError(f"{self._name}: " + "; ".join(problems), code="unreachable")
        return MetricReading(values=values, problems=tuple(problems))

    def _collect(
        self, metric: str, series: list[dict[str, Any]], values: dict[str, dict[str, float]]
    ) -> list[str]:
        problems: list[str] = []
        seen: set[str] = set()
        odd = 0
        for item in series:
            labels = item.get("metric") if isinstance(item, dict) else None
            if not isinstance(labels, dict):
                odd += 1  # a proxy's or a broken server's answer: skipped, and said once
                continue
            label = labels.get(self._label)
            uri = self._by_label.get(label) if isinstance(label, str) else None
            if uri is None:
                continue
            if uri in seen:
                values[uri].pop(metric, None)
                problems.append(f"{metric}: several series for {self._label}={label!r}")
                continue
            seen.add(uri)
            number = _number(item.get("value"))
            if number is not None:  # NaN (0/0 on an idle service) is quietly absent
                values[uri][metric] = number
        if odd:
            problems.append(f"{metric}: {odd} answered item(s) not a series object")
        return problems

    def _query_timeout(self) -> float:
        """``timeout_seconds``, cut to end before the caller's deadline (the observe limit).

        Otherwise a query as slow as that limit has the whole read cancelled, and
        the answers of the other queries are lost with it. A tenth of the time
        left is kept for the answers to be read and merged.
        """
        left = anyio.current_effective_deadline() - anyio.current_time()
        return max(min(self._timeout, left * 0.9), 0.001)

    async def _query(
        self, query: str, headers: Mapping[str, str], seconds: float
    ) -> list[dict[str, Any]] | str:
        """The result vector, or a one-line reason there is none."""
        session = self._session_or_new()
        timeout = aiohttp.ClientTimeout(total=seconds)
        try:
            async with session.post(
                self._url, data={"query": query}, headers=headers, timeout=timeout
            ) as reply:
                if reply.status in (401, 403):
                    return _refused(reply.status, await reply.text())
                body = await reply.json(content_type=None)
        except TimeoutError:
            return f"no answer within {seconds:.3g}s"
        except (aiohttp.ClientError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return _vector(body)

    def _session_or_new(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _vector(body: object) -> list[dict[str, Any]] | str:
    """The result vector of a query's JSON answer, or a one-line reason there is none."""
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        return f"query failed: {error or 'unexpected answer'}"
    data = body.get("data") or {}
    if not isinstance(data, dict):
        return "answered no data object"
    if data.get("resultType") != "vector":
        return f"answered a {data.get('resultType')}, not an instant vector"
    result = data.get("result")
    return result if isinstance(result, list) else "answered no result list"


def _refused(status: int, text: str) -> str:
    """One line for a refused credential, with the server's reason when it gave one.

    Google answers ``{"error": {"code", "message", "status"}}``; a Prometheus
    behind a proxy may answer anything, so the text is cut, never parsed blindly.
    """
    reason = text.strip().splitlines()[0][:200] if text.strip() else ""
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        reason = f"{error.get('status', '')} {error.get('message', '')}".strip()[:200]
    return f"credentials refused (HTTP {status}){': ' + reason if reason else ''}"


def _number(value: object) -> float | None:
    # An instant sample is [unix time, "text"]; NaN (0/0, say, an error rate
    # with no requests) and ±Inf are no measurement.
    if not isinstance(value, list) or len(value) != 2:
        return None
    try:
        number = float(value[1])
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
