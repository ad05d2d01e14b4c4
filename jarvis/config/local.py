"""Settings for services on this host (`jarvis.actuators.local`): a ``[local]`` table.

Each ``[[local.services]]`` entry is one process Jarvis may start, stop and
restart, observed as ``local://NAME``. Absent means the provider is off. This
module only says what to run and how to tell it is healthy; the actuator does
the running.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Annotated, TypeVar

from pydantic import Field, SecretStr, field_validator, model_validator

from jarvis.config.sections import Section

# A name is a file name under the state directory and a URI path: keep it plain.
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_Value = TypeVar("_Value", str, SecretStr)
BASE_ENVIRONMENT = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_*", "TZ", "TMPDIR")
"""What every service inherits from the daemon's environment: where programs are, whose
they are, the locale, the time zone and the place for temporary files. No credentials."""
_PATTERN = r"^[^=\x00*]+\*?$|^\*$"


def _passes(name: str, patterns: Iterable[str]) -> bool:
    """``name`` is one of ``patterns``: exact, or a prefix ending in ``*``."""
    return any(
        name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern
        for pattern in patterns
    )


def _jarvis_s(name: str) -> bool:
    """The daemon's own settings (the database URL, API tokens), in any case."""
    return name.upper().startswith("JARVIS_")


class LocalServiceSettings(Section):
    """One service on the host: the command that runs it and the check that it works."""

    name: Annotated[str, Field(pattern=_NAME)]
    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    """The argv, run without a shell (``["python", "-m", "http.server", "8001"]``)."""
    working_directory: Path | None = None
    """Where the command runs; default: the daemon's working directory."""
    inherit_environment: list[Annotated[str, Field(pattern=_PATTERN)]] = Field(default_factory=list)
    """Variables of the daemon's environment this service inherits besides
    `BASE_ENVIRONMENT` and the section's list: names, or prefixes ending in ``*``."""
    environment: dict[str, str] = Field(default_factory=dict)
    """Set for this command (and its health command), over what it inherits."""
    secret_environment: dict[str, SecretStr] = Field(default_factory=dict)
    """Like ``environment``, for API keys and passwords: masked by `jarvis config check`
    and redacted from every event, as every configured secret is."""
    health_url: str | None = None
    """An HTTP(S) URL that answers 2xx or 3xx when the service is healthy."""
    health_command: list[Annotated[str, Field(min_length=1)]] | None = None
    """An argv that exits 0 when the service is healthy (instead of a URL)."""
    start_timeout: Annotated[float, Field(gt=0, le=600)] = 10.0
    """Seconds a start may take to pass its health check before it counts as failed;
    with ``stop_timeout`` (a restart does both) below ``loop.apply_timeout``."""
    start_seconds: Annotated[float, Field(ge=0, le=600)] = 1.0
    """Seconds a started process must stay up (and pass its check) before a start
    counts as done, like supervisord's ``startsecs``: a command that dies at once
    fails its start even with no health check, or one served by another process."""
    stop_timeout: Annotated[float, Field(gt=0, le=120)] = 5.0
    """Seconds between SIGTERM and SIGKILL when stopping."""
    health_timeout: Annotated[float, Field(gt=0, le=60)] = 2.0
    """Seconds one health check may take; a slower one fails."""

    def process_environment(
        self,
        base: Mapping[str, str],
        inherit: Collection[str] = (),
        withheld: Collection[str] = (),
    ) -> dict[str, str]:
        """Of ``base`` (the daemon's environment), `BASE_ENVIRONMENT` and the variables
        ``inherit`` (the section's list) and this service's list name, never Jarvis's own
        ``JARVIS_*`` nor ``withheld`` (those other settings read secrets from); this
        service's variables over them."""
        patterns = (*BASE_ENVIRONMENT, *inherit, *self.inherit_environment)
        inherited = {
            k: v
            for k, v in base.items()
            if _passes(k, patterns) and not _jarvis_s(k) and k not in withheld
        }
        secrets = {k: v.get_secret_value() for k, v in self.secret_environment.items()}
        return {**inherited, **self.environment, **secrets}

    @field_validator("command", "health_command")
    @classmethod
    def _execable(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any("\0" in part for part in value):
            raise ValueError("an argument cannot hold a NUL character")
        return value

    @field_validator("environment", "secret_environment")
    @classmethod
    def _variables(cls, value: dict[str, _Value]) -> dict[str, _Value]:
        # What exec cannot pass: refused here, rather than failing every start.
        for name, text in value.items():
            plain = text.get_secret_value() if isinstance(text, SecretStr) else text
            if "=" in name or "\0" in name or "\0" in plain:
                raise ValueError(
                    f"{name!r}: a variable's name cannot hold '=' or NUL, nor its value NUL"
                )
        return value

    @field_validator("health_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _one_check(self) -> LocalServiceSettings:
        if self.health_url is not None and self.health_command is not None:
            raise ValueError("set health_url or health_command, not both")
        if self.start_seconds >= self.start_timeout:
            raise ValueError("start_seconds must be shorter than start_timeout")
        return self


class LocalSettings(Section):
    """Services on this host, observed as ``local://NAME`` (kind "service")."""

    services: Annotated[list[LocalServiceSettings], Field(min_length=1)]
    inherit_environment: list[Annotated[str, Field(pattern=_PATTERN)]] = Field(default_factory=list)
    """Variables of the daemon's environment every service inherits besides
    `BASE_ENVIRONMENT`: names, or prefixes ending in ``*`` (``["*"]``: all of them, still
    less Jarvis's own and its secrets: the behaviour before this list existed)."""
    state_directory: Path = Path("jarvis-local")
    """Pidfiles and log files (``NAME.pid``, ``NAME.stdout.log``, ``NAME.stderr.log``)."""
    log_max_bytes: Annotated[int, Field(ge=0)] = 10 * 1024 * 1024
    """A service's log past this size is rotated at the next observe (0: never)."""
    log_backups: Annotated[int, Field(ge=1, le=100)] = 3
    """Rotated logs kept per log (``NAME.stdout.log.1``, the newest, to ``.N``)."""

    @field_validator("services")
    @classmethod
    def _unique(cls, value: list[LocalServiceSettings]) -> list[LocalServiceSettings]:
        seen: set[str] = set()
        for service in value:
            if service.name in seen:
                raise ValueError(f"two services are named {service.name!r}")
            seen.add(service.name)
        return value

    def check_inherits(self, withheld: Collection[str]) -> None:
        """Jarvis's own variables and its secrets are never passed on: naming one is a
        mistake to say, not to ignore (give the service what it needs in ``environment``)."""
        lists = [("local.inherit_environment", self.inherit_environment)] + [
            (f"local service {s.name!r}: inherit_environment", s.inherit_environment)
            for s in self.services
        ]
        for where, names in lists:
            for name in names:
                if _jarvis_s(name) or name in withheld:
                    raise ValueError(
                        f"{where}: {name} is Jarvis's own (a JARVIS_* setting or a variable "
                        "a *_env setting reads a secret from) and is never passed to a "
                        "service; set what the service needs in its environment"
                    )

    def check_fits(self, apply_timeout: float) -> None:
        """A restart (stop, then start) must end before the loop cuts its apply short,
        or every slow start would be recorded as timed out while its process runs on."""
        for service in self.services:
            needed = service.start_timeout + service.stop_timeout
            if needed >= apply_timeout:
                raise ValueError(
                    f"local service {service.name!r}: start_timeout + stop_timeout "
                    f"({needed:g} s) must be below loop.apply_timeout ({apply_timeout:g} s)"
                )
