"""`observe_all`: which reads get a task of their own, and what every read keeps.

Sensors that only read process memory (`in_process`) are read in the tick's
own task; reads that wait on I/O still overlap one another. Either way each
read keeps its time limit, its errors and its place in the merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import anyio
import pytest

from jarvis.actuators.base import ActuatorError, Scope, Sensor, in_process
from jarvis.loop.observe import observe_all
from jarvis.model import Health, ResourceRef, ResourceState
from jarvis.telemetry.metrics import Metrics

pytestmark = pytest.mark.anyio


AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _state(uri: str, version: str) -> ResourceState:
    ref = ResourceRef.parse(uri)
    return ResourceState(ref=ref, health=Health.HEALTHY, observed_at=AT, version=version)


class _Reader:
    """Returns its states, noting the task that read it; ``wait``/``signal`` make two overlap."""

    def __init__(
        self,
        name: str,
        states: Sequence[ResourceState] = (),
        *,
        wait: anyio.Event | None = None,
        signal: anyio.Event | None = None,
        hang: bool = False,
        fail: bool = False,
    ) -> None:
        self.name = name
        self.provider = "sim"
        self._states = list(states)
        self._wait, self._signal, self._hang, self._fail = wait, signal, hang, fail
        self.task: int | None = None

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        self.task = anyio.get_current_task().id
        await anyio.lowlevel.checkpoint()
        if self._signal is not None:
            self._signal.set()
        if self._wait is not None:
            await self._wait.wait()
        if self._hang:
            await anyio.sleep_forever()
        if self._fail:
            raise ActuatorError("Rate exceeded", code="Throttling")
        return self._states

    async def aclose(self) -> None:
        """Nothing to release."""


class _Local(_Reader):
    in_process = True


async def test_in_process_sensors_are_read_in_the_callers_task() -> None:
    me = anyio.get_current_task().id
    local = [_Local("a", [_state("sim://a", "1")]), _Local("b", [_state("sim://b", "1")])]
    remote = _Reader("c", [_state("sim://c", "1")])
    resources, errors, _, _ = await observe_all([local[0], remote, local[1]], 5.0, Metrics())
    assert errors == {}
    assert sorted(resources) == ["sim://a", "sim://b", "sim://c"]
    # With one sensor doing I/O there is nothing to overlap: no task is spawned.
    assert [sensor.task for sensor in [*local, remote]] == [me, me, me]


async def test_reads_that_wait_on_io_still_overlap() -> None:
    me = anyio.get_current_task().id
    first_read, second_read = anyio.Event(), anyio.Event()
    # Each waits for the other to have started: only concurrent reads finish.
    one = _Reader("one", [_state("sim://one", "1")], wait=second_read, signal=first_read)
    two = _Reader("two", [_state("sim://two", "1")], wait=first_read, signal=second_read)
    local = _Local("local", [_state("sim://local", "1")])
    with anyio.fail_after(30):
        resources, errors, _, _ = await observe_all([one, local, two], 5.0, Metrics())
    assert errors == {}
    assert sorted(resources) == ["sim://local", "sim://one", "sim://two"]
    assert one.task != me
    assert local.task == me


async def test_an_in_process_sensor_keeps_its_time_limit_and_its_errors() -> None:
    hung = _Local("hung", hang=True)
    failing = _Local("failing", fail=True)
    fine = _Local("fine", [_state("sim://fine", "1")])
    resources, errors, _, _ = await observe_all([hung, failing, fine], 0.05, Metrics())
    assert errors == {
        "hung": "observe timed out after 0.05s",
        "failing": "Throttling: Rate exceeded",
    }
    assert list(resources) == ["sim://fine"]


@pytest.mark.parametrize("local_first", [True, False])
async def test_a_later_sensor_wins_whatever_order_they_are_read_in(local_first: bool) -> None:
    local = _Local("local", [_state("sim://same", "local")])
    remote = _Reader("remote", [_state("sim://same", "remote")])
    other = _Reader("other")
    order: list[Sensor] = [local, remote, other] if local_first else [remote, other, local]
    resources, _, _, _ = await observe_all(order, 5.0, Metrics())
    assert resources["sim://same"].version == ("remote" if local_first else "local")


def test_only_a_true_in_process_counts() -> None:
    class Says:
        def __init__(self, value: object) -> None:
            self.in_process = value

    assert in_process(_Local("x"))
    assert not in_process(_Reader("x"))
    assert not in_process(Says("yes"))  # type: ignore[arg-type]
    assert not in_process(Says(1))  # type: ignore[arg-type]
