"""The daily report as one self-contained HTML page: the Markdown's tables and three charts.

Charts are PNGs embedded as ``data:`` URIs, so the page travels as an email
body or a file with nothing beside it. Every string from the record is
escaped (resource names and reasons come from providers).
"""

from __future__ import annotations

import base64
from html import escape

from jarvis.report import charts
from jarvis.report.figures import DailyFigures
from jarvis.report.markdown import sections

__all__ = ["html"]

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:24px auto;color:#1d232a;
padding:0 16px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #d7dde3}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #d7dde3;padding:3px 9px;
text-align:left}th{background:#f2f5f8}img{max-width:100%;display:block;margin:10px 0}
.none{color:#6b7682}
"""


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return f'<p class="none">{escape(alt)}: nothing recorded to draw.</p>'
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _block(lines: list[str]) -> str:
    """Markdown lines of `sections` (paragraphs and pipe tables) as HTML."""
    out: list[str] = []
    rows: list[list[str]] = []

    def close_table() -> None:
        if rows:
            head, *body = rows
            out.append("<table><tr>" + "".join(f"<th>{escape(c)}</th>" for c in head) + "</tr>")
            for row in body:
                out.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>")
            out.append("</table>")
            rows.clear()

    for line in lines:
        if line.startswith("|"):
            if not line.startswith("|---"):
                # `cell` escaped the pipes inside a cell; the separators are unescaped.
                rows.append([c.strip().replace("\\|", "|") for c in line.strip("|").split(" | ")])
            continue
        close_table()
        if line == "_none_":
            out.append('<p class="none">none</p>')
        elif line:
            out.append(f"<p>{escape(line).replace('`', '')}</p>")
    close_table()
    return "\n".join(out)


def html(f: DailyFigures) -> str:
    """The report as an HTML document with its charts inline."""
    title = f"Jarvis daily report, {f.start:%Y-%m-%d} (UTC)"
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>",
        f"<style>{STYLE}</style></head><body><h1>{title}</h1>",
    ]
    charts_after = {
        "Actions by kind and outcome": [
            (charts.actions_per_hour(f), "Actions applied per hour"),
            (charts.replicas(f), "Replicas against traffic per service"),
        ],
        "Spend against budget": [(charts.spend(f), "Spend against budget")],
    }
    for name, lines in sections(f):
        parts.append(f"<h2>{escape(name)}</h2>")
        parts.append(_block(lines))
        parts.extend(_img(png, alt) for png, alt in charts_after.get(name, []))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
