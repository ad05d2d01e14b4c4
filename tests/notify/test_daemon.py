"""`jarvis run` as a real process pages once for an escalation, across a restart."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.notify.conftest import ROUTING_KEY
from tests.notify.receivers import Receivers

BRAIN = "sim://ai-dawg-ai-brain"


def daemon_env(tmp_path: Path, receivers: Receivers) -> dict[str, str]:
    return jarvis_env(
        tmp_path,
        JARVIS_HTTP__HOST="127.0.0.1",
        JARVIS_NOTIFY__POLL_INTERVAL="0.2",
        JARVIS_NOTIFY__GROUP_WAIT="0.5",
        JARVIS_NOTIFY__GROUP_INTERVAL="1",
        # Under load a tick can take seconds; this test is not about the stall watchdog.
        JARVIS_NOTIFY__STALL_INTERVALS="1000",
        JARVIS_NOTIFY__SLACK=json.dumps({"webhook_url_env": "TEST_SLACK_URL"}),
        JARVIS_NOTIFY__PAGERDUTY=json.dumps(
            {"url": receivers.pagerduty_url, "routing_key_env": "TEST_PD_KEY"}
        ),
        TEST_SLACK_URL=receivers.slack_url,
        TEST_PD_KEY=ROUTING_KEY,
        # A daemon that hangs on its way out prints every thread's stack on SIGABRT.
        PYTHONFAULTHANDLER="1",
    )


def start(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        # Port 0: the kernel's pick at bind time, which no other worker can take first.
        jarvis_argv("run", "--interval", "0.5", "--http-port", "0"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        # Generous: a tick in flight may run to its timeout first on a loaded machine.
        output, _ = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)  # the faulthandler's dump of every thread
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        tail = "\n".join(output.splitlines()[-120:])
        message = f"jarvis run did not exit after SIGTERM; its last lines:\n{tail}"
        raise AssertionError(message) from None
    assert process.returncode == 0, output
    return output


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.timeout(600)  # two daemons, each up to 120 s to page and 90 s to stop under load
def test_a_restarted_daemon_does_not_page_twice_and_resolves_the_same_incident(
    tmp_path: Path, receivers: Receivers
) -> None:
    """Escalation pages once; after a restart, nothing is resent and the reset resolves it."""
    env = daemon_env(tmp_path, receivers)

    def brain_pages() -> list[dict[str, object]]:
        return [
            p for p in receivers.triggers() if BRAIN in p["payload"]["custom_details"]["resources"]
        ]

    first = start(tmp_path, env)
    try:
        wait_until(lambda: len(brain_pages()) >= 1, "the escalation's page")
    finally:
        output = stop(first)
    (page,) = brain_pages()
    incident = page["dedup_key"]

    second = start(tmp_path, env)
    try:
        reset = subprocess.run(
            jarvis_argv("retries", "reset", BRAIN),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert reset.returncode == 0, reset.stderr
        wait_until(
            lambda: any(r["dedup_key"] == incident for r in receivers.resolves()),
            "the resolve of the first incident",
        )
    finally:
        output += stop(second)

    assert [p["dedup_key"] for p in receivers.triggers()].count(incident) == 1
    assert [r["dedup_key"] for r in receivers.resolves()].count(incident) == 1
    listed = subprocess.run(
        jarvis_argv("notifications", "list", "--json", "--status", "sent"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    paged = sorted(
        (r["action"], r["attempts"])
        for r in rows
        if r["channel"] == "pagerduty" and r["incident"] == incident
    )
    assert paged == [("resolve", 1), ("trigger", 1)]
    # Secrets never reach the logs.
    assert ROUTING_KEY not in output
    assert "secretpart" not in output


@pytest.mark.timeout(300)  # its own waits (120 s for the report, 90 s to stop) pass the default
def test_the_daemon_sends_yesterdays_report_once_by_email_and_slack(
    tmp_path: Path, receivers: Receivers
) -> None:
    """Wiring: ``[report] deliver_at`` already past today, so the first check sends it."""
    env = daemon_env(tmp_path, receivers)
    env.update(
        JARVIS_NOTIFY__EMAIL=json.dumps(
            {
                "host": "127.0.0.1",
                "port": receivers.smtp_port,
                "sender": "jarvis@example.com",
                "recipients": ["sre@example.com"],
                "starttls": False,
            }
        ),
        JARVIS_REPORT__DELIVER_AT="00:00",
        JARVIS_REPORT__TIMEZONE="UTC",
    )

    def reports() -> list[str]:
        return [
            str(m["Subject"])
            for m in receivers.emails
            if str(m["Subject"]).startswith("Jarvis daily report")
        ]

    def summaries() -> list[object]:
        return [m for m in receivers.slack if str(m["text"]).startswith("Jarvis daily report")]

    process = start(tmp_path, env)
    try:
        wait_until(lambda: len(reports()) == 1 and len(summaries()) == 1, "the daily report")
    finally:
        output = stop(process)
    assert len(reports()) == 1, output
    assert "secretpart" not in output
