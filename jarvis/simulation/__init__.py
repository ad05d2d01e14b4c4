"""Deterministic simulation: the real loop, in virtual time, against a faulty simulated cloud.

`jarvis simulate` (`jarvis.cli.simulate`), the seed-sweep tests and the
benchmarks call `run_simulation` (``harness``) with settings from
`simulation_settings` (``run_config``). The pieces: ``run`` (what happens
around each tick), ``process_faults`` (Jarvis killed, Redis emptied, a second
process), ``faults`` (the seeded fault plan), ``provider`` (the
simulated cloud API and witness), ``llm`` and ``llm_routes`` (the simulated LLM
platform: routes, usage and spend against the budget), ``replicas`` and
``replica_link`` (several replicas electing a leader, for the replica faults), ``operator``
(kill-switch flips, answers to escalations), ``invariants`` (the checker, with
``invariant_records`` and ``invariant_bounds``), ``tracking`` and ``report``.
"""

from jarvis.simulation.faults import (
    ALL_FAULTS,
    DEFAULT_FAULTS,
    PROCESS_FAULTS,
    REPLICA_FAULTS,
    Fault,
    FaultKind,
    parse_faults,
    plan_faults,
)
from jarvis.simulation.harness import run_simulation
from jarvis.simulation.invariant_records import INVARIANTS, ProviderCall, Rules, Violation
from jarvis.simulation.invariants import InvariantChecker
from jarvis.simulation.llm import SimulatedLlm
from jarvis.simulation.report import SimulationReport
from jarvis.simulation.run_config import SimulationConfig, simulation_settings

__all__ = [
    "ALL_FAULTS",
    "DEFAULT_FAULTS",
    "INVARIANTS",
    "PROCESS_FAULTS",
    "REPLICA_FAULTS",
    "Fault",
    "FaultKind",
    "InvariantChecker",
    "ProviderCall",
    "Rules",
    "SimulatedLlm",
    "SimulationConfig",
    "SimulationReport",
    "Violation",
    "parse_faults",
    "plan_faults",
    "run_simulation",
    "simulation_settings",
]
