"""`jarvis silence add|list|expire` as a real process: each recorded as an event."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.cli.conftest import jarvis_argv, jarvis_env


def jarvis(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        jarvis_argv(*args),
        cwd=tmp_path,
        env=jarvis_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_silence_is_added_listed_and_expired_with_an_event_for_each(tmp_path: Path) -> None:
    """add records silence.added, list shows it, expire records silence.expired and ends it."""
    added = jarvis(
        tmp_path, "silence", "add", "--match", "sim://ai-dawg-*", "--for", "2h", "--reason", "maint"
    )
    assert added.returncode == 0, added.stderr
    listed = jarvis(tmp_path, "silence", "list", "--json")
    (silence,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (silence["match"], silence["reason"]) == ("sim://ai-dawg-*", "maint")

    expired = jarvis(tmp_path, "silence", "expire", silence["id"])
    assert expired.returncode == 0, expired.stderr
    assert jarvis(tmp_path, "silence", "list", "--json").stdout == ""
    events = jarvis(tmp_path, "events", "--json", "-k", "silence.added", "-k", "silence.expired")
    kinds = [json.loads(line)["kind"] for line in events.stdout.splitlines()]
    assert kinds == ["silence.added", "silence.expired"]


def test_a_bad_duration_or_an_unknown_silence_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Operators get one clear line, never a traceback."""
    bad = jarvis(tmp_path, "silence", "add", "--match", "x", "--for", "soon", "--reason", "r")
    assert bad.returncode == 2
    assert "--for" in bad.stderr
    assert "Traceback" not in bad.stderr
    for endless in ("100000000w", "99999999999w", "53w"):
        # Past datetime's range these were an OverflowError traceback, and past
        # a year a silence is a channel switched off without saying so.
        long = jarvis(tmp_path, "silence", "add", "-m", "x", "--for", endless, "--reason", "r")
        assert long.returncode == 2, long.stderr
        assert "at most 52w" in long.stderr
        assert "Traceback" not in long.stderr
    year = jarvis(tmp_path, "silence", "add", "-m", "x", "--for", "52w", "--reason", "r")
    assert year.returncode == 0, year.stderr
    unknown = jarvis(tmp_path, "silence", "expire", "nope")
    assert unknown.returncode == 2
    assert "no active silence" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_a_channel_whose_secret_is_not_in_the_environment_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    """config check and run name the missing variable; the secret itself is never a setting."""
    env = jarvis_env(tmp_path, JARVIS_NOTIFY__PAGERDUTY="{}")
    env.pop("PAGERDUTY_ROUTING_KEY", None)
    for args in (("config", "check"), ("run", "--ticks", "1", "--http-port", "0")):
        result = subprocess.run(
            jarvis_argv(*args),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert "notify.pagerduty: environment variable PAGERDUTY_ROUTING_KEY is not set" in (
            result.stderr
        )
        assert "Traceback" not in result.stderr


def test_a_pagerduty_channel_every_page_would_be_refused_by_is_a_config_error(
    tmp_path: Path,
) -> None:
    """A routing key not 32 characters, or an empty source: one line and exit 2, not lost pages."""
    cases = [
        ({"PAGERDUTY_ROUTING_KEY": "https://events.pagerduty.com/x"}, "32-character"),
        ({"JARVIS_NOTIFY__PAGERDUTY": '{"source": ""}'}, "source"),
    ]
    for tweak, expected in cases:
        env = jarvis_env(tmp_path, JARVIS_NOTIFY__PAGERDUTY="{}")
        env["PAGERDUTY_ROUTING_KEY"] = "R0UT1NGK3Y0000000000000000000001"
        env.update(tweak)
        result = subprocess.run(
            jarvis_argv("config", "check"),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert "notify.pagerduty" in result.stderr
        assert expected in result.stderr
        assert "Traceback" not in result.stderr
        assert tweak.get("PAGERDUTY_ROUTING_KEY", "\0") not in result.stderr


def test_a_silence_whose_glob_spans_segments_is_warned_of_and_still_added(
    tmp_path: Path,
) -> None:
    """``--match 'ecs://prod*'`` gets the warning `jarvis config check` gives a route's glob,
    and the silence is added as written; a glob with its segments written out, or a cause,
    gets none."""
    added = jarvis(tmp_path, "silence", "add", "-m", "ecs://prod*", "--for", "1h", "--reason", "r")
    assert added.returncode == 0, added.stderr
    assert added.stderr.splitlines() == [
        "warning: silence --match 'ecs://prod*': '*' also matches '/', so a '*' inside a "
        "segment can span several segments of ecs:// paths (2 to a path): 'ecs://prod*' "
        "matches 'ecs://prodx/y'; write the segments out with '/' to say which you mean: "
        "'ecs://prod*/*' (from the start of the path) or 'ecs://*/prod*' (up to its end)"
    ]
    for quiet in ("ecs://prod/*", "breaker:provider:*"):
        plain = jarvis(tmp_path, "silence", "add", "-m", quiet, "--for", "1h", "--reason", "r")
        assert (plain.returncode, plain.stderr) == (0, ""), plain.stderr
    listed = jarvis(tmp_path, "silence", "list", "--json")
    matches = sorted(json.loads(line)["match"] for line in listed.stdout.splitlines())
    assert matches == ["breaker:provider:*", "ecs://prod*", "ecs://prod/*"]
