"""A rollout's verification when the wall clock steps back in the middle of it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kubernetes import client

from jarvis.actuators.kubernetes.actuator import KubernetesActuator
from jarvis.config.kubernetes import KubernetesSettings
from jarvis.loop.clock import VirtualClock
from jarvis.model import Restart
from tests.actions import new_key
from tests.kubernetes.fake_apiserver import FakeApiServer
from tests.kubernetes.test_apply import action

pytestmark = pytest.mark.anyio


class StepsBackAtFirstSleep(VirtualClock):
    """Virtual time whose wall clock steps back an hour at the first sleep (the first
    wait between two looks at the rollout); its `monotonic` does not step."""

    def __init__(self) -> None:
        super().__init__()
        self.stepped = False

    async def sleep(self, seconds: float) -> None:
        if not self.stepped:
            self.stepped = True
            self.jump(self.now() - timedelta(hours=1))
        # Polling on for the hour the wall clock went back would take minutes of real time.
        assert self.monotonic() < 60, "still verifying a minute in"
        await super().sleep(seconds)


async def test_a_step_back_does_not_stretch_a_rollouts_verification(
    apiserver: FakeApiServer, settings: KubernetesSettings, api_client: client.ApiClient
) -> None:
    """Verification ends after ``verify_seconds`` of monotonic time (and its last poll),
    not an hour later, when the loop's apply timeout would have cut it."""
    apiserver.cluster.fail_image("registry.local/app:v1", "ContainerCreating")
    apiserver.cluster.add_deployment("default", "producer")
    clock = StepsBackAtFirstSleep()
    actuator = KubernetesActuator.from_settings(settings, clock=clock, api_client=api_client)

    outcome = await actuator.apply(action(Restart()), new_key())

    assert outcome.ok, outcome.detail
    assert "still in progress after 10s" in outcome.detail
    assert clock.stepped
    assert clock.monotonic() <= settings.verify_seconds + settings.verify_poll_seconds
