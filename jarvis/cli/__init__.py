"""The `jarvis` command: the operator's entry point, on top of everything else.

Every command loads settings first: a bad configuration prints which key is
wrong and exits with status 2 before anything starts. Store failures print one
clear line: exit 1 when the database did not answer or kept the command
waiting (it may work later), 2 when it or a file Jarvis keeps refused this
process (a privilege, a read-only database, a file in the way, a schema to
migrate): README, "Exit statuses", and `jarvis.cli.common`. Read
commands take ``--json`` and then print one JSON object per line; any
``--json`` command that fails prints ``{"error": LINE}`` (`common.fail`).
"""

from __future__ import annotations

import sys
import warnings
from typing import Annotated

import typer

from jarvis.cli import (
    budgets,
    commands,
    daemon,
    heap,
    operator,
    override,
    report,
    silence,
    simulate,
    status,
    ticks,
)
from jarvis.cli.argv import hoist_config, quiet_flags
from jarvis.cli.common import State, command_group
from jarvis.cli.init import init_if_pid1

app = command_group(
    "Jarvis: an autonomous control plane with a kill switch.",
    name="jarvis",
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option(
            "--config", "-c", help="TOML config file (default: $JARVIS_CONFIG).", show_default=False
        ),
    ] = None,
) -> None:
    ctx.obj = State(config_path=config)


app.command("run")(daemon.run)
app.command("tick")(ticks.tick)
app.command("plan")(ticks.plan)
app.command("events")(commands.events)
app.command("status")(status.status)
app.command("deploy")(override.deploy)
app.command("restart")(override.restart)
app.command("rollback")(override.rollback)
app.command("scale")(override.scale)
app.command("start")(override.start)
app.command("stop")(override.stop)
app.command("simulate")(simulate.simulate)
app.add_typer(operator.killswitch_app, name="killswitch")
app.add_typer(operator.retries_app, name="retries")
app.add_typer(silence.silence_app, name="silence")
app.add_typer(silence.notifications_app, name="notifications")
app.command("budgets")(budgets.budgets)
app.command("report")(report.report)
app.add_typer(commands.db_app, name="db")
app.add_typer(commands.config_app, name="config")


def quiet_dated_notices() -> None:
    """Leave out of stderr the Google SDK's notice that this Python nears its end of life.

    google.api_core prints it at import from a date on, 90 days before the end (Python
    3.11, the image's: from 2027-07-26), above the one line a refusal prints, in every
    command that loads the Cloud Run SDK. It is for whoever builds the image, not for the
    operator running a command; the CHANGELOG says so.
    """
    warnings.filterwarnings(
        "ignore", category=FutureWarning, module=r"google\.api_core\._python_version_support"
    )


def main() -> None:
    quiet_dated_notices()
    init_if_pid1()
    heap.pause()  # until the command's start-up is done: `jarvis.cli.heap`
    args = hoist_config(sys.argv[1:])
    command = typer.main.get_command(app)
    quiet_flags(command, args)
    command(args=args, prog_name="jarvis")


if __name__ == "__main__":  # pragma: no cover
    main()
