"""The daily report's charts as PNG bytes: matplotlib with the Agg backend, no display.

Imported only by `jarvis.report.html`, so `jarvis report --format md` (and
every other command) never loads matplotlib. Each function returns None when
the record holds nothing to draw, and the HTML says so instead of an empty plot.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import matplotlib as mpl
import matplotlib.dates as mdates
import matplotlib.pyplot as plt

from jarvis.model import month_bounds
from jarvis.report.figures import DailyFigures

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["actions_per_hour", "replicas", "spend"]

# No display, whatever $MPLBACKEND says: pyplot settles its backend at the first figure.
mpl.use("Agg")

MAX_SERVICES = 12
"""The services that changed replicas most; a 50-service fleet in one plot reads as noise."""


def _x(*times: datetime) -> list[float]:
    """Times as matplotlib's date numbers (what its typed signatures take)."""
    return [float(mdates.date2num(t)) for t in times]  # type: ignore[no-untyped-call]


def _hours(ax: Axes, fmt: str) -> None:
    ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt))  # type: ignore[no-untyped-call]


def _text(name: str) -> str:
    """A name from the record as matplotlib text: its dollar signs escaped.

    Matplotlib reads text between two ``$`` as mathtext, and a resource name
    such as ``pay$\\frac{$`` raised at ``savefig``: the whole HTML report failed.
    """
    return name.replace("$", r"\$")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def replicas(f: DailyFigures) -> bytes | None:
    """Desired replicas per service over the day, a step per recorded change, and
    its hourly traffic sample on a second axis (same colour, dashed)."""
    series = {r: s for r, s in f.replicas.items() if s}
    if not series:
        return None
    busiest = sorted(series, key=lambda r: (-len(series[r]), r))[:MAX_SERVICES]
    end = f.start + timedelta(days=1)
    fig, ax = plt.subplots(figsize=(10, 4.2))
    traffic_ax = ax.twinx() if any(f.traffic.get(r) for r in busiest) else None
    for resource in sorted(busiest):
        points = series[resource]
        xs = _x(*(t for t, _ in points), end)
        ys = [n for _, n in points] + [points[-1][1]]
        name = _text(resource.partition("://")[2] or resource)
        (line,) = ax.step(xs, ys, where="post", label=name, lw=1.4)
        samples = f.traffic.get(resource)
        if traffic_ax is not None and samples:
            traffic_ax.plot(
                _x(*(t for t, _ in samples)),
                [v for _, v in samples],
                ls="--",
                lw=1.0,
                color=line.get_color(),
                label=f"{name} (req/min)",
            )
    ax.set_xlim(*_x(f.start, end))
    ax.xaxis.set_major_locator(mdates.HourLocator(byhour=range(0, 24, 3)))  # type: ignore[no-untyped-call]
    _hours(ax, "%H:%M")
    ax.set_ylabel("desired replicas (solid)")
    ax.set_xlabel("time (UTC)")
    title = f"Replicas per service ({len(busiest)} of {len(series)} with most changes)"
    handles, labels = ax.get_legend_handles_labels()
    if traffic_ax is not None:
        traffic_ax.set_ylabel("requests per minute (dashed)")
        title = f"Replicas against traffic per service ({len(busiest)} of {len(series)})"
        more_handles, more_labels = traffic_ax.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(
        handles,
        labels,
        fontsize=7,
        ncol=2,
        loc="upper left",
        bbox_to_anchor=(1.1 if traffic_ax is not None else 1.01, 1.0),
    )
    return _png(fig)


def actions_per_hour(f: DailyFigures) -> bytes | None:
    """Applied actions in each UTC hour of the day."""
    if not any(f.actions_per_hour):
        return None
    fig, ax = plt.subplots(figsize=(10, 2.8))
    ax.bar(range(24), f.actions_per_hour, color="#3b6ea5")
    ax.set_xticks(range(24))
    ax.set_xlabel("hour (UTC)")
    ax.set_ylabel("actions applied")
    ax.set_title("Actions applied per hour")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def spend(f: DailyFigures) -> bytes | None:
    """Month-to-date LLM spend at each observation, the linear forecast of what counts
    against the budget (the cloud bill too, when included), and the budget."""
    s = f.spend
    if s is None:
        return None
    start, end = month_bounds(s.observed_at)
    fig, ax = plt.subplots(figsize=(10, 3.4))
    xs = _x(*(t for t, _ in s.series))
    ys = [u for _, u in s.series]
    ax.plot(xs, ys, marker="o", ms=3, color="#3b6ea5", label="LLM spent (observed)")
    b = s.against_budget
    ax.plot(
        _x(s.observed_at, end),
        [b.total_usd, b.forecast_usd],
        ls="--",
        color="#3b6ea5",
        alpha=0.6,
        label=("LLM + cloud" if b.cloud_usd else "LLM") + f" forecast ${b.forecast_usd:,.0f}",
    )
    if s.budget_usd:
        ax.axhline(s.budget_usd, color="#b03a2e", lw=1.2, label=f"budget ${s.budget_usd:,.0f}")
    ax.set_xlim(*_x(start, end))
    _hours(ax, "%d %b")
    ax.set_ylabel("USD")
    ax.set_title(f"Spend against budget, {_text(s.month)}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)
