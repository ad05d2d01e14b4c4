"""The ``[customers]`` section: the customers table, Stripe and the customer email (issue 14).

Read by the provider registry (`jarvis.providers`): ``enabled`` switches on the
customers sensor (provider ``access``, which also grants dashboard access);
``[customers.stripe]`` the ``stripe`` provider; ``[customers.email]`` the
``email`` provider; ``[customers.plans]`` the plan prices revenue is counted
from (`jarvis.model.revenue`). ``[customers.activity]`` says where the
product's usage is counted (``llm_usage`` by default), ``[customers.source]``
maps the product's own database, read-only, and ``[customers.churn]`` tunes
the churn policy. Secrets are never settings: the Stripe secret key, the
webhook signing secret, the SMTP password and the unsubscribe secret are read
from the environment variables named here.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from jarvis.config.notify import EnvName, HeaderText
from jarvis.config.sections import Section
from jarvis.config.urls import DatabaseUrl, https_or_loopback

__all__ = [
    "ActivitySettings",
    "ChurnSettings",
    "CustomerEmailSettings",
    "CustomersSettings",
    "PlanPrice",
    "SourceSettings",
    "StripeSettings",
]

_URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%{}]+")
"""What RFC 3986 allows in a URI, and the braces of ``{customer}`` and ``{token}``."""
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
SOURCE_REQUIRED = ("id", "email", "signed_up_at")
SOURCE_FIELDS = frozenset(
    {*SOURCE_REQUIRED, "name", "plan", "last_active_at", "subscription_status", "opted_out"}
    | {"updated_at"}
)


def _identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a plain table or column name ([schema.]name)")
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]


class StripeSettings(Section):
    api_base: Annotated[str, Field(pattern=r"^https?://")] = "https://api.stripe.com"
    """Stripe's API; tests point it at a loopback stand-in."""
    secret_key_env: EnvName = "STRIPE_SECRET_KEY"  # noqa: S105 - a variable's name, not a key
    webhook_secret_env: EnvName = "STRIPE_WEBHOOK_SECRET"  # noqa: S105 - a variable's name
    """Holds the endpoint's signing secret (``whsec_…``); unset: no ``POST /webhooks/stripe``.

    Not ``JARVIS_…``: every ``JARVIS_`` variable must name a setting.
    """
    timeout: Annotated[float, Field(gt=0, le=120)] = 10.0


