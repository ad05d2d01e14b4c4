"""The ``[customers]`` section: the customers table, Stripe and the customer email (issue 14).

Read by the provider registry (`jarvis.providers`): ``enabled`` switches on the
customers sensor (provider ``access``, which also grants dashboard access);
``[customers.stripe]`` the ``stripe`` provider; ``[customers.email]`` the
``email`` provider; ``[customers.plans]`` the plan prices revenue is counted
from (`jarvis.model.revenue`). Secrets are never settings: the Stripe secret
key, the webhook signing secret and the SMTP password are read from the
environment variables named here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from jarvis.config.notify import EnvName
from jarvis.config.sections import Section

__all__ = ["CustomerEmailSettings", "CustomersSettings", "PlanPrice", "StripeSettings"]


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
    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    sender: Annotated[str, Field(min_length=3)]
    username: str | None = None
    password_env: EnvName = "SMTP_PASSWORD"  # noqa: S105 - a variable's name, not a password
    starttls: bool = True
    use_tls: bool = False
    timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    unsubscribe_url: Annotated[str, Field(pattern=r"^https?://.*\{customer\}")] = (
        "https://example.com/unsubscribe?customer={customer}"
    )
    """Where a recipient unsubscribes; ``{customer}`` is replaced by the customer id."""
    dashboard_url: Annotated[str, Field(pattern=r"^https?://")] = "https://example.com/dashboard"
    product: Annotated[str, Field(min_length=1)] = "Jarvis"


class PlanPrice(Section):
    """A plan billed other than monthly: ``{ usd = 490, interval = "year" }``."""

    usd: Annotated[float, Field(ge=0)]
    interval: Literal["month", "year"] = "month"

    @property
    def monthly_usd(self) -> float:
        return self.usd / 12 if self.interval == "year" else self.usd


class CustomersSettings(Section):
    """Off by default: no customer is observed or contacted unless configured."""

    enabled: bool = False
    database_url: str | None = None
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

    def monthly_prices(self) -> dict[str, float]:
        """Every plan's price per month in USD, yearly plans divided by 12."""
        return {
            name: price if isinstance(price, float | int) else price.monthly_usd
            for name, price in self.plans.items()
        }
