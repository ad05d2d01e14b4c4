"""`slot_init`: the same dataclass, frozen as before, built through its slots.

Each class it serves must take the parameters the stock ``__init__`` takes, fill
the same fields (a fresh default from each factory) and still refuse writes.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import FrozenInstanceError, InitVar, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

import jarvis.model
from jarvis.model import Event, EventKind, Health, ResourceRef, ResourceState
from jarvis.model.slots import slot_factory, slot_init

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _served() -> list[type[Any]]:
    """Every class of `jarvis.model` whose ``__init__`` `slot_init` built."""
    found = []
    for value in vars(jarvis.model).values():
        init = getattr(value, "__init__", None)
        code = getattr(init, "__code__", None)
        built = code is not None and code.co_filename == "<string>" and "_BUILDER" in code.co_names
        if isinstance(value, type) and built:
            found.append(value)
    return found


def _stock_parameters(cls: type[Any]) -> list[tuple[str, object]]:
    """(name, default) of each parameter the dataclass's own ``__init__`` would take."""
    params = []
    for one in dataclasses.fields(cls):
        if one.default is not dataclasses.MISSING:
            params.append((one.name, one.default))
        elif one.default_factory is not dataclasses.MISSING:
            params.append((one.name, "<factory>"))
        else:
            params.append((one.name, inspect.Parameter.empty))
    return params


def test_the_hot_values_are_served() -> None:
    names = {cls.__name__ for cls in _served()}
    assert {"ResourceState", "Event", "Replicas", "Action", "Outcome", "Verdict"} <= names


@pytest.mark.parametrize("cls", _served(), ids=lambda cls: cls.__name__)
def test_served_classes_take_the_stock_parameters(cls: type[Any]) -> None:
    parameters = list(inspect.signature(cls).parameters.values())
    seen = [
        (p.name, "<factory>" if repr(p.default) == "<factory>" else p.default) for p in parameters
    ]
    assert seen == _stock_parameters(cls)
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters)


@pytest.mark.parametrize("cls", _served(), ids=lambda cls: cls.__name__)
def test_served_classes_stay_frozen(cls: type[Any]) -> None:
    assert cls.__dataclass_params__.frozen
    first = dataclasses.fields(cls)[0].name
    instance = object.__new__(cls)
    with pytest.raises(FrozenInstanceError):
        setattr(instance, first, None)


@slot_init
@dataclass(frozen=True, slots=True)
class _Sample:
    name: str
    count: int = 3
    tags: dict[str, int] = field(default_factory=dict)
    note: str | None = None


@dataclass(frozen=True, slots=True)
class _Stock:
    name: str
    count: int = 3
    tags: dict[str, int] = field(default_factory=dict)
    note: str | None = None


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    (("a",), {}),
    (("a", 5), {}),
    (("a", 5, {"x": 1}, "n"), {}),
    ((), {"name": "a", "note": "n"}),
    (("a",), {"tags": {"y": 2}, "count": 0}),
]
"""Ways to call `_Sample`: positional, keyword, defaults and factories left or given."""


