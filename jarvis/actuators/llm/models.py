"""Model names as applications record them, matched to the models ``[cost.prices]`` prices.

Used by the `llm_usage` actuator (`jarvis.actuators.llm.usage`) on every usage
row before `jarvis.actuators.llm.spend` builds the facet, so the cost policy
sees one record per priced model. An application records what it sent or what
the provider answered, and providers answer otherwise than they are asked:
``GPT-4o``, ``openai/gpt-4o`` (LiteLLM, OpenRouter), ``gpt-4o-2024-08-06`` (the
dated snapshot OpenAI names in its answer), ``claude-3-5-haiku-20241022``.
A name matches a priced model exactly, or else when both read the same with
case and surrounding spaces ignored, any provider prefix (up to the last ``/``)
dropped and a trailing date (``-YYYY-MM-DD`` or ``-YYYYMMDD``) dropped, and
only one priced model reads so. Nothing else is folded in: ``gpt-4o-mini`` is
not ``gpt-4o``. A name that matches none is unpriced, and `PriceList.priciest`
is what a request it recorded at $0 is counted at (safe-side: the budget sees
it, and `jarvis.policies.cost` tells a human). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["PriceList"]

_DATED = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")


def _reading(name: str) -> str:
    """How a name reads once case, spaces, a provider prefix and a trailing date are dropped."""
    bare = name.strip().casefold().rsplit("/", 1)[-1]
    return _DATED.sub("", bare)


class PriceList:
    """The priced models (USD per 1,000 input and output tokens) and how a name matches one."""

    def __init__(self, prices: Mapping[str, tuple[float, float]]) -> None:
        self._prices = dict(prices)
        readings: dict[str, list[str]] = {}
        for name in self._prices:
            readings.setdefault(_reading(name), []).append(name)
        # Two priced models reading alike (``gpt-4o`` and ``gpt-4o-2024-08-06``)
        # leave a third spelling ambiguous: it matches neither.
        self._by_reading = {r: names[0] for r, names in readings.items() if len(names) == 1}

    def match(self, recorded: str) -> str | None:
        """The priced model ``recorded`` names, or None when it names none."""
        # Not cached: the names come from applications' rows, so a cache would grow
        # with whatever they record; a reading costs about a microsecond.
        if recorded in self._prices:
            return recorded
        return self._by_reading.get(_reading(recorded))

    def priciest(self, input_tokens: int, output_tokens: int) -> float:
        """What these tokens cost at the priciest priced model for them (0 with no prices)."""
        return max(
            ((input_tokens * i + output_tokens * o) / 1000 for i, o in self._prices.values()),
            default=0.0,
        )
