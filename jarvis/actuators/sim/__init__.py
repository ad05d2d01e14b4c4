"""The simulated provider: the embedded default fleet and the simulation harness's world.

`SimulatedFleet` is the deterministic simulated cloud (``fleet``), one service's
state lives in ``service`` and what an action does to it in ``changes``, its
traffic model lives in ``traffic``, and `SimulatedActuator` (``actuator``) is
what the reconcile loop calls. Import from here.
"""

from jarvis.actuators.sim.actuator import SimulatedActuator
from jarvis.actuators.sim.fleet import (
    BROKEN_DETAIL,
    CRASH_DETAIL,
    DEFAULT_SERVICE_NAMES,
    SimulatedFleet,
    service_names,
)
from jarvis.actuators.sim.service import MAX_REPLICAS, MIN_REPLICAS

__all__ = [
    "BROKEN_DETAIL",
    "CRASH_DETAIL",
    "DEFAULT_SERVICE_NAMES",
    "MAX_REPLICAS",
    "MIN_REPLICAS",
    "SimulatedActuator",
    "SimulatedFleet",
    "service_names",
]
