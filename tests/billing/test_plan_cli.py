"""`jarvis plan` shows which customer emails would go out, by customer id, and writes nothing."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from sqlalchemy import select

from jarvis.store import EventStore
from jarvis.store.customers import customers
from tests.billing.stripe_standin import API_KEY, StripeStandIn
from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.smtp_inbox import Inbox

pytestmark = pytest.mark.anyio

CONFIG = """
[simulated]
enabled = false

[[allowlist]]
provider = "customer"
resources = "*"
actions = ["create_billing_customer", "send_email", "grant_access"]

[customers]
enabled = true

[customers.stripe]
api_base = "{stripe}"

[customers.email]
host = "127.0.0.1"
port = {smtp}
sender = "hello@jarvis.test"
starttls = false
"""


async def _seed(url: str) -> list[object]:
    store = await EventStore.connect(url, spool_path=None)
    now = datetime.now(UTC)
    try:
        async with store.engine.begin() as connection:
            for customer_id, stripe_id in (("c1", None), ("c2", "cus_2")):
                await connection.execute(
                    customers.insert().values(
                        id=customer_id,
                        email=f"{customer_id}@customers.test",
                        plan="free",
                        signed_up_at=now,
                        stripe_customer_id=stripe_id,
                        marketing_opt_out=False,
                        dashboard_access=False,
                        updated_at=now,
                    )
                )
        async with store.engine.connect() as connection:
            return list((await connection.execute(select(customers))).all())
    finally:
        await store.aclose()


async def _rows(url: str) -> list[object]:
    store = await EventStore.connect(url, spool_path=None)
    try:
        async with store.engine.connect() as connection:
            return list((await connection.execute(select(customers))).all())
    finally:
        await store.aclose()


async def _jarvis(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `jarvis ARGS` without blocking the event loop."""
    with anyio.fail_after(120):
        done = await anyio.run_process(jarvis_argv(*args), cwd=cwd, env=env, check=False)
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


