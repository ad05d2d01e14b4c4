"""The loopback Slack and PagerDuty refuse what the real APIs document as invalid."""

from __future__ import annotations

from typing import Any

from tests.notify.receivers import pagerduty_errors, slack_errors

KEY = "K" * 32


def test_slack_refuses_a_header_longer_than_150_characters_and_unknown_blocks() -> None:
    """Block Kit limits: header text 1..150 plain_text, known block types, 50 blocks."""
    ok: dict[str, Any] = {
        "text": "t",
        "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x"}}],
    }
    assert slack_errors(ok) == []
    long_header = {
        "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]
    }
    assert slack_errors(long_header)
    assert slack_errors({"blocks": [{"type": "banner"}]})
    assert slack_errors({"blocks": [{"type": "divider"}] * 51})
    assert slack_errors({})


def test_pagerduty_refuses_a_trigger_without_summary_source_or_a_known_severity() -> None:
    """Events v2: 32-character routing key, a known action, and a full payload to trigger."""
    good = {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "d",
        "payload": {"summary": "s", "source": "jarvis", "severity": "critical"},
    }
    assert pagerduty_errors(good) == []
    assert pagerduty_errors({**good, "routing_key": "short"})
    assert pagerduty_errors({**good, "event_action": "page"})
    assert pagerduty_errors({**good, "payload": {"summary": "s", "source": "j", "severity": "bad"}})
    assert pagerduty_errors({**good, "payload": {"source": "j", "severity": "info"}})
    assert pagerduty_errors({"routing_key": KEY, "event_action": "resolve"})
    assert pagerduty_errors({"routing_key": KEY, "event_action": "resolve", "dedup_key": "d"}) == []
