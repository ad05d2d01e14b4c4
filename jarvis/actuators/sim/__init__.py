"""The simulated provider: the embedded default fleet and the simulation harness's world.

`SimulatedFleet` is the deterministic simulated cloud (``fleet``), its traffic
model lives in ``traffic``, and `SimulatedActuator` (``actuator``) is what the
reconcile loop calls. Import from here.
"""

from jarvis.actuators.sim.actuator import SimulatedActuator
from jarvis.actuators.sim.fleet import (
    BROKEN_DETAIL,
    CRASH_DETAIL,
    DEFAULT_SERVICE_NAMES,
    MAX_REPLICAS,
    MIN_REPLICAS,
    SimulatedFleet,
    service_names,
)

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