class CustomerEmailSettings(Section):
    host: Annotated[HeaderText, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    sender: Annotated[HeaderText, Field(min_length=3)]
    username: HeaderText | None = None
    password_env: EnvName = "SMTP_PASSWORD"  # noqa: S105 - a variable's name, not a password
    starttls: bool = True
    use_tls: bool = False
    timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    unsubscribe_url: str = "https://example.com/unsubscribe?customer={customer}"
    """Where a recipient unsubscribes: ``{customer}`` is replaced by the customer id,
    ``{token}`` by a signed token the daemon's ``/unsubscribe`` accepts. https, because
    RFC 8058 one-click unsubscribe needs it; plain http only to this machine (a trial)."""
    unsubscribe_secret_env: EnvName = "UNSUBSCRIBE_SECRET"  # noqa: S105 - a variable's name
    """The HMAC secret of ``{token}`` (needed by a URL with ``{token}`` and by ``/unsubscribe``)."""
    dashboard_url: Annotated[str, Field(pattern=r"^https?://")] = "https://example.com/dashboard"
    product: Annotated[HeaderText, Field(min_length=1)] = "Jarvis"

    @field_validator("unsubscribe_url")
    @classmethod
    def _one_click_url(cls, value: str) -> str:
        if "{customer}" not in value and "{token}" not in value:
            raise ValueError("must contain {customer} or {token}, e.g. https://host/u?t={token}")
        if not _URI_CHARS.fullmatch(value):
            # It goes into the List-Unsubscribe header between < and >.
            raise ValueError(
                "must be one URL: no spaces, line breaks, quotes or angle brackets "
                "(percent-encode them), e.g. https://host/u?t={token}"
            )
        if not https_or_loopback(value):
            # A mail client posts the one-click unsubscribe (List-Unsubscribe-Post)
            # only to an https URI (RFC 8058 section 3.1); over http it is ignored.
            raise ValueError(
                "must be an https:// URL with a host: one-click unsubscribe (RFC 8058) "
                "needs https; http:// is accepted only for localhost or 127.0.0.1"
            )
        return value


class PlanPrice(Section):
    """A plan billed other than monthly: ``{ usd = 490, interval = "year" }``."""

    usd: Annotated[float, Field(ge=0)]
    interval: Literal["month", "year"] = "month"

    @property
    def monthly_usd(self) -> float:
        return self.usd / 12 if self.interval == "year" else self.usd


class ActivitySettings(Section):
    """Where a customer's use of the product is counted: one row per request."""

    enabled: bool = True
    database_url: DatabaseUrl | None = None
    """The database holding the table; the customers' database when unset."""
    table: Identifier = "llm_usage"
    customer_column: Identifier = "customer_id"
    time_column: Identifier = "time"
    weeks: Annotated[int, Field(ge=2, le=26)] = 4
    """Complete weeks of counts the churn policy sees for the trend."""


class SourceSettings(Section):
    """The product's own customer table, read-only: its URL, table and column names."""

    url: DatabaseUrl
    table: Identifier
    columns: dict[str, Identifier]
    """Jarvis's field → the product's column: ``id``, ``email``, ``signed_up_at`` required;
    ``name``, ``plan``, ``last_active_at``, ``subscription_status``, ``opted_out``,
    ``updated_at`` optional (``updated_at`` or ``last_active_at`` makes reads incremental)."""

    @model_validator(mode="after")
    def _known_fields(self) -> SourceSettings:
        unknown = sorted(set(self.columns) - SOURCE_FIELDS)
        if unknown:
            raise ValueError(
                f"columns: unknown field {unknown[0]!r} (known: {sorted(SOURCE_FIELDS)})"
            )
        missing = [f for f in SOURCE_REQUIRED if f not in self.columns]
        if missing:
            raise ValueError(f"columns: {missing[0]!r} is required")
        return self


class ChurnSettings(Section):
    """The churn policy's thresholds and the discount it offers."""

    enabled: bool = True
    high_days: Annotated[int, Field(ge=1, le=365)] = 30
    medium_days: Annotated[int, Field(ge=1, le=365)] = 14
    cooldown_days: Annotated[int, Field(ge=1, le=365)] = 30
    """At most one win-back email per customer in this many days."""
    free_plans: tuple[str, ...] = ("free",)
    percent_off: Annotated[int, Field(ge=1, le=100)] = 20
    valid_days: Annotated[int, Field(ge=1, le=90)] = 14

    @model_validator(mode="after")
    def _ordered(self) -> ChurnSettings:
        if self.medium_days > self.high_days:
            raise ValueError("medium_days: must not exceed high_days")
        return self


class CustomersSettings(Section):
    """Off by default: no customer is observed or contacted unless configured."""

    enabled: bool = False
    database_url: DatabaseUrl | None = None
    """The database holding ``customers``; Jarvis's own (``database_url``) when unset."""
    lag_seconds: Annotated[float, Field(ge=0, le=3600)] = 5.0
    """Each read re-reads rows stamped this long before the newest seen, for late commits."""
    read_batch: Annotated[int, Field(ge=1, le=1_000_000)] = 20_000
    """At most this many rows per observe: a large table is first read over several ticks."""
    plans: dict[str, Annotated[float, Field(ge=0)] | PlanPrice] = Field(default_factory=dict)
    """Plan name to its price: a number is monthly USD; a table may say ``interval = "year"``.
    Revenue (MRR) is counted from these; a plan without a price counts as zero."""
    revenue_interval_seconds: Annotated[float, Field(ge=60, le=86_400)] = 3600.0
    """How often the daemon settles today's revenue (``revenue_daily``) and sets the gauges."""
    stripe: StripeSettings | None = None
    email: CustomerEmailSettings | None = None
    activity: ActivitySettings = ActivitySettings()
    source: SourceSettings | None = None
    churn: ChurnSettings = ChurnSettings()

    def monthly_prices(self) -> dict[str, float]:
        """Every plan's price per month in USD, yearly plans divided by 12."""
        return {
            name: price if isinstance(price, float | int) else price.monthly_usd
            for name, price in self.plans.items()
        }
