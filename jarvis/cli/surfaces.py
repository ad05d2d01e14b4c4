"""What `jarvis run` serves over HTTP: the server, wired to the daemon's loop.

`jarvis.cli.daemon` calls `http_server` once the scheduler exists: the page's
backend (`jarvis.loop.admin.AdminService`) gets the kill switch, the override
queue the scheduler's ticks drain, who leads (the lease on PostgreSQL, one node
on SQLite) and the budgets' remaining as the last tick computed them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from jarvis.app import App
    from jarvis.config import Settings
    from jarvis.loop.overrides import OverrideQueue
    from jarvis.loop.scheduler import Scheduler
    from jarvis.notify import Notifier
    from jarvis.telemetry.http import HttpServer, WebhookBackend
    from jarvis.telemetry.unsubscribe import Unsubscribe
    from jarvis.telemetry.web.view import BudgetView, LeaderView, NotificationView


def http_server(
    settings: Settings,
    app: App,
    scheduler: Scheduler,
    overrides: OverrideQueue,
    replica: str | None,
    notifier: Notifier | None,
) -> HttpServer:
    """The daemon's HTTP server: probes, metrics, the admin API and the status page."""
    from jarvis.loop.admin import AdminService, lease_view
    from jarvis.telemetry.http import HttpServer
    from jarvis.telemetry.web.view import LeaderView

    async def ready() -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        ok = True
        try:
            await app.store.ping()
            checks["store"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            ok = False
            checks["store"] = str(exc)
        # A database that answers a ping can still refuse every write.
        if app.store.write_error is None:
            checks["store_writes"] = "ok"
        else:
            ok = False
            checks["store_writes"] = app.store.write_error
        try:
            await app.killswitch.read()
            checks["killswitch"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            ok = False
            checks["killswitch"] = str(exc)
        return ok, checks

    async def leader() -> LeaderView:
        if replica is None:
            return LeaderView(single_node=True)
        return await lease_view(app.store.engine, replica)

    admin = AdminService(
        app.killswitch,
        overrides=overrides,
        leader=leader,
        budgets_left=lambda: app.reconciler.budgets_remaining,
        resources=lambda: _observed(app),
        notifications=None if notifier is None else lambda: _incidents(notifier),
    )
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    reader = settings.read_token.get_secret_value() if settings.read_token else None
    return HttpServer(
        host=settings.http.host,
        port=settings.http_port,
        metrics=app.metrics,
        healthy=scheduler.healthy,
        ready=ready,
        admin=admin,
        admin_token=token,
        read_token=reader,
        redact=app.store.redactor.text,
        page=admin,
        budget=lambda: budget_view(settings, app),
        stripe_webhook=stripe_webhook(settings, app, scheduler.wake),
        unsubscribe=unsubscribe(settings, app),
        trusted_proxies=settings.http.trusted_proxies,
    )


def stripe_webhook(settings: Settings, app: App, wake: Callable[[], None]) -> WebhookBackend | None:
    """``POST /webhooks/stripe``, when Stripe is configured and its signing secret is set.

    The receiver writes to the database holding ``customers`` (Jarvis's own
    unless ``customers.database_url`` names another, whose engine it then owns).
    """
    section = settings.customers.stripe
    if not settings.customers.enabled or section is None:
        return None
    from jarvis.actuators.customers.billing import BillingLedger
    from jarvis.actuators.customers.stripe_billing import stripe_client
    from jarvis.actuators.customers.webhooks import StripeWebhooks
    from jarvis.config import ConfigError
    from jarvis.config.notify import secret
    from jarvis.loop.billing import BillingWebhook

    signing = secret(section.webhook_secret_env)
    if signing is None:
        return None
    key = secret(section.secret_key_env)
    if key is None:
        raise ConfigError(
            f"customers.stripe: environment variable {section.secret_key_env} is not set"
        )
    url = settings.customers.database_url
    engine = app.store.engine
    close = None
    if url is not None:
        from jarvis.sqlengine import async_engine

        engine = async_engine(url)
        close = engine.dispose
    receiver = StripeWebhooks(
        stripe_client(
            api_key=key.get_secret_value(), api_base=section.api_base, timeout=section.timeout
        ),
        BillingLedger(engine),
        secret=signing.get_secret_value(),
        clock=app.clock,
    )
    return BillingWebhook(
        receiver, app.store, clock=app.clock, wake=wake, database=engine.url, close=close
    )


def unsubscribe(settings: Settings, app: App) -> Unsubscribe | None:
    """``/unsubscribe`` when customer email has its secret; the opt-out goes to the sensor,
    and an outage names the database its table is on (as `jarvis.providers.customers`
    connects it)."""
    mail = settings.customers.email
    if mail is None:  # before the imports: a daemon that mails no customer loads no sensor
        return None
    from sqlalchemy.engine import make_url

    from jarvis.actuators.customers.sensor import CustomersActuator
    from jarvis.config.notify import secret
    from jarvis.store.engine import database_outage
    from jarvis.telemetry.unsubscribe import Unsubscribe

    signing = secret(mail.unsubscribe_secret_env)
    sensor = next((a for a in app.actuators if isinstance(a, CustomersActuator)), None)
    if signing is None or sensor is None:
        return None
    database = make_url(settings.customers.database_url or settings.database_url)
    return Unsubscribe(
        secret=signing.get_secret_value().encode(),
        opt_out=sensor.opt_out,
        outage=lambda exc: database_outage(database, exc),
    )


def budget_view(settings: Settings, app: App) -> BudgetView | None:
    """The month's spend against the budget, as the cost policy reads the last snapshot."""
    from jarvis.policies.budget import read_spend
    from jarvis.telemetry.web.view import BudgetView

    snapshot = app.reconciler.latest_snapshot
    if snapshot is None:
        return None
    cost = settings.cost
    spend = read_spend(snapshot, app.clock.now(), include_cloud=cost.include_cloud_spend)
    if spend is None:
        return None
    return BudgetView(
        month=spend.month,
        budget_usd=cost.monthly_budget_usd,
        spent_usd=spend.total_usd,
        forecast_usd=spend.forecast_usd,
    )


def _observed(app: App) -> list[str]:
    """The resources the last tick observed, by name: the override form's suggestions."""
    snapshot = app.reconciler.latest_snapshot
    return [] if snapshot is None else sorted(snapshot.resources)


def _incidents(notifier: Notifier) -> list[NotificationView]:
    """The notifier's open incidents, as the page's own type (telemetry imports no notify)."""
    from jarvis.telemetry.web.view import NotificationView

    return [
        NotificationView(i.channel, i.cause, i.provider, i.since, i.alerts, i.sent)
        for i in notifier.grouper.incidents()
    ]
