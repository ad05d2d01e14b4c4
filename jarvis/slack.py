"""Slack's message text, for everything Jarvis posts there: alerts (`jarvis.notify`) and
the daily report's summary (`jarvis.report`).

A layer of its own below both, like `jarvis.mail` (it imports nothing of
Jarvis): the notifier and the report are sibling layers and may not import
each other, and each must make outside text safe for Slack in the same way.
"""

from __future__ import annotations

__all__ = ["mrkdwn"]


def mrkdwn(text: str) -> str:
    """Outside text as Slack shows it literally: ``&``, ``<`` and ``>`` escaped.

    Slack parses ``<!channel>``, ``<@U…>`` and ``<url|label>`` in mrkdwn text
    (and in a message's top-level ``text``); a reason or a resource name
    carrying one would ping the channel or show a disguised link.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
