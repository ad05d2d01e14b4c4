"""The operator's overrides: `deploy`, `restart`, `rollback`, `scale`, `start` and `stop`.

An override is one action an operator names, run as a one-shot tick whose
only policy proposes it (`OneShot`): it passes through the same guard as
everything the daemon proposes (kill switch, allow-list, bounds, quarantine and
the retry budget, dry run), is applied by the owning actuator with the same
idempotency key, and is recorded with the operator as ``actor`` and
``operator`` as its policy (`jarvis.policies.operator`, shared with the
status page). `override` is that one piece; the commands
only build the action's parameters.

Exit status: 0 when the action was applied (or, with ``--dry-run``, would
have been), 1 when it was blocked, failed, its outcome is unknown (a provider
that did not answer in time, named on stderr), found its target gone since
observed (the printed report says which), or its tick was cut at
``loop.tick_timeout`` (`jarvis.cli.oneshot.TickCutError`, one line on stderr),
2 for a malformed resource URI or option, a resource no provider has
(every provider answered and none named it), a kind no provider applies on
the resource's scheme (`start` of a `sim://` service), a resource its provider
answered is not there (a Cloud Run service's 404), or a rollback naming no
version of a resource whose provider reports none before the current one (`settled`):
nothing is proposed or recorded as an action then, only a `policy.note`. With
``--json`` every exit prints one object: the tick's report with its ``error`` (the
refusal's line, or null), or ``{"error": LINE}`` when it ended before the report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from jarvis.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    JsonOpt,
    check_reason,
    fail,
    operator_name,
    run,
    settings_from,
)
from jarvis.cli.ticks import print_report, say_unanswered

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from jarvis.app import App
    from jarvis.loop.reconciler import TickReport
    from jarvis.model import ActionParams

Resource = Annotated[str, typer.Argument(help="Resource URI, e.g. ecs://CLUSTER/SERVICE.")]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Check it against the guard and record; apply nothing.")
]
Reason = Annotated[str | None, typer.Option("--reason", help="Recorded with the action.")]


def override(
    ctx: typer.Context,
    resource: str,
    params: ActionParams,
    *,
    reason: str | None,
    dry_run: bool,
    as_json: bool = False,
) -> None:
    """Run ``params`` on ``resource`` through the guard as a one-shot tick; exit as documented."""
    from jarvis.model import BlockReason, ResourceRef
    from jarvis.policies.operator import (
        ASK_VERSION,
        OPERATOR,
        UNSETTLED,
        OneShot,
        nobody_has,
        operator_action,
    )

    try:
        ref = ResourceRef.parse(resource)
    except ValueError as exc:
        fail(str(exc), EXIT_CONFIG, as_json=as_json)
    check_reason(reason, as_json=as_json)
    settings = settings_from(ctx, as_json=as_json)
    actor = operator_name()
    action = operator_action(ref, params, actor=actor, reason=reason)

    async def main() -> TickReport:
        from jarvis.app import build_app
        from jarvis.cli.oneshot import one_tick
        from jarvis.providers import acting_schemes

        def build() -> Awaitable[App]:
            policy = OneShot(action, schemes=acting_schemes())
            return build_app(settings, policies=[policy], recover_orphans=False)

        return await one_tick(settings, params.kind, build, dry_run=dry_run or settings.dry_run)

    report = run(main, as_json=as_json)
    # The one-shot's is the only proposal; `settled` may have named its version.
    decision = next((d for d in report.decisions if d.action.policy == OPERATOR), None)
    refusal = None
    if decision is None:
        if nobody_has(ref, report.snapshot):
            refusal = unknown_resource(str(ref), list(report.snapshot.resources))
        else:
            refused = next((n.message for _, n in report.notes if n.key == UNSETTLED), None)
            if refused is not None:
                refusal = refused + (" (--to VERSION)" if refused.endswith(ASK_VERSION) else "")
    print_report(report, as_json=as_json, error=refusal)
    say_unanswered(report, settings)
    if refusal is not None:
        fail(refusal, EXIT_CONFIG)
    if decision is None:
        raise typer.Exit(EXIT_FAILED)
    if decision.outcome is None:
        # Only a dry run's refusal counts as success: the guard let everything else through.
        if decision.verdict.reason is not BlockReason.DRY_RUN:
            raise typer.Exit(EXIT_FAILED)
    elif not decision.outcome.ok:
        raise typer.Exit(EXIT_FAILED)


def unknown_resource(uri: str, observed: list[str]) -> str:
    """What an override of a resource nobody observed says (`OneShot` proposed nothing)."""
    import difflib

    message = f"no such resource: {uri}; nothing was done"
    close = difflib.get_close_matches(uri, observed, n=1, cutoff=0.8)
    if close:
        return f"{message} (did you mean {close[0]}?)"
    return f"{message} ({len(observed)} resources observed)"


def deploy(
    ctx: typer.Context,
    resource: Resource,
    image: Annotated[str, typer.Option("--image", help="Container image to deploy.")],
    reason: Reason = None,
    dry_run: DryRun = False,
    as_json: JsonOpt = False,
) -> None:
    """Deploy a new image through the same guard as every other action."""
    from jarvis.model import Deploy

    override(ctx, resource, Deploy(image), reason=reason, dry_run=dry_run, as_json=as_json)


def restart(
    ctx: typer.Context,
    resource: Resource,
    reason: Reason = None,
    dry_run: DryRun = False,
    as_json: JsonOpt = False,
) -> None:
    """Restart a resource now, through the same guard as every other action."""
    from jarvis.model import Restart

    override(ctx, resource, Restart(), reason=reason, dry_run=dry_run, as_json=as_json)


def rollback(
    ctx: typer.Context,
    resource: Resource,
    to: Annotated[
        str | None,
        typer.Option(
            "--to", help="Version to return to (default: the one before, as its provider says)."
        ),
    ] = None,
    reason: Reason = None,
    dry_run: DryRun = False,
    as_json: JsonOpt = False,
) -> None:
    """Roll a resource back, through the same guard as every other action."""
    from jarvis.model import Rollback

    override(ctx, resource, Rollback(to or ""), reason=reason, dry_run=dry_run, as_json=as_json)


def scale(
    ctx: typer.Context,
    resource: Resource,
    replicas: Annotated[int, typer.Argument(min=0, help="Desired replicas.")],
    reason: Reason = None,
    dry_run: DryRun = False,
    as_json: JsonOpt = False,
) -> None:
    """Set a resource's replicas, through the same guard (and bounds) as every other action."""
    from jarvis.model import Scale

    override(
        ctx, resource, Scale(replicas=replicas), reason=reason, dry_run=dry_run, as_json=as_json
    )


def start(
    ctx: typer.Context,
    resource: Resource,
    reason: Reason = None,
    dry_run: DryRun = False,
    as_json: JsonOpt = False,
) -> None:
    """Start a service that is not running (local://NAME), through the same guard."""
    from jarvis.model import Start

    override(ctx, resource, Start(), reason=reason, dry_run=dry_run, as_json=as_json)


def stop(
    ctx: typer.Context,
    resource: Resource,
    reason: Reason = None,
    dry_run: DryRun = False,
    as_json: JsonOpt = False,
) -> None:
    """Stop a running service (local://NAME), through the same guard."""
    from jarvis.model import Stop

    override(ctx, resource, Stop(), reason=reason, dry_run=dry_run, as_json=as_json)
