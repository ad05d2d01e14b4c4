"""Inhibition through the notifier: a tripped provider breaker spares its escalations' pages."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jarvis.loop.events import breaker_alert
from tests.notify.conftest import Rig
from tests.notify.receivers import Receivers
from tests.notify.test_delivery import escalation, record

pytestmark = pytest.mark.anyio


async def test_a_tripped_provider_breaker_inhibits_that_providers_escalation_pages(
    rig: Rig, receivers: Receivers
) -> None:
    """Ten sim:// escalations behind an open sim breaker: the breaker is told, nothing pages.

    A k8s:// escalation at the same time still pages (``equal = ["provider"]``);
    once the breaker closes, a sim:// escalation still unresolved pages after all.
    """
    now = rig.clock.now()
    opened = breaker_alert(
        "t1", now, scope="provider", provider="sim", opened=True, failures=5, detail="held"
    )
    services = [f"sim://svc-{i}" for i in range(10)]
    await record(rig, opened, *(escalation(s, now) for s in services))
    await record(rig, escalation("k8s://prod/web", now))
    await rig.rounds(60, step=10.0)

    (page,) = receivers.triggers()
    assert page["payload"]["custom_details"]["resources"] == ["k8s://prod/web"]
    slack = [str(m["blocks"]) for m in receivers.slack]
    assert any("breaker:provider:sim" in m or "held" in m for m in slack)
    assert not any("sim://svc-" in m for m in slack)

    closed = breaker_alert(
        "t2",
        rig.clock.now(),
        scope="provider",
        provider="sim",
        opened=False,
        failures=0,
        detail="closed",
    )
    await record(rig, closed)
    await rig.rounds(60, step=10.0)
    assert rig.clock.now() - now > timedelta(minutes=5)
    assert len(receivers.triggers()) == 2
    assert sorted(receivers.triggers()[1]["payload"]["custom_details"]["resources"]) == services
