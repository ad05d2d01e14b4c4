"""`slot_init`: a frozen dataclass built for about half the cost, and still frozen.

A ``@dataclass(frozen=True, slots=True)`` sets each field in its ``__init__``
through ``object.__setattr__``, because its own ``__setattr__`` refuses every
write. That call is looked up on ``object`` and goes through a wrapper for
every field: about 0.1 µs a field, 1.8 µs for a `ResourceState`, whose 17
fields the simulated fleet fills for 50 services every tick. Setting each slot
through its member descriptor's ``__set__`` took it to 1.0 µs, but that is
still a wrapper call per field (about 16,000 instructions a `ResourceState`).
The ``__init__`` built here instead lends the instance, for the length of the
call, to a plain class with the same slots, whose writes are the interpreter's
own slot stores, and gives it back its class before returning (about 8,500
instructions). The class stays a dataclass, frozen at run time as before: only
the writes its ``__init__`` does take the shorter road.

`slot_factory` gives the same ``__init__``'s body as a plain function, for the
few places that build a class's instances per service or per event every tick
(the simulated fleet's states, the in-memory store's read-back of each event):
a class call goes through the type's call, an argument tuple
and ``__init__``'s lookup, and the instance is lent and given back; the
function starts from the plain class's instance and gives it its class once
(about 6,300 instructions a `ResourceState` against 8,700).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

__all__ = ["slot_factory", "slot_init"]

_T = TypeVar("_T")
_P = ParamSpec("_P")


class _Factory:
    """The default shown for a field with a ``default_factory``, as dataclasses show it."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()

_FACTORIES: dict[object, Callable[..., Any]] = {}
"""Each class `slot_init` served, with the function `slot_factory` hands out for it."""


def slot_init(cls: type[_T]) -> type[_T]:
    """Give a frozen, slotted dataclass an ``__init__`` that sets its slots directly.

    Use it above ``@dataclass(frozen=True, slots=True)`` on the values built per
    resource or per event every tick. The new ``__init__`` takes the same
    parameters, in the same order, with the same defaults, and calls each
    ``default_factory`` as dataclasses do. A class it cannot serve so (not a
    frozen slotted dataclass, or with a field that is keyword-only, left out of
    ``__init__``, an ``InitVar`` or inherited, or with ``__post_init__``) is
    refused at import.
    """
    if not dataclasses.is_dataclass(cls) or "__slots__" not in vars(cls):
        raise TypeError(f"slot_init needs a slotted dataclass, not {cls.__qualname__}")
    params: Any = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or hasattr(cls, "__post_init__"):
        raise TypeError(f"slot_init needs a frozen dataclass without __post_init__: {cls}")
    declared: dict[str, dataclasses.Field[Any]] = getattr(cls, "__dataclass_fields__", {})
    fields = dataclasses.fields(cls)
    if len(fields) != len(declared) or not fields:
        raise TypeError(f"slot_init cannot serve InitVar fields, or no fields: {cls}")
    # A plain class with the same slots: an instance can take its class and back
    # (`object.__setattr__` of ``__class__`` checks the layouts match).
    builder = type(f"_{cls.__name__}Builder", (), {"__slots__": vars(cls)["__slots__"]})
    try:  # the layouts must match; a class that cannot lend its instances is refused now
        probe = object.__new__(cls)
        object.__setattr__(probe, "__class__", builder)
        probe.__class__ = cls
    except TypeError as exc:
        raise TypeError(f"slot_init cannot serve {cls.__qualname__}: {exc}") from exc
    namespace: dict[str, Any] = {
        "_FACTORY": _FACTORY,
        "_BUILDER": builder,
        "_lend": object.__setattr__,
        "_new": object.__new__,
        "_CLASS": cls,
    }
    signature: list[str] = []
    body: list[str] = []
    for number, field in enumerate(fields):
        if field.kw_only or not field.init:
            raise TypeError(f"slot_init cannot serve keyword-only or init=False fields: {cls}")
        name = field.name
        if name not in vars(cls):
            raise TypeError(f"slot_init cannot serve a field inherited from a base: {cls}")
        value = name
        if field.default is not dataclasses.MISSING:
            namespace[f"_default{number}"] = field.default
            signature.append(f"{name}=_default{number}")
        elif field.default_factory is not dataclasses.MISSING:
            namespace[f"_factory{number}"] = field.default_factory
            signature.append(f"{name}=_FACTORY")
            value = f"_factory{number}() if {name} is _FACTORY else {name}"
        else:
            signature.append(name)
        body.append(f"    self.{name} = {value}")
    source = (
        f"def __init__(self, {', '.join(signature)}):\n"
        "    _slot_init_kind = type(self)\n"
        "    _lend(self, '__class__', _BUILDER)\n"
        + "\n".join(body)
        + "\n    self.__class__ = _slot_init_kind\n"
    )
    # The same writes from a fresh instance of the plain class, given ``cls`` at the end.
    source += (
        f"def __build__({', '.join(signature)}):\n"
        "    self = _new(_BUILDER)\n"
        + "\n".join(body)
        + "\n    self.__class__ = _CLASS\n    return self\n"
    )
    exec(source, namespace)  # noqa: S102 - built from field names only, as dataclasses does
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = vars(cls)["__init__"].__doc__
    setattr(cls, "__init__", init)  # noqa: B010 - mypy refuses assigning a method
    build = namespace["__build__"]
    build.__qualname__ = f"slot_factory({cls.__qualname__})"
    build.__module__ = cls.__module__
    _FACTORIES[cls] = build
    return cls


def slot_factory(cls: Callable[_P, _T]) -> Callable[_P, _T]:
    """A function that builds ``cls`` as ``cls(...)`` does, for a class `slot_init` served.

    Same parameters, defaults and factories, and an instance of ``cls`` itself
    (never of a subclass), frozen as any other. For the hottest construction
    sites only: calling the class reads better everywhere else.
    """
    build: Callable[_P, _T] | None = _FACTORIES.get(cls)
    if build is None:
        raise TypeError(f"slot_factory needs a class slot_init served, not {cls!r}")
    return build
