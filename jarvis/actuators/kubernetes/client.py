"""Building the Kubernetes `ApiClient` from settings, and classifying its errors.

Used by `jarvis.actuators.kubernetes.actuator` only: `build_api_client` when the
composition root calls `KubernetesActuator.from_settings` without a client,
and `to_actuator_error` at the boundary where an SDK exception becomes an
`ActuatorError` (temporary or terminal, with the API's reason as the code).
"""

from __future__ import annotations

import json
from typing import Any

import urllib3
from kubernetes import client, config

from jarvis.actuators.base import ActuatorError
from jarvis.config.kubernetes import KubernetesSettings
from jarvis.model import ErrorKind

#: Codes that retrying the same request cannot fix.
TERMINAL_STATUSES = frozenset({400, 401, 403, 404, 405, 410, 415, 422})
TIMEOUT = "Timeout"


def build_api_client(settings: KubernetesSettings) -> client.ApiClient:
    """An ApiClient for the configured cluster; ActuatorError(TERMINAL) if unusable."""
    cfg = client.Configuration()
    try:
        match settings.auth_mode:
            case "token":
                token = settings.token.get_secret_value() if settings.token else ""
                cfg.host = settings.host or ""
                cfg.api_key = {"authorization": token}
                cfg.api_key_prefix = {"authorization": "Bearer"}
                cfg.verify_ssl = settings.verify_ssl
                if settings.ca_cert is not None:
                    cfg.ssl_ca_cert = str(settings.ca_cert)
            case "in_cluster":
                config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]  # untyped in the SDK
            case "kubeconfig":
                config.load_kube_config(  # type: ignore[no-untyped-call]  # untyped in the SDK
                    config_file=None if settings.kubeconfig is None else str(settings.kubeconfig),
                    context=settings.context,
                    client_configuration=cfg,
                    persist_config=False,
                )
    except (config.ConfigException, OSError) as exc:
        raise ActuatorError(
            f"cannot configure the Kubernetes client ({settings.auth_mode}): {exc}",
            kind=ErrorKind.TERMINAL,
            code="ConfigError",
        ) from exc
    # One retry on a dropped connection, none on a read timeout: a hung API
    # server costs at most two request timeouts, never urllib3's default four.
    cfg.retries = urllib3.Retry(total=1, read=0, redirect=0, status=0)
    return client.ApiClient(cfg)


def _status_message(exc: client.ApiException) -> tuple[str, str | None]:
    # The API server answers errors with a Status object; fall back to the reason line.
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        return str(body.get("message") or exc.reason), body.get("reason") or None
    return str(exc.reason or "no reason given"), None


def to_actuator_error(exc: BaseException, what: str) -> ActuatorError:
    """Classify an exception raised by the kubernetes client during ``what``."""
    if isinstance(exc, ActuatorError):
        return exc
    if isinstance(exc, client.ApiException):
        status = int(exc.status or 0)
        message, reason = _status_message(exc)
        kind = ErrorKind.TERMINAL if status in TERMINAL_STATUSES else ErrorKind.TEMPORARY
        return ActuatorError(
            f"{what}: HTTP {status} {message}", kind=kind, code=reason or f"HTTP{status}"
        )
    cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    if isinstance(cause, urllib3.exceptions.TimeoutError | TimeoutError):
        return ActuatorError(f"{what}: timed out ({cause})", code=TIMEOUT)
    return ActuatorError(f"{what}: {type(exc).__name__}: {exc}", code="ConnectionError")


def to_json(api: client.ApiClient, obj: object) -> Any:
    """An SDK model as the JSON the API server speaks (camelCase keys, no nulls)."""
    return api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]  # untyped in the SDK
