"""CloudWatch metrics for ECS services, read in batches of up to 500 queries a call.

Called by `jarvis.actuators.aws.ecs.EcsActuator.observe` once per tick with every
managed service. Per service it asks for CPU and memory utilization
(``AWS/ECS``) and, for services behind an Application Load Balancer target
group, request count, target response time and 5xx count
(``AWS/ApplicationELB``). ALB metrics need the load balancer's dimension too,
which a target group ARN does not carry: `MetricsReader` learns it from
``list_metrics`` and refreshes that map at most every ``discovery_seconds``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import anyio

from jarvis.actuators.aws.clients import aws_call
from jarvis.actuators.aws.services import Service
from jarvis.model import Metric

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDataQueryTypeDef

MAX_QUERIES = 500  # the GetMetricData limit per request


@dataclass(frozen=True, slots=True)
class _Query:
    id: str
    uri: str
    key: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str

    def as_request(self, period: int) -> MetricDataQueryTypeDef:
        return {
            "Id": self.id,
            "MetricStat": {
                "Metric": {
                    "Namespace": self.namespace,
                    "MetricName": self.metric,
                    "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
                },
                "Period": period,
                "Stat": self.stat,
            },
            "ReturnData": True,
        }


def target_group_dimension(arn: str) -> str:
    """``targetgroup/NAME/ID``: the CloudWatch dimension of a target group ARN."""
    return arn.rsplit(":", 1)[-1]


class MetricsReader:
    """Reads the latest metric values for a set of services."""

    def __init__(
        self,
        client: CloudWatchClient,
        limiter: anyio.CapacityLimiter,
        *,
        period: int,
        window: int,
        latency_stat: str,
        discovery_seconds: float = 600.0,
    ) -> None:
        self._client = client
        self._limiter = limiter
        self._period = period
        self._window = window
        self._latency_stat = latency_stat
        self._discovery_seconds = discovery_seconds
        self._load_balancers: dict[str, str] = {}
        self._discovered_at: datetime | None = None

    async def read(self, services: Sequence[Service], now: datetime) -> dict[str, dict[str, float]]:
        """Metrics by resource URI; services without datapoints get an empty mapping."""
        if not services:
            return {}
        if any(s.target_groups for s in services):
            await self._discover(now)
        queries = list(self._queries(services))
        end = _floor(now, self._period)
        start = end - timedelta(seconds=self._window)
        raw: dict[str, dict[str, float]] = {str(s.ref): {} for s in services}
        by_id = {q.id: q for q in queries}
        for offset in range(0, len(queries), MAX_QUERIES):
            chunk = [q.as_request(self._period) for q in queries[offset : offset + MAX_QUERIES]]
            for result_id, value in await self._fetch(chunk, start, end):
                query = by_id[result_id]
                raw[query.uri][query.key] = value
        return {uri: self._derive(values) for uri, values in raw.items()}

    async def _fetch(
        self, chunk: list[MetricDataQueryTypeDef], start: datetime, end: datetime
    ) -> list[tuple[str, float]]:
        def call() -> list[tuple[str, float]]:
            # Newest first: a series continued on a later page continues with older values.
            found: dict[str, float] = {}
            pages = self._client.get_paginator("get_metric_data").paginate(
                MetricDataQueries=chunk,
                StartTime=start,
                EndTime=end,
                ScanBy="TimestampDescending",
            )
            for page in pages:
                for result in page.get("MetricDataResults", []):
                    values = [v for v in result.get("Values", []) if v is not None]
                    if values and "Id" in result:
                        found.setdefault(result["Id"], float(values[0]))
            return list(found.items())

        return await aws_call("cloudwatch:GetMetricData", call, self._limiter)

    async def _discover(self, now: datetime) -> None:
        # A new target group waits at most one discovery period for its ALB metrics.
        if self._discovered_at is not None and (
            (now - self._discovered_at).total_seconds() < self._discovery_seconds
        ):
            return

        def call() -> dict[str, str]:
            found: dict[str, str] = {}
            pages = self._client.get_paginator("list_metrics").paginate(
                Namespace="AWS/ApplicationELB", MetricName="RequestCount"
            )
            for page in pages:
                for metric in page.get("Metrics", []):
                    dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
                    if dims.keys() == {"LoadBalancer", "TargetGroup"}:
                        found[dims["TargetGroup"]] = dims["LoadBalancer"]
            return found

        self._load_balancers = await aws_call("cloudwatch:ListMetrics", call, self._limiter)
        self._discovered_at = now

    def _queries(self, services: Iterable[Service]) -> Iterable[_Query]:
        for index, service in enumerate(services):
            uri = str(service.ref)
            ecs_dims = (("ClusterName", service.cluster), ("ServiceName", service.name))
            for key, metric in (
                (Metric.CPU_UTILIZATION, "CPUUtilization"),
                (Metric.MEMORY_UTILIZATION, "MemoryUtilization"),
            ):
                yield _Query(f"s{index}_{key}", uri, key, "AWS/ECS", metric, ecs_dims, "Average")
            for tg_index, arn in enumerate(service.target_groups):
                tg = target_group_dimension(arn)
                lb = self._load_balancers.get(tg)
                if lb is None:
                    continue  # no ALB metrics published for this target group yet
                dims = (("LoadBalancer", lb), ("TargetGroup", tg))
                prefix = f"s{index}_t{tg_index}"
                yield _Query(f"{prefix}_req", uri, f"requests#{tg_index}", "AWS/ApplicationELB",
                             "RequestCount", dims, "Sum")  # fmt: skip
                yield _Query(f"{prefix}_5xx", uri, f"errors#{tg_index}", "AWS/ApplicationELB",
                             "HTTPCode_Target_5XX_Count", dims, "Sum")  # fmt: skip
                yield _Query(f"{prefix}_lat", uri, f"latency#{tg_index}", "AWS/ApplicationELB",
                             "TargetResponseTime", dims, self._latency_stat)  # fmt: skip

    def _derive(self, values: Mapping[str, float]) -> dict[str, float]:
        out = {k: v for k, v in values.items() if "#" not in k}
        requests = sum(v for k, v in values.items() if k.startswith("requests#"))
        errors = sum(v for k, v in values.items() if k.startswith("errors#"))
        latencies = [v for k, v in values.items() if k.startswith("latency#")]
        if any(k.startswith("requests#") for k in values):
            out[Metric.REQUESTS_PER_MINUTE] = requests * 60.0 / self._period
            out[Metric.ERROR_RATE] = errors / requests if requests > 0 else 0.0
        if latencies:
            # Several target groups: the slowest one is what users feel.
            out[Metric.P95_LATENCY_MS] = max(latencies) * 1000.0
        return out


def _floor(moment: datetime, period: int) -> datetime:
    seconds = int(moment.timestamp()) // period * period
    return datetime.fromtimestamp(seconds, tz=moment.tzinfo)