async def test_plan_lists_the_welcome_emails_by_customer_id_and_sends_nothing(
    tmp_path: Path, stripe_api: StripeStandIn, inbox: Inbox
) -> None:
    """c2 (billed, not welcomed) would get the welcome email; nothing is sent or written."""
    config = tmp_path / "jarvis.toml"
    config.write_text(CONFIG.format(stripe=stripe_api.url, smtp=inbox.port))
    env = jarvis_env(tmp_path, JARVIS_CONFIG=str(config), STRIPE_SECRET_KEY=API_KEY)
    before = await _seed(env["JARVIS_DATABASE_URL"])

    result = await _jarvis(tmp_path, env, "plan", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["decisions"]
    emails = [r for r in rows if r["action"] == "send_email"]
    assert [(r["resource"], r["params"], r["decision"]) for r in emails] == [
        ("customer://c2", '{"template": "welcome"}', "blocked: dry_run")
    ]
    assert "c2@customers.test" not in result.stdout
    assert stripe_api.calls == []
    assert inbox.messages == []
    assert await _rows(env["JARVIS_DATABASE_URL"]) == before
    listed = await _jarvis(tmp_path, env, "events", "--json")
    assert listed.stdout.strip() == ""


async def test_a_missing_stripe_key_is_one_line_and_exit_2(
    tmp_path: Path, stripe_api: StripeStandIn, inbox: Inbox
) -> None:
    """The secret key comes from the environment only; without it, a clear error."""
    config = tmp_path / "jarvis.toml"
    config.write_text(CONFIG.format(stripe=stripe_api.url, smtp=inbox.port))
    env = jarvis_env(tmp_path, JARVIS_CONFIG=str(config))
    env.pop("STRIPE_SECRET_KEY", None)
    result = await _jarvis(tmp_path, env, "plan")
    assert result.returncode == 2
    assert "STRIPE_SECRET_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr


async def test_plan_lists_dunning_emails_and_revocations_by_customer_id(
    tmp_path: Path, stripe_api: StripeStandIn, inbox: Inbox
) -> None:
    """A failed invoice and a canceled subscription show as dry-run decisions, by id only."""
    config = tmp_path / "jarvis.toml"
    config.write_text(
        CONFIG.format(stripe=stripe_api.url, smtp=inbox.port).replace(
            '"grant_access"]', '"grant_access", "revoke_access"]'
        )
    )
    env = jarvis_env(tmp_path, JARVIS_CONFIG=str(config), STRIPE_SECRET_KEY=API_KEY)
    store = await EventStore.connect(env["JARVIS_DATABASE_URL"], spool_path=None)
    now = datetime.now(UTC)
    onboarded = {
        "plan": "pro",
        "signed_up_at": now,
        "marketing_opt_out": False,
        "dashboard_access": True,
        "welcomed_at": now,
        "updated_at": now,
    }
    try:
        async with store.engine.begin() as connection:
            await connection.execute(
                customers.insert().values(
                    id="d1",
                    email="d1@customers.test",
                    stripe_customer_id="cus_d1",
                    subscription_status="past_due",
                    unpaid_invoice_id="in_1",
                    unpaid_invoice_url="https://invoice.stripe.test/i/in_1",
                    **onboarded,
                )
            )
            await connection.execute(
                customers.insert().values(
                    id="d2",
                    email="d2@customers.test",
                    stripe_customer_id="cus_d2",
                    subscription_status="canceled",
                    **onboarded,
                )
            )
    finally:
        await store.aclose()

    result = await _jarvis(tmp_path, env, "plan", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["decisions"]
    assert sorted((r["resource"], r["action"], r["params"], r["decision"]) for r in rows) == [
        ("customer://d1", "send_email", '{"template": "payment_failed"}', "blocked: dry_run"),
        ("customer://d2", "revoke_access", "", "blocked: dry_run"),
    ]
    assert "customers.test" not in result.stdout
    assert "invoice.stripe.test" not in result.stdout
    assert inbox.messages == []


async def test_plan_lists_the_win_back_steps_by_customer_id_and_sends_nothing(
    tmp_path: Path, stripe_api: StripeStandIn, inbox: Inbox
) -> None:
    """Two quiet customers: one would get a discount, the other its win-back email; dry run."""
    config = tmp_path / "jarvis.toml"
    allowed = '"grant_access"]'
    text = CONFIG.format(stripe=stripe_api.url, smtp=inbox.port)
    config.write_text(text.replace(allowed, '"grant_access", "create_discount"]'))
    env = jarvis_env(tmp_path, JARVIS_CONFIG=str(config), STRIPE_SECRET_KEY=API_KEY)
    url = env["JARVIS_DATABASE_URL"]
    store = await EventStore.connect(url, spool_path=None)
    now = datetime.now(UTC)
    try:
        async with store.engine.begin() as connection:
            for customer_id, offered in (("q1", None), ("q2", now)):
                await connection.execute(
                    customers.insert().values(
                        id=customer_id,
                        email=f"{customer_id}@customers.test",
                        plan="pro",
                        signed_up_at=now - timedelta(days=90),
                        last_active_at=now - timedelta(days=40),
                        stripe_customer_id=f"cus_{customer_id}",
                        welcomed_at=now - timedelta(days=90),
                        dashboard_access=True,
                        marketing_opt_out=False,
                        discount_code=None if offered is None else "BACK-X",
                        discount_at=offered,
                        updated_at=now,
                    )
                )
    finally:
        await store.aclose()
    before = await _rows(url)

    result = await _jarvis(tmp_path, env, "plan", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["decisions"]
    assert [(r["resource"], r["action"], r["params"], r["decision"]) for r in rows] == [
        (
            "customer://q1",
            "create_discount",
            '{"percent_off": 20, "valid_days": 14}',
            "blocked: dry_run",
        ),
        ("customer://q2", "send_email", '{"template": "win_back"}', "blocked: dry_run"),
    ]
    assert "@customers.test" not in result.stdout
    assert "BACK-X" not in result.stdout
    assert stripe_api.calls == []
    assert inbox.messages == []
    assert await _rows(url) == before


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (
            '[customers.source]\nurl = "postgresql+asyncpg://x/y"\ntable = "users"\n'
            'columns = { id = "id", email = "email" }\n',
            "customers.source",
        ),
        (
            "[customers.churn]\nmedium_days = 40\n",
            "medium_days",
        ),
    ],
)
async def test_a_bad_churn_or_source_setting_is_exit_2_naming_the_key(
    tmp_path: Path, stripe_api: StripeStandIn, inbox: Inbox, extra: str, named: str
) -> None:
    """`jarvis plan` refuses a bad mapping or threshold in one line, exit 2, no traceback."""
    config = tmp_path / "jarvis.toml"
    config.write_text(CONFIG.format(stripe=stripe_api.url, smtp=inbox.port) + "\n" + extra)
    env = jarvis_env(tmp_path, JARVIS_CONFIG=str(config), STRIPE_SECRET_KEY=API_KEY)
    result = await _jarvis(tmp_path, env, "plan")
    assert result.returncode == 2
    assert named in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_token_link_without_its_secret_is_exit_2_naming_the_variable(
    tmp_path: Path, stripe_api: StripeStandIn, inbox: Inbox
) -> None:
    """``{token}`` in the unsubscribe URL needs UNSUBSCRIBE_SECRET in the environment."""
    config = tmp_path / "jarvis.toml"
    text = CONFIG.format(stripe=stripe_api.url, smtp=inbox.port)
    config.write_text(text + 'unsubscribe_url = "https://x.test/u?t={token}"\n')
    env = jarvis_env(tmp_path, JARVIS_CONFIG=str(config), STRIPE_SECRET_KEY=API_KEY)
    env.pop("UNSUBSCRIBE_SECRET", None)
    result = await _jarvis(tmp_path, env, "plan")
    assert result.returncode == 2
    assert "UNSUBSCRIBE_SECRET" in result.stderr
    assert "customers.email.unsubscribe_url" in result.stderr
