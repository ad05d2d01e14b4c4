"""Settings for the kubernetes actuator: the ``[kubernetes]`` table.

Read by `jarvis.actuators.kubernetes.actuator.KubernetesActuator.from_settings`, which
the composition root calls when this section is present. How to reach the API
server is chosen by which keys are set: ``host`` (with a ``token``) for an
explicit endpoint, ``in_cluster = true`` for the pod's service account, or
else a kubeconfig file and context (the defaults kubectl would use). This
module imports no SDK.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from jarvis.config.sections import Section
from jarvis.config.urls import https_or_loopback

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# The label-selector grammar the API server parses (apimachinery's labels.Parse):
# requirements split on commas outside parentheses, each `key`, `!key`, `key=v`,
# `key==v`, `key!=v`, `key in (v, ...)`, `key notin (v, ...)`, `key>N` or `key<N`.
_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_KEY = rf"(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?{_NAME}"
_VALUE = rf"(?:{_NAME})?"
_REQUIREMENT = re.compile(
    rf"""\s*(?:
        !\s*{_KEY}
      | {_KEY}\s*(?:(?:==|=|!=)\s*{_VALUE}|[<>]\s*-?[0-9]+)?
      | {_KEY}\s+(?:in|notin)\s*\(\s*{_VALUE}(?:\s*,\s*{_VALUE})*\s*\)
    )\s*""",
    re.VERBOSE,
)

AuthMode = Literal["token", "in_cluster", "kubeconfig"]


class KubernetesSettings(Section):
    """Configured when present; absent means the provider is off."""

    namespaces: Annotated[
        list[Annotated[str, Field(pattern=_DNS_LABEL, max_length=63)]], Field(min_length=1)
    ] = Field(default_factory=lambda: ["default"])
    """Namespaces whose Deployments Jarvis observes and may act on."""
    label_selector: str = "jarvis.io/managed=true"
    """Only Deployments matching this selector are managed; "" manages them all.

    Checked against the API server's grammar at load (not the length limits).
    """

    in_cluster: bool = False
    """Use the pod's service account (token and CA mounted by Kubernetes)."""
    kubeconfig: Path | None = None
    """A kubeconfig file; defaults to $KUBECONFIG or ~/.kube/config."""
    context: str | None = None
    """A context in the kubeconfig; defaults to its current-context."""
    host: str | None = None
    """An explicit API server URL, e.g. https://10.0.0.1:6443; needs ``token``."""
    token: SecretStr | None = None
    """Bearer token for ``host``."""
    ca_cert: Path | None = None
    """CA bundle for ``host``; the system trust store when unset."""
    verify_ssl: bool = True

    request_timeout: Annotated[float, Field(gt=0, le=120)] = 5.0
    """Seconds one API request may take (connect and read)."""
    observe_timeout: Annotated[float, Field(gt=0, le=300)] = 15.0
    """Seconds a whole observe pass may take before it fails as temporary."""
    verify_seconds: Annotated[float, Field(ge=0, le=300)] = 10.0
    """After a restart or rollback, how long to watch the new pods before reporting.

    New pods that crash-loop or cannot pull their image make the action a
    temporary failure, counted by the retry budget; a rollout still going when
    the time is up is a success (the next ticks observe it). 0 does not watch.
    With ``verify_poll_seconds`` it must stay below ``loop.apply_timeout`` (`check_fits`).
    """
    verify_poll_seconds: Annotated[float, Field(gt=0, le=60)] = 2.0
    max_concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    """API requests in flight at once (worker threads)."""

    @field_validator("label_selector")
    @classmethod
    def _parses_as_a_selector(cls, value: str) -> str:
        # The API server answered 400 to every list: each observe failed, config check passed.
        if value.strip() and not all(
            _REQUIREMENT.fullmatch(part) for part in re.split(r",(?![^(]*\))", value)
        ):
            raise ValueError(
                f"label_selector: not a label selector the API server parses: {value[:200]!r} "
                '(e.g. "jarvis.io/managed=true,tier in (web, api),!legacy")'
            )
        return value

    @field_validator("host")
    @classmethod
    def _host_keeps_the_token_secret(cls, value: str | None) -> str | None:
        # The client read "bogus" as http://bogus:80 and sent the bearer token in clear.
        if value is not None and not https_or_loopback(value):
            raise ValueError(
                f"{value!r} must be an https:// URL of the API server (http only to "
                "localhost): the token is sent with every request"
            )
        return value

    @model_validator(mode="after")
    def _one_way_in(self) -> KubernetesSettings:
        if self.host is not None and self.token is None:
            raise ValueError("host needs a token (or drop host to use a kubeconfig)")
        if self.token is not None and self.host is None:
            raise ValueError("token needs a host")
        chosen = [
            name
            for name, used in (
                ("host", self.host is not None),
                ("in_cluster", self.in_cluster),
                ("kubeconfig/context", self.kubeconfig is not None or self.context is not None),
            )
            if used
        ]
        if len(chosen) > 1:
            raise ValueError(f"choose one way to reach the cluster, not {' and '.join(chosen)}")
        return self

    def check_fits(self, apply_timeout: float) -> None:
        """A verified restart or rollback must end before the loop cuts its apply short
        (the watch may poll once more past ``verify_seconds``), or every one still
        rolling out would be recorded as timed out (unknown) and charged as failed."""
        needed = self.verify_seconds + self.verify_poll_seconds
        if self.verify_seconds > 0 and needed >= apply_timeout:
            raise ValueError(
                f"kubernetes.verify_seconds + verify_poll_seconds ({needed:g} s) must be below "
                f"loop.apply_timeout ({apply_timeout:g} s); lower them, or raise apply_timeout"
            )

    @property
    def auth_mode(self) -> AuthMode:
        """How the actuator reaches the API server."""
        if self.host is not None:
            return "token"
        if self.in_cluster:
            return "in_cluster"
        return "kubeconfig"
