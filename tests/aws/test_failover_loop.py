"""DNS failover through the whole loop: loopback endpoints, Route 53 on moto, the real guard.

Settings name two regions' endpoints (real HTTP servers on loopback, one of
which the test stops and starts again) and one weighted record group in a
moto hosted zone. The app is built by the composition root with the failover
policy from those settings, on a real SQLite store, ticked by hand in virtual
time; the zone's weights are read back through boto3 after every tick.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import boto3
import pytest
from aiohttp import web

from jarvis.actuators.aws.route53 import Route53Actuator
from jarvis.app import App, build_app
from jarvis.config import load_settings
from jarvis.loop.clock import VirtualClock
from jarvis.model import BlockReason, EventKind, KillSwitchState
from jarvis.providers import PROVIDERS, build_sensors
from tests.aws.route53_zone import NAME, create_zone, zone_weights
from tests.cli.conftest import Jarvis, jarvis, jarvis_env  # noqa: F401 - the fixture

if TYPE_CHECKING:
    from mypy_boto3_route53 import Route53Client

pytestmark = pytest.mark.anyio

MakeApp = Callable[..., Awaitable[App]]


async def _ok(_: web.Request) -> web.Response:
    return web.Response(text="ok")


class Region:
    """One region's health endpoint: a loopback HTTP server that can go dark and come back."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", _ok)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@pytest.fixture
async def regions() -> AsyncIterator[dict[str, Region]]:
    made = {"use1": Region(), "euw1": Region()}
    for region in made.values():
        await region.start()
    yield made
    for region in made.values():
        await region.stop()


@pytest.fixture
def route53(moto: str, session: boto3.Session) -> Iterator[Route53Client]:
    client = session.client("route53", endpoint_url=moto)
    yield client
    client.close()


@pytest.fixture
def clock() -> VirtualClock:  # the AWS conftest's is a FixedClock
    return VirtualClock(datetime.now(UTC))


@pytest.fixture
async def make_app(
    sqlite_url: str,
    tmp_path: Path,
    moto: str,
    session: boto3.Session,
    clock: VirtualClock,
    regions: dict[str, Region],
) -> AsyncIterator[MakeApp]:
    """Settings for a two-region failover group; Route 53 with the test's session."""
    apps: list[App] = []

    async def factory(zone: str, **overrides: Any) -> App:
        # Four writes (two away, two back) inside the hour: more than the default 3.
        overrides.setdefault("retry", {"max_attempts": 5})
        settings = load_settings(
            database_url=sqlite_url,
            spool_path=tmp_path / "spool.jsonl",
            simulated={"enabled": False},
            allowlist=[{"provider": "route53", "actions": ["set_dns_weights"]}],
            bounds={"max_dns_weight_shift": 64},
            probes={
                "endpoints": [
                    {"name": f"api-{r}", "url": region.url, "failure_threshold": 1, "region": r}
                    for r, region in regions.items()
                ]
            },
            failover={
                "endpoint_url": moto,
                "fail_ticks": 2,
                "recover_ticks": 3,
                "groups": [
                    {
                        "zone_id": zone,
                        "name": NAME,
                        "targets": [
                            {"set_identifier": r, "weight": 100, "endpoints": [f"api-{r}"]}
                            for r in regions
                        ],
                    }
                ],
            },
            **overrides,
        )
        endpoints = [p for p in PROVIDERS if p.name == "endpoints"]
        actuators = [
            Route53Actuator.from_settings(settings.failover, clock=clock, session=session),
            *build_sensors(settings, clock, endpoints),
        ]
        app = await build_app(settings, clock=clock, actuators=actuators, run_id=f"r{len(apps)}")
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.aclose()


async def _tick(app: App, clock: VirtualClock, route53: Route53Client, zone: str) -> dict[str, int]:
    await app.reconciler.tick()
    clock.advance(30)
    return zone_weights(route53, zone)


