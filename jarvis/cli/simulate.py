"""`jarvis simulate`: days of autonomous operation against a faulty simulated cloud, in seconds.

Registered by `jarvis.cli` as a command. It loads the configuration's
policies and guards (`jarvis.simulation.simulation_settings`), runs
`run_simulation` on a private in-memory store (or the database
``--database-url`` names) and the simulated fleet, and prints the report
(rich on a terminal, `--json` for one JSON object); a progress bar shows
only on a terminal. Exit status: 0 when every invariant
held, 3 at the first violation (the seed is printed to rerun it), 2 for bad
options or configuration, 1 when the store fails.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from jarvis.cli.common import EXIT_CONFIG, EXIT_VIOLATION, State, fail, print_table, run

if TYPE_CHECKING:
    from rich.console import Console


def simulate(
    ctx: typer.Context,
    days: Annotated[
        float,
        typer.Option("--days", min=0.001, max=3650, help="Simulated days (ten years at most)."),
    ] = 1.0,
    services: Annotated[
        int, typer.Option("--services", min=1, max=100_000, help="Simulated services.")
    ] = 50,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same run.")] = 1,
    faults: Annotated[
        str,
        typer.Option(
            "--faults",
            help="default (every fault but the process and replica faults), all (adds the"
            " process faults), none, or a comma-separated list of fault kinds; the replica"
            " faults (leader_crash, leader_pause, replica_partition) run three replicas,"
            " only when named.",
        ),
    ] = "default",
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the report here as JSON.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    customers: Annotated[
        int,
        typer.Option(
            "--customers",
            min=0,
            max=1_000_000,
            help="Simulated customers (half there before the run, half signing up), onboarded,"
            " dunned and won back by the real policies (default: none).",
        ),
    ] = 0,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Record the run in this SQLite or PostgreSQL database"
            " (default: an in-memory store).",
        ),
    ] = None,
) -> None:
    """Simulate autonomous operation in virtual time, checking the safety invariants every tick."""
    # Imported here: `jarvis run` should not pay for the simulation at start-up.
    from jarvis.config import ConfigError
    from jarvis.simulation import (
        PROCESS_FAULTS,
        REPLICA_FAULTS,
        SimulationConfig,
        parse_faults,
        run_simulation,
        simulation_settings,
    )
    from jarvis.telemetry.logging import configure_logging

    try:
        kinds = parse_faults(faults)
    except ValueError as exc:
        fail(str(exc), EXIT_CONFIG, as_json=as_json)
    if database_url is not None and REPLICA_FAULTS.intersection(kinds):
        fail(
            "replica faults run on the in-memory store only; drop --database-url",
            EXIT_CONFIG,
            as_json=as_json,
        )
    if REPLICA_FAULTS.intersection(kinds) and PROCESS_FAULTS.intersection(kinds):
        fail(
            "replica faults and process faults (crash_in_outage, redis_restart,"
            " second_process) do not run together; name one family",
            EXIT_CONFIG,
            as_json=as_json,
        )
    state = ctx.obj if isinstance(ctx.obj, State) else State()
    config = SimulationConfig(
        seed=seed,
        days=days,
        services=services,
        faults=kinds,
        database_url=database_url,
        customers=customers,
    )
    # The reconciler logs every action; a month of them would drown the report.
    configure_logging("error", "json", stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="jarvis-sim-") as scratch:
        try:
            settings = simulation_settings(
                state.config_path,
                spool_path=Path(scratch) / "spool.jsonl",
                customers=customers > 0,
            )
        except ConfigError as exc:
            fail(str(exc), EXIT_CONFIG, as_json=as_json)
        from rich.console import Console

        # Lines never wrapped at 80 columns in a pipe, so a grep finds a whole one; the
        # tables keep their own layout (`print_table`).
        console = Console(soft_wrap=True)
        show_progress = console.is_terminal and not as_json
        with _progress(console, show_progress) as callback:
            result = run(
                lambda: run_simulation(settings, config, progress=callback), as_json=as_json
            )
    if report is not None:
        result.write(report)
    if as_json:
        sys.stdout.write(json.dumps(result.as_dict(), sort_keys=True) + "\n")
    else:
        result.render(console, lambda table: print_table(table, console))
    if not result.ok:
        first = result.violations[0]
        fail(
            f"invariant {first.invariant} violated: {first.message}; "
            f"reproduce with --seed {seed} --days {days:g} --services {services} --faults {faults}",
            EXIT_VIOLATION,
        )


class _progress:  # noqa: N801 -- used like a function, as a context manager
    """A rich progress bar fed by the harness's callback, or nothing off a terminal."""

    def __init__(self, console: Console, enabled: bool) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = (
            Progress(
                TextColumn("simulating"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            if enabled
            else None
        )

    def __enter__(self) -> Callable[[float, float], None] | None:
        bar = self._bar
        if bar is None:
            return None
        bar.start()
        task = bar.add_task("simulate", total=1.0)

        def update(done: float, total: float) -> None:
            bar.update(task, completed=done, total=total)

        return update

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
