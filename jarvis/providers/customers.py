"""The customer providers' builders: access (the customers table), Stripe and email.

Each builds its actuator on the customers table (`jarvis.actuators.customers`)
from the ``[customers]`` settings; `CUSTOMER_ACTIONS` says what each applies
on ``customer://``. The registry (`jarvis.providers.registry`) lists them.
SDKs and drivers are imported inside the builders, as for every provider.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from jarvis.actuators.base import Sensor
from jarvis.config import ConfigError, Settings
from jarvis.model import (
    Clock,
    CreateBillingCustomer,
    CreateDiscount,
    GrantAccess,
    RevokeAccess,
    SendEmail,
)

if TYPE_CHECKING:
    from datetime import timedelta

    from jarvis.actuators.customers.activity import UsageActivity
    from jarvis.actuators.customers.source import ProductSource
    from jarvis.actuators.customers.table import CustomerTable

__all__ = ["CUSTOMER_ACTIONS", "build_access", "build_email", "build_stripe"]


def _customer_table(settings: Settings) -> CustomerTable:
    from jarvis.actuators.customers.table import CustomerTable

    return CustomerTable.connect(settings.customers.database_url or settings.database_url)


def build_access(settings: Settings, clock: Clock) -> Sequence[Sensor]:
    from datetime import timedelta

    from jarvis.actuators.customers.sensor import CustomersActuator

    section = settings.customers
    lag = timedelta(seconds=section.lag_seconds)
    table = _customer_table(settings)
    return [
        CustomersActuator(
            table,
            clock=clock,
            lag=lag,
            batch=section.read_batch,
            activity=_activity(settings, lag),
            source=_source(settings, table, lag),
        )
    ]


def _activity(settings: Settings, lag: timedelta) -> UsageActivity | None:
    from jarvis.actuators.customers.activity import UsageActivity
    from jarvis.sqlengine import async_engine

    section = settings.customers.activity
    if not section.enabled:
        return None
    url = section.database_url or settings.customers.database_url or settings.database_url
    return UsageActivity(
        async_engine(url),
        table=section.table,
        customer_column=section.customer_column,
        time_column=section.time_column,
        weeks=section.weeks,
        lag=lag,
    )


def _source(settings: Settings, table: CustomerTable, lag: timedelta) -> ProductSource | None:
    from jarvis.actuators.customers.source import ProductSource

    section = settings.customers.source
    if section is None:
        return None
    return ProductSource.connect(
        section.url,
        table.engine,
        table=section.table,
        columns=section.columns,
        lag=lag,
        batch=settings.customers.read_batch,
    )


def build_stripe(settings: Settings, clock: Clock) -> Sequence[Sensor]:
    from jarvis.actuators.customers.discounts import StripeDiscounts
    from jarvis.actuators.customers.stripe_billing import StripeBilling, stripe_client
    from jarvis.config.notify import secret

    section = settings.customers.stripe
    assert section is not None  # noqa: S101 - `enabled` checked it
    key = secret(section.secret_key_env)
    if key is None:
        raise ConfigError(
            f"customers.stripe: environment variable {section.secret_key_env} is not set"
        )
    client = stripe_client(
        api_key=key.get_secret_value(), api_base=section.api_base, timeout=section.timeout
    )
    return [
        StripeBilling(client, _customer_table(settings), clock=clock),
        StripeDiscounts(client, _customer_table(settings), clock=clock),
    ]


def build_email(settings: Settings, clock: Clock) -> Sequence[Sensor]:
    from jarvis.actuators.customers.mailer import CustomerMailer, Letterhead
    from jarvis.config.notify import secret
    from jarvis.mail import SmtpServer

    mail = settings.customers.email
    assert mail is not None  # noqa: S101 - `enabled` checked it
    password = secret(mail.password_env)
    signing = secret(mail.unsubscribe_secret_env)
    if signing is None and "{token}" in mail.unsubscribe_url:
        raise ConfigError(
            "customers.email.unsubscribe_url: {token} needs the environment variable "
            f"{mail.unsubscribe_secret_env} (customers.email.unsubscribe_secret_env)"
        )
    server = SmtpServer(
        host=mail.host,
        port=mail.port,
        username=mail.username,
        password=None if password is None else password.get_secret_value(),
        starttls=mail.starttls,
        use_tls=mail.use_tls,
        timeout=mail.timeout,
    )
    head = Letterhead(
        sender=mail.sender,
        product=mail.product,
        dashboard_url=mail.dashboard_url,
        unsubscribe_url=mail.unsubscribe_url,
        secret=None if signing is None else signing.get_secret_value().encode(),
    )
    return [CustomerMailer(server, head, _customer_table(settings), clock=clock)]


CUSTOMER_ACTIONS = {
    "access": frozenset({GrantAccess.kind, RevokeAccess.kind}),
    "stripe": frozenset({CreateBillingCustomer.kind, CreateDiscount.kind}),
    "email": frozenset({SendEmail.kind}),
}
"""What each customer provider applies on ``customer://``."""
