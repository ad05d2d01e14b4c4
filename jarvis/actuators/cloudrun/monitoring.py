"""Cloud Run's metrics from Cloud Monitoring, through its Prometheus-compatible PromQL API.

Built by `jarvis.providers.build_metric_sources` from ``[metrics.cloud_monitoring]``
and ``[cloudrun]``; read by the reconciler beside the observe like any metric source
(`jarvis.loop.observe.enrich`). Cloud Monitoring serves PromQL over the same
HTTP API as Prometheus
(``https://monitoring.googleapis.com/v1/projects/PROJECT/location/global/prometheus/api/v1/query``),
so this module is only what is Google's: the query templates for the
``run.googleapis.com`` metrics and an OAuth bearer token from google-auth's
application-default credentials; the queries, parsing and missing-value rules
are `jarvis.actuators.prometheus.source.PrometheusSource`'s.

Why PromQL and not ``projects.timeSeries.list`` through google-cloud-monitoring:
one code path for Kubernetes and Cloud Run, one instant query per metric for
every service at once (``timeSeries.list`` needs one call per metric and
aligner, and the p95 and error-rate arithmetic done here by hand), no new
dependency (google-auth and aiohttp are already here), and the tests can
serve the same metric names from a real PromQL engine.

Metric names follow Cloud Monitoring's PromQL mapping (the first ``/`` becomes
``:``, every other ``/`` and ``.`` becomes ``_``; distributions gain
``_bucket``, ``_sum`` and ``_count``); the resource labels of
``cloud_run_revision`` (``project_id``, ``location``, ``service_name``) select
the services. Monarch has no staleness markers, so every template reads a
``$window`` range: a service whose samples stopped has no answer, not an old one.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import anyio
import google.auth
import google.auth.transport.requests
from google.auth import credentials as gcreds
from google.auth import exceptions as gauth

from jarvis.actuators.base import ActuatorError, abandonable
from jarvis.actuators.prometheus.source import PrometheusSource
from jarvis.config.cloudrun import CloudRunSettings
from jarvis.config.metrics import WINDOW_PLACEHOLDER, CloudMonitoringSettings, PrometheusSettings
from jarvis.model import Metric

NAME = "cloud_monitoring"
SCOPES = ("https://www.googleapis.com/auth/monitoring.read",)
DEFAULT_URL = "https://monitoring.googleapis.com/v1/projects/{project}/location/global/prometheus"

#: IAM permission the source needs (``roles/monitoring.viewer`` has it).
PERMISSIONS = ("monitoring.timeSeries.list",)

_SELECT = 'project_id="$project",location="$location",service_name=~"$services"'


def _rate(metric: str, extra: str = "") -> str:
    return f"sum by (service_name) (rate({metric}{{{_SELECT}{extra}}}[{WINDOW_PLACEHOLDER}]))"


#: The built-in templates; ``[metrics.cloud_monitoring.queries]`` replaces any of them.
TEMPLATES: Mapping[Metric, str] = {
    Metric.REQUESTS_PER_MINUTE: _rate("run_googleapis_com:request_count") + " * 60",
    # 5xx over all requests; 4xx are the callers' mistakes, not a bad revision's.
    Metric.ERROR_RATE: (
        _rate("run_googleapis_com:request_count", ',response_code_class="5xx"')
        + " / "
        + _rate("run_googleapis_com:request_count")
    ),
    # request_latencies is a distribution in milliseconds.
    Metric.P95_LATENCY_MS: (
        "histogram_quantile(0.95, sum by (service_name, le) "
        f"(rate(run_googleapis_com:request_latencies_bucket{{{_SELECT}}}[{WINDOW_PLACEHOLDER}])))"
    ),
    # cpu/utilizations is a distribution of 0..1 per instance: its mean, as a percentage.
    Metric.CPU_UTILIZATION: (
        _rate("run_googleapis_com:container_cpu_utilizations_sum")
        + " / "
        + _rate("run_googleapis_com:container_cpu_utilizations_count")
        + " * 100"
    ),
    Metric.MEMORY_UTILIZATION: (
        _rate("run_googleapis_com:container_memory_utilizations_sum")
        + " / "
        + _rate("run_googleapis_com:container_memory_utilizations_count")
        + " * 100"
    ),
    # instance_count is a gauge split by state (active, idle): live = both.
    Metric.INSTANCES: (
        "sum by (service_name) (max_over_time("
        f"run_googleapis_com:container_instance_count{{{_SELECT}}}[{WINDOW_PLACEHOLDER}]))"
    ),
}


def templates(settings: CloudMonitoringSettings, cloudrun: CloudRunSettings) -> dict[str, str]:
    """Metric name to PromQL with everything but ``$services`` filled in."""
    chosen = {**TEMPLATES, **settings.queries}
    return {
        str(metric): template.replace(WINDOW_PLACEHOLDER, settings.window)
        .replace("$project", cloudrun.project)
        .replace("$location", cloudrun.region)
        for metric, template in chosen.items()
    }


class BearerToken:
    """An OAuth access token from application-default credentials, refreshed when it expires.

    Resolving and refreshing credentials block (files, the metadata server, the
    token endpoint), so both run in a worker thread, abandoned (not waited for)
    past ``timeout``; the lock keeps an abandoned refresh and the next tick's from
    racing. A failure is one line (``auth: …``) recorded as ``observe.failed``,
    and the next tick tries again.
    """

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._credentials: gcreds.Credentials | None = None
        self._lock = threading.Lock()

    async def __call__(self) -> Mapping[str, str]:
        try:
            with anyio.fail_after(self._timeout):
                token = await abandonable(self._token)
        except TimeoutError:
            raise ActuatorError(
                f"{NAME}: no access token within {self._timeout:g}s", code="auth"
            ) from None
        return {"Authorization": f"Bearer {token}"}

    def _token(self) -> str:
        with self._lock:
            return self._locked_token()

    def _locked_token(self) -> str:
        try:
            if self._credentials is None:
                self._credentials, _ = google.auth.default(scopes=SCOPES)
            credentials = self._credentials
            if not credentials.valid:
                credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]  # google-auth ships no types here
        except gauth.DefaultCredentialsError as exc:
            raise ActuatorError(
                f"{NAME}: no application-default credentials ({_first_line(exc)})", code="auth"
            ) from None
        except gauth.GoogleAuthError as exc:
            raise ActuatorError(
                f"{NAME}: could not get an access token ({_first_line(exc)})", code="auth"
            ) from None
        token = credentials.token
        if not token:
            raise ActuatorError(f"{NAME}: the credentials gave no access token", code="auth")
        return str(token)


def _first_line(exc: BaseException) -> str:
    # google-auth's RefreshError carries (message, response body): the message is the line.
    text = str(exc.args[0] if exc.args else exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def build_source(settings: CloudMonitoringSettings, cloudrun: CloudRunSettings) -> PrometheusSource:
    """The metric source for every service of ``[cloudrun]``, named ``cloud_monitoring``."""
    url = str(settings.url) if settings.url else DEFAULT_URL.format(project=cloudrun.project)
    prometheus = PrometheusSettings.model_validate(
        {
            "url": url,
            "timeout_seconds": settings.timeout_seconds,
            "service_label": "service_name",
            "queries": templates(settings, cloudrun),
            "services": {
                f"cloudrun://{cloudrun.resource_path(service)}": service
                for service in cloudrun.services
            },
        }
    )
    authorize = (
        None if settings.credentials == "anonymous" else BearerToken(settings.timeout_seconds)
    )
    return PrometheusSource(prometheus, name=NAME, authorize=authorize)
