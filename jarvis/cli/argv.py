"""The command line before Typer parses it, and the help it prints.

`jarvis.cli.main` calls both. `hoist_config` lets ``--config`` follow the
subcommand (``jarvis config check --config FILE`` is what people type) by
moving it in front, where the root command reads it: one option on the
root rather than the same option repeated on every command. `quiet_flags`
drops the ``<bool>`` Typer prints after plain flags such as ``--dry-run``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer

CONFIG_OPTIONS = ("--config", "-c")


def hoist_config(args: Sequence[str]) -> list[str]:
    """``args`` with every ``--config FILE`` / ``-c FILE`` / ``--config=FILE`` moved to the front.

    Nothing after ``--`` moves; the last one given wins, as on the root.
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in CONFIG_OPTIONS and i + 1 < len(args):
            front[:] = [arg, args[i + 1]]
            i += 2
            continue
        if arg.startswith("--config="):
            front[:] = [arg]
        else:
            rest.append(arg)
        i += 1
    return front + rest


def quiet_flags(command: Any, args: Sequence[str]) -> None:
    """Blank the type label of every flag on the path ``args`` names through the command tree.

    Only that path: building the help of every command would import them all.
    """
    names = [
        arg
        for i, arg in enumerate(args)
        if not arg.startswith("-") and (i == 0 or args[i - 1] not in CONFIG_OPTIONS)
    ]
    node = command
    while True:
        for param in [*node.params, node.get_help_option(typer.Context(node))]:
            if param is not None and getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        commands = getattr(node, "commands", None)
        if not commands or not names or names[0] not in commands:
            return
        node = commands[names.pop(0)]
