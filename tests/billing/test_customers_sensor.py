"""The customers sensor reads only what changed since its last read, and records only changes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from jarvis.actuators.customers.sensor import CustomersActuator
from jarvis.model import (
    CUSTOMER_KIND,
    CUSTOMER_SCHEME,
    Action,
    ErrorKind,
    EventKind,
    GrantAccess,
    ResourceRef,
    RevokeAccess,
)
from jarvis.store.customers import customers
from tests.billing.conftest import sign_up

pytestmark = pytest.mark.anyio


def _sensor(app: Any) -> CustomersActuator:
    found = [a for a in app.actuators if isinstance(a, CustomersActuator)]
    assert len(found) == 1
    return found[0]


async def test_an_unchanged_table_costs_no_rows_and_one_change_one_event(
    make_app: Any, clock: Any
) -> None:
    """After the first read, a tick reads only rows stamped since; one upgrade, one event."""
    app = await make_app(allowlist=[])  # observe only: nothing is applied
    for index in range(50):
        await sign_up(app, f"c{index}", clock.now())
    sensor = _sensor(app)
    await app.reconciler.tick()
    assert sensor.rows_read == 50
    clock.advance(30)
    await app.reconciler.tick()
    assert sensor.rows_read == 50  # stamped within the lag (1 s) of the previous read
    clock.advance(30)
    await app.reconciler.tick()
    assert sensor.rows_read == 0
    clock.advance(30)
    async with app.store.engine.begin() as connection:
        await connection.execute(
            update(customers)
            .where(customers.c.id == "c7")
            .values(plan="pro", updated_at=clock.now())
        )
    await app.reconciler.tick()
    assert sensor.rows_read == 1
    clock.advance(30)
    await app.reconciler.tick()
    assert sensor.rows_read == 1  # within the lag of the previous read: once more
    clock.advance(30)
    await app.reconciler.tick()
    assert sensor.rows_read == 0
    changed = await app.store.events(kinds=[EventKind.RESOURCE_CHANGED], limit=1000)
    pro = [e for e in changed if e.resource == "customer://c7"]
    assert [e.payload["attributes"]["plan"] for e in pro] == ["free", "pro"]
    assert len(changed) == 51
    assert all("@" not in str(e.payload) for e in changed)
    assert timedelta(0) <= clock.now() - pro[-1].ts


async def test_a_row_stamped_before_a_read_and_committed_after_it_is_read_by_the_next(
    make_app: Any, clock: Any
) -> None:
    """What the lag (1 s here) is for: a writer stamps its row, the sensor reads, the row commits.

    ``c`` is stamped 0.2 s before the first read and committed before it; ``b``
    is stamped 0.5 s before it and committed after. Reading on from the newest
    stamp seen (``c``'s) would skip ``b`` for good.
    """
    app = await make_app(allowlist=[])
    read_at = clock.now()
    await sign_up(app, "c", read_at - timedelta(seconds=0.2))
    sensor = _sensor(app)
    first = await app.reconciler.tick()
    assert sorted(first.snapshot.resources) == ["customer://c"]
    await sign_up(app, "b", read_at - timedelta(seconds=0.5))
    clock.advance(30)
    second = await app.reconciler.tick()
    assert sorted(second.snapshot.resources) == ["customer://b", "customer://c"]
    assert sensor.rows_read == 2  # b, and c again: both within the lag of the first read


async def test_a_large_table_is_first_read_in_batches_over_several_ticks(
    make_app: Any, clock: Any
) -> None:
    """With a batch of 20, 50 customers sharing one stamp are read 20, 20, 10, then none."""
    app = await make_app(allowlist=[], customers_read_batch=20)
    for index in range(50):
        await sign_up(app, f"c{index:02d}", clock.now())
    clock.advance(60)
    sensor = _sensor(app)
    read: list[int] = []
    seen: list[int] = []
    catching_up: list[bool] = []
    for _ in range(5):
        report = await app.reconciler.tick()
        read.append(sensor.rows_read)
        seen.append(len(report.snapshot.resources))
        catching_up.append(sensor.catching_up)
        clock.advance(30)
    assert read == [20, 20, 10, 0, 0]
    assert seen == [20, 40, 50, 50, 50]
    assert catching_up == [True, True, False, False, False]


async def test_revoking_access_of_a_customer_deleted_since_observe_is_a_terminal_failure(
    make_app: Any, clock: Any
) -> None:
    """Access changed on a row deleted between observe and apply fails as not found, not success."""
    app = await make_app(allowlist=[])
    await sign_up(app, "gone", clock.now(), dashboard_access=True)
    await app.reconciler.tick()
    async with app.store.engine.begin() as connection:
        await connection.execute(delete(customers).where(customers.c.id == "gone"))
    action = Action(
        target=ResourceRef(CUSTOMER_SCHEME, "gone", kind=CUSTOMER_KIND),
        params=RevokeAccess(),
        policy="dunning",
        reason="subscription canceled",
    )
    outcome = await _sensor(app).apply(action, "key-1")
    assert (outcome.ok, outcome.error_kind, outcome.error_code) == (
        False,
        ErrorKind.TERMINAL,
        "NotFound",
    )


async def _access(app: Any, customer_id: str) -> bool:
    async with app.store.engine.connect() as connection:
        result = await connection.execute(
            select(customers.c.dashboard_access).where(customers.c.id == customer_id)
        )
        return bool(result.scalar_one())


async def test_access_follows_the_subscription_as_it_is_when_applied(
    make_app: Any, clock: Any
) -> None:
    """A renewal (or a cancellation) landing between observe and apply: the row's status wins."""
    app = await make_app(allowlist=[])
    await sign_up(app, "renewed", clock.now(), dashboard_access=True, subscription_status="unpaid")
    await sign_up(app, "left", clock.now(), dashboard_access=False, subscription_status="active")
    await app.reconciler.tick()
    async with app.store.engine.begin() as connection:
        for customer_id, status in (("renewed", "active"), ("left", "canceled")):
            await connection.execute(
                update(customers)
                .where(customers.c.id == customer_id)
                .values(subscription_status=status)
            )
    for customer_id, params in (("renewed", RevokeAccess()), ("left", GrantAccess())):
        action = Action(
            target=ResourceRef(CUSTOMER_SCHEME, customer_id, kind=CUSTOMER_KIND),
            params=params,
            policy="dunning",
            reason="as observed",
        )
        outcome = await _sensor(app).apply(action, f"key-{customer_id}")
        assert outcome.ok
        assert outcome.detail.startswith("not ")
    assert (await _access(app, "renewed"), await _access(app, "left")) == (True, False)
