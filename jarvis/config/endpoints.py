"""Settings for HTTP(S) endpoint probes and their latency SLOs: ``[[probes.endpoints]]``
and ``[[probes.slos]]`` inside the ``[probes]`` table (`jarvis.config.probes`).

Read by the composition root: the endpoint sensor (`jarvis.actuators.probes.endpoints`)
probes each endpoint, the loop's `jarvis.loop.endpoints.EndpointWatch` judges
each SLO, and heal and rollback read ``serves`` to link an endpoint to the
service behind it. A URL may carry a password or a token in its query, so it is
a secret: `display_url` is the only form printed (``config check``) or recorded.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator

from jarvis.config.sections import Section
from jarvis.model import globs

if TYPE_CHECKING:
    from jarvis.config.probes import ProbeSettings

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


def display_url(url: str) -> str:
    """``url`` without what may be secret: the password and query values become ``***``.

    The fragment is dropped (it is never sent). This is what ``config check``
    prints and what a probe records as its ``target``.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        name = user.partition(":")[0]
        netloc = f"{name}:***@{host}" if ":" in user else f"{name}@{host}"
    query = urlencode([(k, "***") for k, _ in parse_qsl(parts.query, keep_blank_values=True)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def ports_ok(url: str) -> bool:
    """Every port ``url`` names is a number from 1 to 65535 (none named is fine).

    Takes the hosts a libpq-style URL lists (``h1:5432,h2:5433``) and IPv6
    literals (``[::1]:6379``). A client given any other port fails on every
    use, some quoting the whole URL, password included, as they do.
    """
    for host in urlsplit(url).netloc.rpartition("@")[2].split(","):
        port = host.rpartition("]")[2] if host.startswith("[") else host
        digits = port.partition(":")[2]
        if digits and not (digits.isascii() and digits.isdigit() and 0 < int(digits) < 65536):
            return False
    return True


_QUOTED_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def masked_urls(text: str) -> str:
    """``text`` with every URL in it shown as `display_url` shows it.

    For messages that are not ours, such as an HTTP client's error, which may
    quote the URL it was asked for, query token and all.
    """
    return _QUOTED_URL.sub(lambda match: display_url(match.group()), text)


class EndpointSettings(Section):
    """One HTTP(S) endpoint, observed as ``endpoint://NAME`` every tick."""

    name: Annotated[str, Field(pattern=NAME)]
    url: SecretStr
    """http:// or https://; give one with a password or a token through the environment."""
    expect_status: Annotated[
        tuple[Annotated[int, Field(ge=100, le=599)], ...], Field(min_length=1)
    ] = (200,)
    """Statuses that count as up; redirects are not followed, so a 301 is its own answer."""
    expect_body: Annotated[str | None, Field(min_length=1)] = None
    """A substring the body must contain (its first 1 MiB is read, in the charset its
    ``Content-Type`` names, else UTF-8)."""
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    """Connect, TLS and the whole answer; a slower answer is a failure."""
    verify_tls: bool = True
    """Check the certificate chain and host name; off still reports the days left."""
    min_cert_days: Annotated[float, Field(ge=0, le=3650)] = 14.0
    """Fewer days left on the certificate: degraded (a warning, nothing restarts)."""
    failure_threshold: Annotated[int, Field(ge=1, le=100)] = 3
    """Consecutive failed probes before the endpoint is unhealthy (degraded before)."""
    serves: str | None = None
    """The resource behind it (``k8s://ai-dawg/api``): heal and rollback read its
    health as unhealthy while this endpoint is. The endpoint itself is never acted on."""
    region: Annotated[str, Field(max_length=100)] = ""
    cloud: Annotated[str, Field(max_length=100)] = ""
    """Labels on the metrics and what an SLO may select by (``aws``, ``gcp``, ``us-east-1``)."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname or not ports_ok(url):
            raise ValueError("must be an http:// or https:// URL with a host (and a valid port)")
        return value

    @field_validator("serves")
    @classmethod
    def _resource_uri(cls, value: str | None) -> str | None:
        if value is None:
            return None
        provider, sep, name = value.partition("://")
        if not sep or not provider or not name:
            raise ValueError("must be a resource URI such as k8s://namespace/name")
        if provider == "endpoint":
            raise ValueError("an endpoint serves a service, not another endpoint")
        return value

    @property
    def uri(self) -> str:
        return f"endpoint://{self.name}"


class SloSettings(Section):
    """A latency objective over one endpoint or a group: p95 under ``p95_ms`` over a window.

    The group is every endpoint whose name matches one of ``endpoints`` and whose
    labels match ``cloud`` and ``region`` when given; its samples are pooled.
    """

    name: Annotated[str, Field(pattern=NAME)]
    endpoints: Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(min_length=1)] = (
        "*",
    )
    cloud: str | None = None
    region: str | None = None
    p95_ms: Annotated[float, Field(gt=0, le=600_000)] = 100.0
    window_seconds: Annotated[float, Field(ge=1, le=86_400)] = 300.0
    min_samples: Annotated[int, Field(ge=1, le=100_000)] = 5
    """Fewer samples in the window (after a start): no judgement either way."""
    severity: Literal["critical", "error", "warning", "info"] = "warning"

    def selects(self, endpoint: EndpointSettings) -> bool:
        if self.cloud is not None and endpoint.cloud != self.cloud:
            return False
        if self.region is not None and endpoint.region != self.region:
            return False
        return any(globs.matches(endpoint.name, glob) for glob in self.endpoints)


def check_endpoints(endpoints: list[EndpointSettings], slos: list[SloSettings]) -> list[str]:
    """Duplicate names and SLOs that select no endpoint, each naming its key."""
    problems: list[str] = []
    seen: set[str] = set()
    for index, endpoint in enumerate(endpoints):
        if endpoint.name in seen:
            problems.append(f"probes.endpoints.{index}.name: duplicate {endpoint.name!r}")
        seen.add(endpoint.name)
    names: set[str] = set()
    for index, slo in enumerate(slos):
        if slo.name in names:
            problems.append(f"probes.slos.{index}.name: duplicate {slo.name!r}")
        names.add(slo.name)
        if not any(slo.selects(endpoint) for endpoint in endpoints):
            problems.append(f"probes.slos.{index}.endpoints: selects no configured endpoint")
    return problems


def endpoints_fit(probes: ProbeSettings, observe_timeout: float) -> str | None:
    """Why the endpoint probes could overrun ``loop.observe_timeout``, or None.

    The worst case is every endpoint timing out: rounds of
    ``endpoint_concurrency`` probes, each as long as the slowest timeout. An
    overrun would fail the whole observe, losing every endpoint's answer
    exactly when they all time out, so it is refused rather than hoped away.
    """
    if not probes.endpoints:
        return None
    rounds = math.ceil(len(probes.endpoints) / probes.endpoint_concurrency)
    slowest = max(e.timeout_seconds for e in probes.endpoints)
    if rounds * slowest < observe_timeout:
        return None
    return (
        f"probes.endpoint_concurrency: {len(probes.endpoints)} endpoints, "
        f"{probes.endpoint_concurrency} at a time, timing out after {slowest:g} s each "
        f"could take {rounds * slowest:g} s, not shorter than loop.observe_timeout "
        f"({observe_timeout:g} s); raise either, or shorten probes.endpoints.*.timeout_seconds"
    )


def slos_fit(probes: ProbeSettings, interval: float) -> str | None:
    """Why an SLO could never be judged at ``loop.interval``, or None.

    One probe per endpoint and tick: a window holds at most ``window_seconds /
    interval`` samples of each endpoint the SLO selects; one asking for more
    would say nothing forever, no alert and no ``jarvis_slo_ok``, without a word.
    """
    problems: list[str] = []
    for index, slo in enumerate(probes.slos):
        selected = sum(1 for endpoint in probes.endpoints if slo.selects(endpoint))
        if slo.min_samples > selected * slo.window_seconds / interval:
            problems.append(
                f"probes.slos.{index}.min_samples: {slo.min_samples} samples cannot fit in a "
                f"{slo.window_seconds:g} s window with a tick every {interval:g} s "
                f"({selected} endpoints); lower it, or lengthen window_seconds"
            )
    return "; ".join(problems) or None
