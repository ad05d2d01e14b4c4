"""The operator's one-shot policy: what `jarvis restart|rollback|scale|deploy` proposes."""

from __future__ import annotations

from dataclasses import replace

from jarvis.model import History, ResourceRef, Restart, Rollback, Start, Versions
from jarvis.policies.operator import OneShot, operator_action
from tests.policies.fleet import API, T0, service, snap


def rollback(version: str) -> OneShot:
    action = operator_action(
        ResourceRef.parse(API), Rollback(version), actor="cli:alice", reason=None
    )
    return OneShot(action)


def test_a_rollback_naming_no_version_returns_to_the_one_the_provider_reports_before() -> None:
    """`jarvis rollback URI` proposes the previous version read in this tick, by name."""
    state = service(version="api:8", attributes={"previous_version": "api:7"})
    evaluation = rollback("").evaluate(snap(T0, state), History(), T0)
    assert [(a.params, a.actor) for a in evaluation.actions] == [(Rollback("api:7"), "cli:alice")]


def test_a_rollback_naming_a_version_keeps_it() -> None:
    """`--to` is what is proposed, whatever the provider calls previous."""
    state = service(version="api:8", attributes={"previous_version": "api:7"})
    evaluation = rollback("api:5").evaluate(snap(T0, state), History(), T0)
    assert [a.params for a in evaluation.actions] == [Rollback("api:5")]


def test_a_rollback_with_no_version_known_before_proposes_nothing_and_says_so() -> None:
    """Sent empty, it failed as terminal and quarantined the resource; now a note asks for one."""
    state = service(version="api:8")
    assert state.versions in (None, Versions())
    evaluation = rollback("").evaluate(snap(T0, state), History(), T0)
    assert evaluation.actions == ()
    (note,) = evaluation.notes
    assert note.resource == API and "name the one to return to" in note.message


def test_a_kind_the_scheme_never_takes_proposes_nothing_and_says_so() -> None:
    """Sent, no actuator would take it: a terminal failure that quarantines the resource."""
    action = operator_action(ResourceRef.parse(API), Start(), actor="cli:alice", reason=None)
    policy = OneShot(action, schemes={"ecs": frozenset({"restart", "scale"})})
    evaluation = policy.evaluate(snap(T0, service()), History(), T0)
    assert evaluation.actions == ()
    (note,) = evaluation.notes
    assert "no provider applies start on ecs://" in note.message


def test_a_name_its_own_provider_answered_without_is_refused_whatever_another_did() -> None:
    """Refused when its scheme's sensors answered; proposed when one of them failed, or
    when the snapshot does not say whose the errors are (any may be its provider's)."""

    def proposes(uri: str, unanswered: frozenset[str] | None) -> bool:
        snapshot = replace(
            snap(T0, service()), errors={"kubernetes": "down"}, unanswered=unanswered
        )
        action = operator_action(ResourceRef.parse(uri), Restart(), actor="cli:a", reason=None)
        return bool(OneShot(action).evaluate(snapshot, History(), T0).actions)

    assert not proposes("ecs://prod/apii", frozenset({"k8s"}))
    assert proposes("k8s://default/web", frozenset({"k8s"}))
    assert proposes("ecs://prod/apii", None)