async def test_a_dark_region_loses_its_weight_and_gets_it_back_after_healthy_ticks(
    make_app: MakeApp, regions: dict[str, Region], route53: Route53Client, clock: VirtualClock
) -> None:
    """After 2 failing ticks use1 steps to 0; it returns only after 3 healthy ticks, in steps."""
    zone = create_zone(route53, {"use1": 100, "euw1": 100})
    app = await make_app(zone)
    assert await _tick(app, clock, route53, zone) == {"use1": 100, "euw1": 100}

    await regions["use1"].stop()
    dark = [(await _tick(app, clock, route53, zone))["use1"] for _ in range(4)]
    assert dark == [100, 36, 0, 0]

    await regions["use1"].start()
    back = [await _tick(app, clock, route53, zone) for _ in range(5)]
    assert [w["use1"] for w in back] == [0, 0, 64, 100, 100]
    assert all(w["euw1"] == 100 for w in back)

    applied = await app.store.events(kinds=[EventKind.ACTION_APPLIED], limit=10)
    assert len(applied) == 4
    assert all(e.action_kind == "set_dns_weights" for e in applied)


async def test_when_both_regions_are_dark_nothing_moves_and_one_alert_is_raised(
    make_app: MakeApp, regions: dict[str, Region], route53: Route53Client, clock: VirtualClock
) -> None:
    """Weights stay where they are; the alert is recorded once, not every tick."""
    zone = create_zone(route53, {"use1": 100, "euw1": 100})
    app = await make_app(zone)
    for region in regions.values():
        await region.stop()
    for _ in range(5):
        assert await _tick(app, clock, route53, zone) == {"use1": 100, "euw1": 100}
    alerts = await app.store.events(kinds=[EventKind.ALERT], limit=10)
    assert [a.reason for a in alerts if a.policy == "failover"] == [
        f"failover: every target of route53://{zone}/{NAME}/A is failing; weights left as they are"
    ]


async def test_a_restart_neither_raises_the_all_failed_alert_again_nor_loses_its_resolution(
    make_app: MakeApp, regions: dict[str, Region], route53: Route53Client, clock: VirtualClock
) -> None:
    """A new process on the same store knows the alert is open: silent, then resolved once."""
    zone = create_zone(route53, {"use1": 100, "euw1": 100})
    app = await make_app(zone)
    for region in regions.values():
        await region.stop()
    for _ in range(3):
        await _tick(app, clock, route53, zone)
    await app.aclose()

    again = await make_app(zone)
    for _ in range(3):
        assert await _tick(again, clock, route53, zone) == {"use1": 100, "euw1": 100}
    await regions["euw1"].start()
    for _ in range(2):
        await _tick(again, clock, route53, zone)
    alerts = await again.store.events(kinds=[EventKind.ALERT], limit=20)
    assert [(a.reason, a.payload.get("resolved")) for a in alerts if a.policy == "failover"] == [
        (
            f"failover: every target of route53://{zone}/{NAME}/A is failing; "
            "weights left as they are",
            None,
        ),
        (f"failover: a target of route53://{zone}/{NAME}/A is no longer failing", True),
    ]


async def test_an_engaged_kill_switch_blocks_the_shift(
    make_app: MakeApp, regions: dict[str, Region], route53: Route53Client, clock: VirtualClock
) -> None:
    """The shift is proposed and blocked as killswitch; the zone keeps its weights."""
    zone = create_zone(route53, {"use1": 100, "euw1": 100})
    app = await make_app(zone)
    await app.killswitch.backend.write(
        KillSwitchState(engaged=True, reason="drill", actor="test", changed_at=clock.now())
    )
    await regions["use1"].stop()
    for _ in range(3):
        assert await _tick(app, clock, route53, zone) == {"use1": 100, "euw1": 100}
    blocked = await app.store.events(kinds=[EventKind.ACTION_BLOCKED], limit=10)
    assert blocked
    assert {b.payload["blocked"] for b in blocked} == {BlockReason.KILLSWITCH.value}


