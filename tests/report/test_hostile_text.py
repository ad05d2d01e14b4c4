"""Outside text in the daily report: resource names and reasons stay inside their cell."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from jarvis.model import Event, EventKind
from jarvis.report.figures import build_figures
from jarvis.report.html import html
from jarvis.report.markdown import markdown

DAY = datetime(2026, 1, 4, tzinfo=UTC)
HOSTILE = "AccessDenied | denied\nforged line \x1b[2J </td><script>x</script> {{x}} \u202eevil"


def escalated(n: int, resource: str, reason: str) -> Event:
    return Event(
        kind=EventKind.ACTION_ESCALATED,
        ts=DAY + timedelta(hours=n),
        idempotency_key=f"escalated:{n}",
        resource=resource,
        action_kind="restart",
        policy="heal",
        reason=reason,
        action_id=f"a{n}",
    )


def test_a_hostile_reason_keeps_the_markdown_table_one_row_of_four_cells_per_escalation() -> None:
    """Pipes, newlines, escape sequences and bidi overrides in a reason cannot reshape the table."""
    text = markdown(build_figures([escalated(1, "ecs://prod/a|b", HOSTILE)], start=DAY))
    section = text.split("## Escalations open\n\n", 1)[1].split("\n\n", 1)[0]
    rows = section.splitlines()
    assert len(rows) == 3  # header, rule, the one escalation
    assert len(re.split(r"(?<!\\)\|", rows[2])) == 6  # four cells between five pipes
    assert "\x1b" not in text
    assert "\u202e" not in text


def test_a_hostile_reason_stays_in_its_html_cell_and_is_escaped() -> None:
    """The HTML table has the header's four cells in every row, and no markup from the record."""
    page = html(build_figures([escalated(1, "ecs://prod/a|b", HOSTILE)], start=DAY))
    table = page.split("<h2>Escalations open</h2>\n", 1)[1].split("</table>", 1)[0]
    rows = table.split("<tr>")[1:]
    assert [row.count("<td>") + row.count("<th>") for row in rows] == [4, 4]
    assert "<td>ecs://prod/a|b</td>" in rows[1]
    assert "<script>" not in page
    assert "\x1b" not in page
    assert "\u202e" not in page


def test_a_resource_name_with_dollar_signs_is_charted_as_text_not_parsed_as_math() -> None:
    """A name like pay$\\frac{$ is charted as text; matplotlib would parse it as mathtext."""
    events = [
        Event(
            kind=EventKind.RESOURCE_CHANGED,
            ts=DAY + timedelta(hours=hour, minutes=n),
            idempotency_key=f"changed:{n}:{hour}",
            resource=resource,
            payload={"replicas": {"desired": hour + 1}},
        )
        for n, resource in enumerate(["ecs://prod/pay$\\frac{$", "ecs://prod/web"])
        for hour in range(3)
    ]
    page = html(build_figures(events, start=DAY))
    assert page.count("data:image/png;base64,") == 1
