"""The daily report: what Jarvis did in one day, from the event record alone.

`figures` reduces one day's events (and the month's spend observations and
settled revenue, through `revenue`) to `DailyFigures`, purely; `markdown` and
`html` render them; `charts` draws the HTML's PNGs with matplotlib, imported
only when HTML is asked for. Called by `jarvis report` (`jarvis.cli.report`),
which reads the store.
"""

from jarvis.report.figures import DailyFigures, Incident, SpendFigures, build_figures

__all__ = ["DailyFigures", "Incident", "SpendFigures", "build_figures"]
