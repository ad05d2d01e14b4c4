"""`PriceList.match`: which recorded model names name a priced model, and which do not."""

from __future__ import annotations

import pytest

from jarvis.actuators.llm.models import PriceList

PRICES = PriceList({"gpt-4o": (0.0025, 0.01), "claude-3-5-haiku": (0.0008, 0.004)})


@pytest.mark.parametrize(
    ("recorded", "priced"),
    [
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("  gpt-4o\n", "gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),
        ("openrouter/openai/gpt-4o-2024-08-06", "gpt-4o"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("gpt-4o-mini", None),
        ("gpt-4o-2024-08", None),
        ("gpt-4", None),
        ("", None),
    ],
)
def test_a_recorded_name_matches_the_priced_model_it_spells(
    recorded: str, priced: str | None
) -> None:
    """Case, spaces, a provider prefix and a trailing date are ignored; nothing else is."""
    assert PRICES.match(recorded) == priced


def test_a_name_two_priced_models_read_as_matches_neither() -> None:
    """With ``gpt-4o`` and a dated snapshot both priced, each matches itself exactly and a
    third snapshot is ambiguous, so it is unpriced rather than guessed."""
    prices = PriceList({"gpt-4o": (0.0025, 0.01), "gpt-4o-2024-05-13": (0.005, 0.015)})

    assert prices.match("gpt-4o-2024-05-13") == "gpt-4o-2024-05-13"
    assert prices.match("gpt-4o") == "gpt-4o"
    assert prices.match("gpt-4o-2024-08-06") is None


def test_the_priciest_price_is_the_dearest_for_these_tokens() -> None:
    """Per token mix: the model dearest for these tokens, and 0 with no prices."""
    prices = PriceList({"long-in": (0.01, 0.0), "long-out": (0.0, 0.01)})

    assert prices.priciest(1000, 0) == pytest.approx(0.01)
    assert prices.priciest(0, 2000) == pytest.approx(0.02)
    assert PriceList({}).priciest(1000, 1000) == 0.0
