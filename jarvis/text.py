"""Outside text made safe to print on a terminal: one rule for the CLI and the daily report.

A layer of its own at the bottom (it imports nothing of Jarvis), so `jarvis.cli`
can show an error without loading the model, and `jarvis.report.markdown`
renders what the CLI prints by the same rule.
"""

from __future__ import annotations

import re

__all__ = ["inert"]

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
