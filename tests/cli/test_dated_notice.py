"""The `jarvis` command prints no dependency notice that starts on a calendar date."""

from __future__ import annotations

import subprocess
import sys

import pytest

# What `jarvis` runs (`jarvis.cli.main`), then the Google SDK's import-time check on a
# given day: the check reads the system date, so the day is passed in instead.
CHECK = """
import sys
from datetime import date

day = date.fromisoformat(sys.argv[1])
sys.argv = ["jarvis", "config", "--help"]
from jarvis.cli import main

try:
    main()
except SystemExit:
    pass
from google.api_core._python_version_support import check_python_version

check_python_version("google.cloud.run_v2", today=day)
"""


@pytest.mark.parametrize("day", ["2027-07-26", "2027-11-01", "2028-12-31"])
def test_the_python_support_notice_of_the_google_sdk_is_not_on_stderr(day: str) -> None:
    """From 90 days before Python 3.11's end of life (2027-07-26) google.api_core warned on
    stderr of every command loading the Cloud Run SDK, above the one line a refusal prints."""
    done = subprocess.run(
        [sys.executable, "-c", CHECK, day], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
