"""Settings: `JARVIS_*` environment variables over an optional TOML file.

The composition root (`jarvis.app`) and the CLI call `load_settings` once; no
other module reads the environment. Nested keys use ``__`` in the environment
(``JARVIS_LOOP__INTERVAL=5``); complex values are JSON
(``JARVIS_ALLOWLIST='[{"provider": "sim", "actions": ["restart"]}]'``).
A bad value raises `ConfigError`, whose message names every offending key; a config
file is read only when it is a regular UTF-8 file of at most 1 MiB (`_read_config`).
"""

from __future__ import annotations

import codecs
import functools
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from jarvis.config.aws import AwsSettings
from jarvis.config.breakers import BreakerSettings
from jarvis.config.budgets import BudgetEntry, unique_names
from jarvis.config.cloudrun import CloudRunSettings
from jarvis.config.cost import CostSettings, RoutingSettings
from jarvis.config.customers import CustomersSettings
from jarvis.config.endpoints import endpoints_fit, slos_fit
from jarvis.config.environment import not_json, unknown_variables
from jarvis.config.failover import FailoverSettings
from jarvis.config.kubernetes import KubernetesSettings
from jarvis.config.local import LocalSettings
from jarvis.config.metrics import MetricSourceSettings
from jarvis.config.notify import NotifySettings
from jarvis.config.policies import RollbackSettings, ScalingSettings
from jarvis.config.probes import ProbeSettings
from jarvis.config.report import ReportSettings
from jarvis.config.secrets import Token, known_secrets, secret_variables
from jarvis.config.sections import (
    AllowEntry,
    BoundsSettings,
    HealSettings,
    HttpSettings,
    LeaseSettings,
    LoopSettings,
    RetentionSettings,
    RetrySettings,
    SimulatedSettings,
    _default_allowlist,
)
from jarvis.config.urls import DatabaseUrl, RedisUrl, plain_text

__all__ = [
    "AllowEntry",
    "BudgetEntry",
    "ConfigError",
    "Settings",
    "load_settings",
]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///jarvis.db"


class ConfigError(Exception):
    """The configuration is unusable; the message names the offending keys."""


class Settings(BaseSettings):
    """Everything Jarvis can be told. Unknown keys are errors, not ignored."""

    model_config = SettingsConfigDict(
        env_prefix="JARVIS_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
    )

    database_url: DatabaseUrl = DEFAULT_DATABASE_URL
    """SQLAlchemy async URL: sqlite+aiosqlite:///FILE or postgresql+asyncpg://…"""
    redis_url: RedisUrl = None
    """When set, the kill switch lives in Redis; otherwise in the event database."""
    spool_path: Path = Path("jarvis-spool.jsonl")
    """Where events wait while the database is unreachable."""
    dry_run: bool = False
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    admin_token: Token | None = None
    """Bearer token for the admin API and the status page's changes; acts as ``admin-token``."""
    read_token: Token | None = None
    """Bearer token that may read the admin API and the status page, and change nothing."""
    log_format: str = "auto"
    """auto (console on a terminal, JSON otherwise), json or console."""

    allowlist: list[AllowEntry] = Field(default_factory=_default_allowlist)
    loop: LoopSettings = LoopSettings()
    bounds: BoundsSettings = BoundsSettings()
    retry: RetrySettings = RetrySettings()
    breakers: BreakerSettings = BreakerSettings()
    budgets: list[BudgetEntry] = Field(default_factory=list)
    """Disruption budgets: changes per time window (`jarvis.config.budgets`)."""
    http: HttpSettings = HttpSettings()
    retention: RetentionSettings = RetentionSettings()
    lease: LeaseSettings = LeaseSettings()

    simulated: SimulatedSettings = SimulatedSettings()
    aws: AwsSettings | None = None
    kubernetes: KubernetesSettings | None = None
    cloudrun: CloudRunSettings | None = None
    local: LocalSettings | None = None
    """Services on this host (`jarvis.config.local`); absent means off."""
    probes: ProbeSettings = ProbeSettings()
    metrics: MetricSourceSettings = MetricSourceSettings()
    """Where service metrics come from instead of their provider (`jarvis.config.metrics`)."""

    heal: HealSettings = HealSettings()
    scaling: ScalingSettings = ScalingSettings()
    rollback: RollbackSettings = RollbackSettings()
    cost: CostSettings = CostSettings()
    routing: RoutingSettings = RoutingSettings()
    notify: NotifySettings = NotifySettings()
    report: ReportSettings = ReportSettings()
    """Daily delivery of `jarvis report` (`jarvis.config.report`)."""
    customers: CustomersSettings = CustomersSettings()
    failover: FailoverSettings = FailoverSettings()
    """DNS failover through Route 53 weighted records (`jarvis.config.failover`)."""

    @field_validator("spool_path")
    @classmethod
    def _spool_is_a_file(cls, value: Path) -> Path:
        # An empty JARVIS_SPOOL_PATH is Path("."): `config check` passed it and
        # `jarvis run` stopped with a traceback.
        if not value.name or value.is_dir():
            raise ValueError("must name a file, not a directory")
        return value

    @model_validator(mode="after")
    def _applies_fit_the_loop(self) -> Settings:
        if self.local is not None:
            self.local.check_fits(self.loop.apply_timeout)
            self.local.check_inherits(secret_variables(self))
        if self.kubernetes is not None:
            self.kubernetes.check_fits(self.loop.apply_timeout)
        return self

    @field_validator("read_token")
    @classmethod
    def _tokens_differ(cls, read: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        admin = info.data.get("admin_token")  # validated first: declared first
        if admin and read and admin.get_secret_value() == read.get_secret_value():
            # Equal, the read token is an admin one: every reader could change things.
            raise ValueError("must differ from admin_token")
        return read

    @field_validator("budgets")
    @classmethod
    def _unique_budgets(cls, value: list[BudgetEntry]) -> list[BudgetEntry]:
        return unique_names(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("log_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in {"auto", "json", "console"}:
            raise ValueError("must be one of auto, json, console")
        return value

    @model_validator(mode="after")
    def _endpoints_fit_the_observe(self) -> Settings:
        problems = [
            endpoints_fit(self.probes, self.loop.observe_timeout),
            slos_fit(self.probes, self.loop.interval),
        ]
        if any(problems):
            raise ValueError("; ".join(p for p in problems if p))
        return self

    @model_validator(mode="after")
    def _failover_endpoints_exist(self) -> Settings:
        known = {e.name for e in self.probes.endpoints}
        missing = sorted(self.failover.endpoint_names() - known)
        if missing:
            raise ValueError(
                f"failover.groups: targets name endpoints {', '.join(missing)} "
                "that no [[probes.endpoints]] entry defines"
            )
        return self

    @model_validator(mode="after")
    def _routes_priced(self) -> Settings:
        # The cost policy refused an unpriced model with a ValueError when `run` built
        # it, after `config check` had passed the settings.
        if self.cost.enabled:
            for name, route in self.routing.routes.items():
                unpriced = sorted(set(route.models) - set(self.cost.prices))
                if unpriced:
                    raise ValueError(
                        f"routing.routes.{name}: models with no [cost.prices] entry: {unpriced}"
                    )
        return self

    @model_validator(mode="after")
    def _report_channels_exist(self) -> Settings:
        if self.report.deliver_at is not None:
            for name in self.report.channels:
                if getattr(self.notify, name) is None:
                    raise ValueError(f"report.channels names {name!r} but [notify.{name}] is unset")
        return self

    @property
    def tick_timeout(self) -> float:
        """The interval unless set, and never less than one observe and one apply."""
        room = self.loop.observe_timeout + self.loop.apply_timeout
        return self.loop.tick_timeout or max(self.loop.interval, room)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every configured secret, to redact from what is stored (`known_secrets`)."""
        return known_secrets(self)

    @property
    def http_port(self) -> int:
        if self.http.port is not None:
            return self.http.port
        return _environment_port() or 8080

    @model_validator(mode="after")
    def _port_variable_is_a_port(self) -> Settings:
        # $PORT (Cloud Run sets it) was read only when the server bound: "abc" ended
        # `config check` and `run` with a traceback, 99999 `run` with an OverflowError.
        if self.http.port is None:
            _environment_port()
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no .env files
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no secret dirs
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file") is not None:
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)


def _environment_port() -> int | None:
    """``$PORT``, or None when unset or empty; ValueError when it is no port number."""
    text = os.environ.get("PORT", "")
    if not text:
        return None
    if not (re.fullmatch("[0-9]{1,5}", text) and int(text) <= 65535):
        raise ValueError(
            f"http.port: unset, and $PORT ({text!r}) is not a port number from 0 to 65535"
        )
    return int(text)


@functools.lru_cache(maxsize=16)
def _reading(path: Path) -> type[Settings]:
    """`Settings` that also read ``path``: pydantic-settings takes the TOML file from
    the class's config, so each file gets its own (cached) subclass instead of a
    module-level variable set around the constructor."""
    config = SettingsConfigDict(**{**Settings.model_config, "toml_file": path})
    return type("Settings", (Settings,), {"model_config": config, "__module__": __name__})


def load_settings(
    config_path: str | Path | None = None,
    **overrides: Any,
) -> Settings:
    """Build settings from the environment and the TOML file, or raise ConfigError.

    ``config_path`` falls back to ``$JARVIS_CONFIG``. ``overrides`` (from CLI
    flags) win over both.
    """
    unknown = unknown_variables(Settings, os.environ)
    if unknown:
        raise ConfigError("\n".join(["invalid configuration (from the environment):", *unknown]))
    path_text = config_path if config_path is not None else os.environ.get("JARVIS_CONFIG")
    path: Path | None = None
    if path_text:
        path = Path(path_text)
        try:
            plain_text(str(path_text))
        except ValueError:
            # Read from a file, it kept the line break: "not found" named a file that is there.
            raise ConfigError(
                f"config file path {str(path_text)!r} holds a control character (a line "
                "break?) or begins or ends with whitespace"
            ) from None
        try:
            tomllib.loads(_read_config(path))
        except ValueError as exc:
            # TOMLDecodeError, or a plain ValueError for an integer of more digits than
            # Python converts (4,300), which ended every command in a traceback.
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
        except RecursionError:
            # tomllib recurses per nested array or inline table.
            raise ConfigError(
                f"config file {path} is not valid TOML: lists or tables nested too deeply"
            ) from None
    cls = Settings if path is None else _reading(path.resolve())
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, flags=bool(overrides))) from None
    except RecursionError:
        # json.loads of a JARVIS_* value nested tens of thousands deep.
        culprits = not_json(None, os.environ)
        raise ConfigError(
            "invalid configuration (from the environment): "
            f"{', '.join(culprits) or 'a variable'} nests lists or tables too deeply"
        ) from None
    except SettingsError as exc:
        # A complex value (a list or a table) in the environment that is not JSON.
        field = re.search(r'field "([^"]+)"', str(exc))
        culprits = not_json(field.group(1), os.environ) if field else []
        # Named, never quoted: a list of probe URLs may hold a password.
        which = f": {', '.join(culprits)} is not JSON" if culprits else ""
        raise ConfigError(
            f"invalid configuration (from the environment): {exc}{which}; "
            "lists and tables given as JARVIS_* variables must be JSON"
        ) from None


CONFIG_MAX_BYTES = 2**20
"""The largest config file read: a 20 GB one (a disk image given as --config) was read
whole into memory, and a configuration of thousands of entries is a few hundred KiB."""


def _read_config(path: Path) -> str:
    """The text of the config file at ``path``, or ConfigError saying why there is none."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        # A symlink loop, a path through a file: it is there, but cannot be read.
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise ConfigError(f"{path} is a directory, not a config file")
    if not stat.S_ISREG(mode):
        # A FIFO would wait for a writer; a device may never end.
        raise ConfigError(f"{path} is not a regular file, so not a config file")
    try:
        with path.open("rb") as file:
            data = file.read(CONFIG_MAX_BYTES + 1)
    except OSError as exc:
        # Permission denied, typically: the file belongs to the daemon's user.
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if len(data) > CONFIG_MAX_BYTES:
        raise ConfigError(f"config file {path} is larger than 1 MiB, more than a configuration")
    if data.startswith(codecs.BOM_UTF8):
        # TOML has no BOM: tomllib said "Invalid statement (at line 1, column 1)".
        raise ConfigError(
            f"config file {path} starts with a byte order mark: save it as UTF-8 without one"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _describe(exc: ValidationError, path: Path | None, *, flags: bool = False) -> str:
    *rest, last = ["the environment", *([str(path)] if path else []), *(["flags"] if flags else [])]
    source = f" (from {', '.join(rest)} and {last})" if rest else f" (from {last})"
    lines = [f"invalid configuration{source}:"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(root)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "value_error":
            # A validator's own words, which pydantic prefixes with "Value error, ".
            message = message.removeprefix("Value error, ")
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)
