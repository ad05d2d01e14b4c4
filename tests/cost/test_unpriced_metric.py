"""`jarvis_llm_unpriced_*` on a running daemon's /metrics: models no price matches, counted.

The daemon runs on the wall clock and counts the month its clock reads when it
observes, which is the next month when one ends after the requests are recorded:
the test records them in both months, so whichever the daemon reads holds one copy.
"""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from jarvis.model import month_bounds
from jarvis.store.usage import record_usage
from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.daemon import get, running, sample

CONFIG = """\
[cost]
enabled = true

[cost.prices]
"gpt-4o" = { input_per_1k = 0.0025, output_per_1k = 0.01 }
"""


def test_the_daemon_exports_how_many_models_and_requests_have_no_price(tmp_path: Path) -> None:
    """Two models under no `[cost.prices]` entry, three requests between them, and a priced
    one: the gauges read 2 and 3, with no label a model name could multiply."""
    env = jarvis_env(tmp_path, JARVIS_HTTP__HOST="127.0.0.1")
    (tmp_path / "jarvis.toml").write_text(CONFIG)
    upgrade = subprocess.run(
        jarvis_argv("db", "upgrade"), cwd=tmp_path, env=env, capture_output=True, check=False
    )
    assert upgrade.returncode == 0, upgrade.stderr
    now = datetime.now(UTC)
    for at in (now, month_bounds(now)[1]):
        for model in ("gpt-4o", "gpt-5", "gpt-5", "acme/llm-9000"):
            record_usage(
                f"sqlite:///{tmp_path}/jarvis.db",
                route="chat",
                model=model,
                input_tokens=400,
                output_tokens=600,
                cost_usd=0.0,
                latency_ms=250.0,
                success=True,
                at=at,
            )

    with running(tmp_path, env, "--config", "jarvis.toml", "--interval", "0.2") as daemon:
        deadline = time.monotonic() + 60
        models = None
        while time.monotonic() < deadline and models is None:
            _, text = get(f"{daemon.base}/metrics")
            models = sample(text, "jarvis_llm_unpriced_models") or None
            time.sleep(0.1)
        assert models == 2, [line for line in text.splitlines() if "llm" in line]
        assert sample(text, "jarvis_llm_unpriced_requests") == 3
        assert [line for line in text.splitlines() if "gpt-5" in line] == []
