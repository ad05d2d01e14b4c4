"""`month_key`: the month the usage facet is published under and read back by, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from jarvis.model import month_bounds, month_key

_ZONES = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-9))])
# Hypothesis takes naive bounds and attaches the zone itself.
_MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=_ZONES,
)


@given(_MOMENTS)
def test_the_key_names_the_utc_month_that_month_bounds_gives(now: datetime) -> None:
    """In any zone, the key is the month whose bounds hold the moment, as ``%Y-%m``."""
    start, end = month_bounds(now)
    assert start <= now < end
    assert month_key(now) == f"{start:%Y-%m}"


def test_just_after_midnight_east_of_utc_is_still_last_month() -> None:
    """01:00 on 1 July at UTC+2 is 23:00 on 30 June in UTC."""
    assert month_key(datetime(2025, 7, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))) == "2025-06"
    assert month_key(datetime(2025, 7, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))) == "2025-07"