def _fields(value: object) -> tuple[object, ...]:
    return tuple(getattr(value, one.name) for one in dataclasses.fields(value))  # type: ignore[arg-type]


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_it_fills_what_the_stock_init_fills(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    assert _fields(_Sample(*args, **kwargs)) == _fields(_Stock(*args, **kwargs))


class _SampleSubclass(_Sample):
    __slots__ = ()


def test_an_instance_leaves_init_as_its_own_class() -> None:
    """The plain class lent for the writes never shows: a subclass's instance stays one too."""
    assert type(_Sample("a")) is _Sample
    assert type(_SampleSubclass("a")) is _SampleSubclass
    assert _fields(_SampleSubclass("a", 2)) == _fields(_Stock("a", 2))
    with pytest.raises(FrozenInstanceError):
        _Sample("a").name = "b"  # type: ignore[misc]


def test_each_instance_gets_its_own_default_from_the_factory() -> None:
    first, second = _Sample("a"), _Sample("b")
    assert first.tags == {} and first.tags is not second.tags


def test_equality_repr_and_replace_are_the_dataclass_ones() -> None:
    sample = _Sample("a", 2, note="n")
    assert sample == _Sample("a", 2, note="n")
    assert repr(sample) == "_Sample(name='a', count=2, tags={}, note='n')"
    assert dataclasses.replace(sample, count=4) == _Sample("a", 4, note="n")
    with pytest.raises(FrozenInstanceError):
        sample.count = 5  # type: ignore[misc]


def test_a_missing_or_unknown_argument_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        _Sample()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Sample("a", colour="red")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Sample("a", 1, {}, None, "extra")  # type: ignore[call-arg]


def test_the_model_values_come_out_as_before() -> None:
    ref = ResourceRef("sim", "api")
    state = ResourceState(ref, Health.HEALTHY, AT, version="v2")
    assert (state.ref, state.health, state.version, state.detail, dict(state.metrics)) == (
        ref,
        Health.HEALTHY,
        "v2",
        "",
        {},
    )
    assert state.metrics is not ResourceState(ref, Health.HEALTHY, AT).metrics
    event = Event(EventKind.TICK_STARTED, AT, "k", payload={"dry_run": False})
    assert dataclasses.replace(event, id=7) == Event(
        EventKind.TICK_STARTED, AT, "k", payload={"dry_run": False}, id=7
    )


class _Plain:
    name: str


@dataclass(slots=True)
class _Thawed:
    name: str


@dataclass(frozen=True)
class _Unslotted:
    name: str


@dataclass(frozen=True, slots=True)
class _Checked:
    name: str

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a name is needed")


@dataclass(frozen=True, slots=True)
class _KeywordOnly:
    name: str = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class _Derived:
    name: str
    size: int = field(init=False, default=0)


@dataclass(frozen=True, slots=True)
class _WithInitVar:
    name: str
    scale: InitVar[int]


@dataclass(frozen=True, slots=True)
class _Empty:
    pass


@dataclass(frozen=True, slots=True)
class _Base:
    name: str


@dataclass(frozen=True, slots=True)
class _Inheriting(_Base):
    size: int = 0


class _SlottedMixin:
    __slots__ = ("extra",)


@dataclass(frozen=True, slots=True)
class _OnSlottedBase(_SlottedMixin):
    name: str


@pytest.mark.parametrize(
    "cls",
    [
        _Plain,
        _Thawed,
        _Unslotted,
        _Checked,
        _KeywordOnly,
        _Derived,
        _WithInitVar,
        _Empty,
        _Inheriting,
        _OnSlottedBase,
    ],
    ids=lambda cls: cls.__name__,
)
def test_a_class_it_cannot_serve_is_refused(cls: type[Any]) -> None:
    stock = vars(cls).get("__init__")
    with pytest.raises(TypeError):
        slot_init(cls)
    assert vars(cls).get("__init__") is stock


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_the_factory_builds_what_the_class_builds(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """`slot_factory`'s function fills what the class's own call fills, as the class itself."""
    built = slot_factory(_Sample)(*args, **kwargs)
    assert type(built) is _Sample
    assert built == _Sample(*args, **kwargs)
    assert _fields(built) == _fields(_Stock(*args, **kwargs))
    with pytest.raises(FrozenInstanceError):
        built.name = "b"  # type: ignore[misc]


def test_the_factory_takes_the_class_parameters_and_fresh_defaults() -> None:
    """The same signature as the class, a fresh default from each factory, the same refusals."""
    build = slot_factory(_Sample)
    assert list(inspect.signature(build).parameters) == list(inspect.signature(_Sample).parameters)
    assert build("a").tags is not build("b").tags
    with pytest.raises(TypeError):
        build()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        build("a", colour="red")  # type: ignore[call-arg]


@pytest.mark.parametrize("cls", _served(), ids=lambda cls: cls.__name__)
def test_every_served_class_has_a_factory(cls: type[Any]) -> None:
    assert list(inspect.signature(slot_factory(cls)).parameters) == [
        name for name, _ in _stock_parameters(cls)
    ]


def test_a_model_state_from_the_factory_equals_one_from_the_class() -> None:
    ref = ResourceRef("sim", "api")
    state = slot_factory(ResourceState)(ref, Health.HEALTHY, AT, None, "v2", "", {"cpu": 1.0})
    assert state == ResourceState(ref, Health.HEALTHY, AT, None, "v2", "", {"cpu": 1.0})
    assert type(state) is ResourceState and state.attributes == {}


@pytest.mark.parametrize("cls", [_Stock, _Plain, _SampleSubclass], ids=lambda cls: cls.__name__)
def test_a_class_slot_init_did_not_serve_has_no_factory(cls: type[Any]) -> None:
    with pytest.raises(TypeError):
        slot_factory(cls)
