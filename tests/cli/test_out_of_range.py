"""Numbers past what a command can use are refused by name, exit 2, before anything runs.

Each of these was a traceback: an `OverflowError` from SQLite's INTEGER,
`timedelta` or `datetime`, met after the command had opened its store.
"""

from __future__ import annotations

import pytest

from tests.cli.conftest import Jarvis


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("events", "--limit", "99999999999999999999"), "--limit"),
        (("run", "--interval", "1e308", "--ticks", "1", "--http-port", "0"), "loop.interval"),
        (("simulate", "--days", "1e308"), "--days"),
        (("simulate", "--days", "100000000"), "--days"),
    ],
)
def test_a_number_out_of_range_is_one_line_naming_it_and_exit_2(
    jarvis: Jarvis, args: tuple[str, ...], named: str
) -> None:
    assert jarvis("tick").returncode == 0  # a store to open, as an operator's would be
    result = jarvis(*args)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr
