"""The `Actuator` protocol: the only way Jarvis reads or changes resources.

The reconciler calls `observe()` on every actuator concurrently each tick and
`apply()` on the actuator whose ``provider`` owns an action's target. Actuators
never decide; they translate between a provider's API and `jarvis.model`.
Blocking SDKs run in worker threads through `run_blocking`, behind a capacity
limiter the actuator owns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar, runtime_checkable

import anyio
import anyio.to_thread

from jarvis.model import Action, ErrorKind, Outcome, ResourceState

T = TypeVar("T")


class ActuatorError(Exception):
    """A provider call failed. ``kind`` says whether retrying can help."""

    def __init__(
        self, message: str, *, kind: ErrorKind = ErrorKind.TEMPORARY, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code

    def outcome(self) -> Outcome:
        return Outcome.failure(str(self), kind=self.kind, code=self.code)


@runtime_checkable
class Actuator(Protocol):
    """A provider adapter. ``provider`` is the URI scheme of the resources it owns."""

    @property
    def name(self) -> str: ...

    @property
    def provider(self) -> str: ...

    @property
    def action_kinds(self) -> frozenset[str]:
        """The names of the action kinds this actuator applies (``Action.kind``)."""
        ...

    async def observe(self) -> Sequence[ResourceState]:
        """Read the current state of every managed resource.

        Raises ActuatorError (or any exception) when the provider cannot be
        read; the reconciler records it as `observe.failed` and goes on.
        """
        ...

    async def apply(self, action: Action, key: str) -> Outcome:
        """Apply one action and report the outcome; never raises for provider errors.

        ``key`` is the action's idempotency key (`jarvis.loop.events.idempotency_key`):
        the same for every attempt of one action id, retries inside this call
        and replays alike. Where the provider can, the actuator sends it or
        records it with the change, and answers success without changing
        anything when the change with this key was already made.
        """
        ...

    async def aclose(self) -> None:
        """Release clients and connections."""
        ...


async def run_blocking(func: Callable[[], T], limiter: anyio.CapacityLimiter) -> T:
    """Run a blocking SDK call in a worker thread, within the actuator's limit.

    The thread is abandoned (not killed) when the caller is cancelled, so a
    timeout around an observe or apply returns promptly.
    """
    return await anyio.to_thread.run_sync(func, limiter=limiter, abandon_on_cancel=True)
