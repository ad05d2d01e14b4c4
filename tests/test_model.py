"""The model's small behaviours: resource URIs, action parameters, transitions."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from jarvis.loop import events as ev
from jarvis.model import (
    MAX_URI_BYTES,
    Action,
    ActionParams,
    BlockReason,
    Deploy,
    ErrorKind,
    Health,
    Outcome,
    Replicas,
    ResourceRef,
    ResourceState,
    Restart,
    Rollback,
    Scale,
    SetWeights,
    uri_too_long,
)


def test_resource_ref_round_trips_through_its_uri() -> None:
    """A resource URI parses back into the ref that printed it."""
    ref = ResourceRef("ecs", "prod/api")
    assert str(ref) == "ecs://prod/api"
    assert ResourceRef.parse("ecs://prod/api") == ref


def test_a_resource_ref_carries_its_uri_as_written_once() -> None:
    """``ref.uri`` is ``str(ref)``, for every way of building one, and takes no part in
    equality, hashing, ordering or repr."""
    ref = ResourceRef("ecs", "prod/api", "service")
    assert ref.uri == str(ref) == "ecs://prod/api"
    assert ResourceRef.parse("k8s://default/web", "deployment").uri == "k8s://default/web"
    moved = replace(ref, name="prod/web")
    assert moved.uri == "ecs://prod/web"
    assert ref == ResourceRef("ecs", "prod/api") and hash(ref) == hash(
        ResourceRef("ecs", "prod/api")
    )
    assert sorted([moved, ref]) == [ref, moved]
    assert repr(ref) == "ResourceRef(provider='ecs', name='prod/api', kind='service')"
    with pytest.raises(TypeError):
        ResourceRef("ecs", "prod/api", "service", "ecs://elsewhere")  # type: ignore[call-arg]


@pytest.mark.parametrize("text", ["", "ecs", "ecs://", "://api", "ecs:/api"])
def test_resource_ref_rejects_malformed_uris(text: str) -> None:
    """Anything but provider://name is refused with a ValueError."""
    with pytest.raises(ValueError, match="resource URI"):
        ResourceRef.parse(text)


@pytest.mark.parametrize("char", ["a", "\u00e9", "\u4e00", "\U0001f600", "\ud800"])
def test_a_uri_past_the_longest_a_store_can_key_is_refused_at_its_byte_length(char: str) -> None:
    """Up to `MAX_URI_BYTES` of UTF-8 a URI parses; one byte more is refused, however the
    bytes are spelled (a lone surrogate counted as the three bytes it is written with)."""
    width = len(char.encode("utf-8", "surrogatepass"))
    fits = "sim://" + char * ((MAX_URI_BYTES - len("sim://")) // width)
    assert not uri_too_long(fits)
    assert ResourceRef.parse(fits).name == fits.removeprefix("sim://")
    over = fits + "x" * (MAX_URI_BYTES - len(fits.encode("utf-8", "surrogatepass")) + 1)
    with pytest.raises(ValueError, match=f"longer than {MAX_URI_BYTES} bytes"):
        ResourceRef.parse(over)


def test_action_params_hold_only_the_fields_that_are_set() -> None:
    """An action's params carry its kind-specific fields and nothing else."""
    action = Action(ResourceRef("sim", "a"), Scale(replicas=4), "scaling", "busy")
    assert action.params_json() == {"replicas": 4}
    assert action.key == ("sim://a", "scale")


@pytest.mark.parametrize(
    ("params", "cost", "text"),
    [
        (
            Scale(replicas=3, max_replicas=8),
            0.123456,
            '{"replicas": 3, "max_replicas": 8, "cost_delta_per_hour": 0.1235}',
        ),
        (Restart(), None, "{}"),
        (Rollback("v1"), None, '{"version": "v1"}'),
        (Deploy("api:2"), -1.0, '{"image": "api:2", "cost_delta_per_hour": -1.0}'),
        (SetWeights({"b": 0.5, "a": 0.5}), None, '{"weights": {"b": 0.5, "a": 0.5}}'),
    ],
)
def test_params_json_keeps_the_recorded_event_format(
    params: ActionParams, cost: float | None, text: str
) -> None:
    """Each kind's params serialise, keys in order, exactly as events have recorded them."""
    action = Action(ResourceRef("sim", "a"), params, "p", "r", cost_delta_per_hour=cost)
    assert json.dumps(action.params_json()) == text
    assert action.kind == params.kind


def test_metric_changes_are_not_transitions() -> None:
    """Only health, version, replicas and detail make a resource.changed event."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ref = ResourceRef("sim", "a")
    before = ResourceState(ref, Health.HEALTHY, now, Replicas(2, 2), metrics={"cpu": 0.1})
    after = ResourceState(ref, Health.HEALTHY, now, Replicas(2, 2), metrics={"cpu": 0.9})
    assert before.transition_key() == after.transition_key()
    crashed = ResourceState(ref, Health.UNHEALTHY, now, Replicas(2, 0))
    assert crashed.transition_key() != before.transition_key()


def test_same_transition_agrees_with_the_transition_key() -> None:
    """Two states are the same transition exactly when their transition keys are equal."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ref = ResourceRef("sim", "a")
    base = ResourceState(ref, Health.HEALTHY, now, Replicas(2, 2), version="v1", detail="")
    variants = [
        base,
        replace(base, metrics={"cpu": 0.9}, observed_at=now + timedelta(seconds=30)),
        replace(base, replicas=Replicas(2, 2)),
        replace(base, replicas=Replicas(2, 2, pending=1, min=1, max=9)),
        replace(base, replicas=Replicas(3, 2)),
        replace(base, replicas=Replicas(2, 1)),
        replace(base, replicas=None),
        replace(base, health=Health.DEGRADED),
        replace(base, version="v2"),
        replace(base, version=None),
        replace(base, detail="CrashLoopBackOff"),
    ]
    for a in variants:
        for b in variants:
            assert a.same_transition(b) == (a.transition_key() == b.transition_key()), (a, b)


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome.failure("sim://web not found", kind=ErrorKind.GONE, code="NotFound"),
        Outcome.failure("denied", kind=ErrorKind.TERMINAL, code="AccessDenied"),
        Outcome.failure("throttled", code="Throttling"),
        Outcome.withheld(BlockReason.KILLSWITCH, "engaged while the intent was written"),
        Outcome.timed_out("no answer", code="ReadTimeout"),
        Outcome.success("done"),
    ],
)
def test_a_recorded_outcome_is_gone_exactly_when_the_outcome_was(outcome: Outcome) -> None:
    """`Event.gone`, which every reader asks, reads back what `Outcome.gone` said."""
    action = Action(ResourceRef("sim", "web"), Restart(), "heal", "down")
    event = ev.outcome_event("t1", datetime(2026, 1, 5, tzinfo=UTC), action, "a1", outcome)
    assert event.gone is outcome.gone
    assert event.gone is (outcome.error_kind is ErrorKind.GONE)
