"""The reconciler hands each actuator the idempotency key of the action id it recorded."""

from __future__ import annotations

import pytest

from jarvis.loop.events import idempotency_key
from jarvis.model import Action, ResourceRef, Restart, Scale
from tests.fakes import FakeActuator, ProposeEach
from tests.loop.conftest import AppFactory

pytestmark = pytest.mark.anyio


async def test_the_actuator_receives_the_key_of_the_recorded_action_id(
    make_app: AppFactory, fleet: FakeActuator
) -> None:
    """Each apply gets idempotency_key(action id of its action.started event), one per action."""
    actions = [
        Action(ResourceRef("sim", "api"), Restart(), "scripted", "test"),
        Action(ResourceRef("sim", "web"), Scale(replicas=3), "scripted", "test"),
    ]
    app = await make_app([ProposeEach(actions)])

    await app.reconciler.tick()

    started = await app.store.events(kinds=["action.started"], limit=10)
    by_resource = {e.resource: e.action_id for e in started}
    expected = [idempotency_key(str(by_resource[str(a.target)])) for a in fleet.applied]
    assert fleet.keys == expected
    assert len(set(fleet.keys)) == 2


@pytest.mark.parametrize("name", ["web\x00x", "web\ud800x"], ids=["nul", "lone-surrogate"])
async def test_a_name_the_store_cannot_hold_as_it_is_gets_the_key_recovery_reads_back(
    make_app: AppFactory, fleet: FakeActuator, name: str
) -> None:
    """A NUL or a lone surrogate in a name neither stops the tick nor gives the provider a key
    other than the one recovery derives from the recorded action id."""
    fleet.add(name)
    app = await make_app([ProposeEach([Action(ResourceRef("sim", name), Restart(), "p", "r")])])

    report = await app.reconciler.tick()

    assert [d.outcome.ok for d in report.decisions if d.outcome is not None] == [True]
    (started,) = await app.store.events(kinds=["action.started"], limit=10)
    assert fleet.keys == [idempotency_key(str(started.action_id))]