async def test_dry_run_records_the_shift_it_would_make(
    make_app: MakeApp, regions: dict[str, Region], route53: Route53Client, clock: VirtualClock
) -> None:
    """In dry run the proposal names the weights it would set; nothing is written."""
    zone = create_zone(route53, {"use1": 100, "euw1": 100})
    app = await make_app(zone, dry_run=True)
    await regions["use1"].stop()
    for _ in range(2):
        assert await _tick(app, clock, route53, zone) == {"use1": 100, "euw1": 100}
    [blocked] = await app.store.events(kinds=[EventKind.ACTION_BLOCKED], limit=10)
    assert blocked.payload["blocked"] == BlockReason.DRY_RUN.value
    proposed = await app.store.events(kinds=[EventKind.ACTION_PROPOSED], limit=10)
    assert proposed[-1].payload["params"] == {"record_weights": {"euw1": 100, "use1": 36}}
    assert "use1 100→36" in str(proposed[-1].payload["proposal"])


async def test_the_retry_budget_holds_a_fourth_write_in_the_hour(
    make_app: MakeApp, regions: dict[str, Region], route53: Route53Client, clock: VirtualClock
) -> None:
    """Every write is an attempt: with the default 3 an hour, the last step back waits."""
    zone = create_zone(route53, {"use1": 100, "euw1": 100})
    app = await make_app(zone, retry={})
    await regions["use1"].stop()
    for _ in range(3):
        await _tick(app, clock, route53, zone)
    await regions["use1"].start()
    weights = [(await _tick(app, clock, route53, zone))["use1"] for _ in range(5)]
    assert weights == [0, 0, 64, 64, 64]
    blocked = await app.store.events(kinds=[EventKind.ACTION_BLOCKED], limit=10)
    assert {b.payload["blocked"] for b in blocked} == {BlockReason.RETRY_BUDGET.value}
    # The record set is healthy: a held step is not a failed fix, so nobody is paged.
    assert not await app.store.events(kinds=[EventKind.ACTION_ESCALATED], limit=10)


async def test_jarvis_plan_shows_the_weight_shift_it_would_make(
    jarvis: Jarvis,  # noqa: F811 - the fixture
    tmp_path: Path,
    moto: str,
    route53: Route53Client,
    regions: dict[str, Region],
) -> None:
    """One tick sees one failed probe: with fail_ticks = 1, plan prints the new weights."""
    zone = create_zone(route53, {"use1": 100, "euw1": 100})
    await regions["use1"].stop()
    endpoints = "".join(
        f'[[probes.endpoints]]\nname = "api-{r}"\nurl = "{region.url}"\nfailure_threshold = 1\n'
        for r, region in regions.items()
    )
    targets = "".join(
        f'[[failover.groups.targets]]\nset_identifier = "{r}"\nweight = 100\n'
        f'endpoints = ["api-{r}"]\n'
        for r in regions
    )
    (tmp_path / "jarvis.toml").write_text(
        '[simulated]\nenabled = false\n[[allowlist]]\nprovider = "route53"\n'
        'actions = ["set_dns_weights"]\n'
        f"{endpoints}"
        f'[failover]\nendpoint_url = "{moto}"\nfail_ticks = 1\n'
        f'[[failover.groups]]\nzone_id = "{zone}"\nname = "{NAME}"\n{targets}'
    )
    env = jarvis_env(
        tmp_path, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", COLUMNS="250"
    )
    result = await anyio.to_thread.run_sync(
        lambda: jarvis("--config", "jarvis.toml", "plan", env=env, timeout=120)
    )
    assert result.returncode == 0, result.stderr
    assert '"euw1": 100, "use1": 0' in result.stdout, result.stdout
    assert "use1 100→0" in result.stdout, result.stdout
    assert zone_weights(route53, zone) == {"use1": 100, "euw1": 100}
