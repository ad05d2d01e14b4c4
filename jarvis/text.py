"""Outside text made safe to print on a terminal, or to paste into one: one rule for the
CLI, the daily report, the guard's reasons and the notifications.

A layer of its own at the bottom (it imports nothing of Jarvis), so `jarvis.cli`
can show an error without loading the model, and `jarvis.report.markdown`
renders what the CLI prints by the same rule.
"""

from __future__ import annotations

import re
import shlex

__all__ = ["command", "inert", "one_line"]

# Control characters (C0, DEL, C1) and the bidi controls that reorder what follows.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def inert(text: str) -> str:
    """``text`` with each control or bidi character shown as its escape (``\\n``, ``\\u202e``).

    Resource names and reasons come from providers and operators: raw, a newline
    broke a table row or forged a line of `jarvis events`, an escape sequence
    retitled or cleared the terminal of whoever printed it, and U+202E showed
    the rest of a line reversed.
    """
    return _UNSAFE.sub(lambda match: repr(match.group())[1:-1], text)


def one_line(text: str) -> str:
    """Outside text (an error's, a server's, a provider's) as one line for a log: its
    whitespace, line breaks included, collapsed to single spaces, and every other control
    or bidi character shown as its escape (`inert`)."""
    return inert(" ".join(text.split()))


def command(*words: object) -> str:
    """A command line to paste into a shell, each word quoted only if it needs it.

    The commands Jarvis suggests (``jarvis retries reset RESOURCE`` in a guard's reason,
    a notification, an error) carry outside names: quoted, a name with a space, ``;``
    or ``$(...)`` is one argument to the command, not more shell; a name without such
    characters (``ecs://prod/web``) reads as written.
    """
    return " ".join(shlex.quote(str(word)) for word in words)
