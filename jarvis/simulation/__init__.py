"""Deterministic simulation: the real loop, in virtual time, against a faulty simulated cloud.

`jarvis simulate` (`jarvis.cli.simulate`), the seed-sweep tests and the
benchmarks call `run_simulation` with settings from `simulation_settings`.
The pieces: ``faults`` (the seeded fault plan), ``provider`` (the simulated
cloud API and witness), ``llm`` (the simulated LLM platform: routes, usage and
spend against the budget), ``operator`` (kill-switch flips, answers to
escalations), ``invariants`` (the checker), ``tracking`` and ``report``.
"""

from jarvis.simulation.faults import ALL_FAULTS, Fault, FaultKind, parse_faults, plan_faults
from jarvis.simulation.harness import SimulationConfig, run_simulation, simulation_settings
from jarvis.simulation.invariants import (
    INVARIANTS,
    InvariantChecker,
    ProviderCall,
    Rules,
    Violation,
)
from jarvis.simulation.llm import SimulatedLlm
from jarvis.simulation.report import SimulationReport

__all__ = [
    "ALL_FAULTS",
    "INVARIANTS",
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
