"""The lease timings are validated: the leader's own view must end before anyone else's begins."""

from __future__ import annotations

import pytest

from jarvis.config import ConfigError, load_settings


def test_the_defaults_are_controller_runtimes() -> None:
    lease = load_settings(database_url="sqlite+aiosqlite:///:memory:").lease
    assert (lease.duration, lease.renew_deadline, lease.retry_period) == (15.0, 10.0, 2.0)


@pytest.mark.parametrize(
    ("lease", "says"),
    [
        ({"duration": 10, "renew_deadline": 10}, "lease.duration"),
        ({"renew_deadline": 2.4, "retry_period": 2}, "lease.renew_deadline"),
        ({"duration": 0}, "lease.duration"),
        ({"retry_period": float("inf")}, "lease.retry_period"),
        ({"replica_id": ""}, "lease.replica_id"),
    ],
)
def test_timings_out_of_order_or_range_are_refused_naming_the_key(
    lease: dict[str, object], says: str
) -> None:
    with pytest.raises(ConfigError, match=says.replace(".", r"\.")):
        load_settings(lease=lease)
