"""Warnings a dependency raises from a calendar date on do not fail the suite on that date.

The suite runs with warnings as errors (`filterwarnings = ["error"]` in pyproject.toml);
a dependency that starts warning on a given day would turn a test run with no change of
ours into collection errors from that day. Each such warning is named here and filtered
there, by its module.
"""

from __future__ import annotations

import sys
from datetime import date, timedelta

from google.api_core import _python_version_support as support


def test_the_google_sdks_python_support_warning_fails_no_test_from_its_date_on() -> None:
    """google.api_core and google.cloud.run_v2 warn at import once this Python is 90 days from
    its end of life (3.11: from 2027-07-26), then past it, then unsupported; none is an error."""
    info = support.PYTHON_VERSION_INFO.get((sys.version_info.major, sys.version_info.minor))
    eol = date(2027, 10, 24) if info is None else info.python_eol
    for today in (eol - timedelta(days=90), eol + timedelta(weeks=1), eol + timedelta(days=400)):
        support.check_python_version("google.cloud.run_v2", today=today)
