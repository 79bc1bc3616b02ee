"""``@frozen`` answers what ``@dataclass(frozen=True)`` answers (proxymx/frozen.py).

Each case builds the same class body twice, once with each decorator, and compares what the
generated methods and the shared ones say about the same values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import FrozenInstanceError, asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

import pytest
from proxymx.frozen import frozen
from proxymx.loadbalancer.readiness import Requirement


def twins(make: Callable[[Callable[[type], type]], type]) -> tuple[type, type]:
    """The class ``make`` builds, once with @dataclass(frozen=True), once with @frozen."""
    return make(dataclass(frozen=True)), make(frozen)


def plan_like(decorate: Callable[[type], type]) -> type:
    class Plan:
        name: str
        ports: tuple[int, ...] = ()
        attributes: dict[str, str] = field(default_factory=dict, hash=False)
        raw: str | None = field(default=None, compare=False)
        secret: str = field(default="", repr=False)

    return decorate(Plan)


def no_fields(decorate: Callable[[type], type]) -> type:
    class Nothing:
        pass

    return decorate(Nothing)


@pytest.mark.parametrize(
    "args",
    [
        ("a",),
        ("a", (25, 587)),
        ("a", (25,), {"k": "v"}, "raw", "hidden"),
    ],
)
def test_repr_eq_and_hash_are_the_generated_ones(args: tuple[Any, ...]) -> None:
    # Given the same class made by @dataclass(frozen=True) and by @frozen
    generated, shared = twins(plan_like)
    # When both are built from the same values
    g, s = generated(*args), shared(*args)
    # Then repr (repr=False field left out), fields and asdict agree
    assert repr(s) == repr(g)
    assert "hidden" not in repr(s)
    assert [f.name for f in fields(s)] == [f.name for f in fields(g)]
    assert asdict(s) == asdict(g)
    # And equality ignores the compare=False field, as generated
    assert (s == shared(*args)) is (g == generated(*args)) is True
    assert (replace(s, raw="other") == s) is (replace(g, raw="other") == g) is True
    assert (replace(s, name="b") == s) is (replace(g, name="b") == g) is False
    # And hashing leaves out the hash=False field but counts the others, with the same value
    assert hash(s) == hash(g)
    assert hash(replace(s, raw="other")) == hash(s)
    assert hash(replace(s, attributes={"other": "x"})) == hash(s)


def test_another_class_is_not_implemented_and_identity_short_circuits() -> None:
    # Given two @frozen classes with the same fields
    _, shared = twins(plan_like)
    _, other = twins(plan_like)
    one = shared("a")
    # When compared across classes and with themselves
    # Then __eq__ answers NotImplemented (Python then says False), as generated
    assert one.__eq__(other("a")) is NotImplemented
    assert (one == other("a")) is False
    nan = shared(float("nan"))  # nan != nan, but an object is equal to itself
    assert nan.__eq__(nan) is True
    assert nan != shared(float("nan"))


def test_a_class_without_fields() -> None:
    generated, shared = twins(no_fields)
    assert repr(shared()) == repr(generated()) == "no_fields.<locals>.Nothing()"
    assert shared() == shared()
    assert hash(shared()) == hash(generated()) == hash(())


def test_it_stays_frozen_and_recursive_repr_is_guarded() -> None:
    # Given a @frozen instance holding a mutable list that holds the instance itself
    _, shared = twins(plan_like)
    one = shared("a", attributes={})
    one.attributes["self"] = one
    # Then assignment and deletion fail as with @dataclass(frozen=True)
    with pytest.raises(FrozenInstanceError):
        one.name = "b"
    with pytest.raises(FrozenInstanceError):
        del one.name
    # And repr does not recurse forever
    assert "..." in repr(one)


def test_a_method_of_the_class_body_wins() -> None:
    # Given a @frozen class whose body writes its own __repr__ (Requirement's is the generated one)
    @frozen
    class Shown:
        value: int

        def __repr__(self) -> str:
            return f"<{self.value}>"

    # Then it is kept
    assert repr(Shown(1)) == "<1>"
    assert dataclasses.is_dataclass(Requirement) and Requirement.__repr__.__name__ == "_repr"


def test_what_the_shared_init_cannot_do_is_refused_at_decoration() -> None:
    # Given classes using what only the generated __init__ handles / When decorated
    # Then @frozen refuses them with a message, instead of building a wrong class
    with pytest.raises(TypeError, match="__post_init__"):

        @frozen
        class Post:
            value: int

            def __post_init__(self) -> None:
                pass

    with pytest.raises(TypeError, match="kw_only"):

        @frozen
        class KeywordOnly:
            value: int = field(kw_only=True)

    @frozen
    class Base:
        value: int
        # A ClassVar is not a field, as with @dataclass
        LIMIT: ClassVar[int] = 3

    assert [f.name for f in fields(Base)] == ["value"] and Base(1).LIMIT == 3

    with pytest.raises(TypeError, match="inherited"):

        @frozen
        class Derived(Base):
            more: int = 0


def test_the_constructor_binds_as_the_generated_one() -> None:
    # Given the twin classes
    generated, shared = twins(plan_like)
    # When built positionally, by keyword, mixed, or wrongly
    cases: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        (("a", (25,)), {}),
        ((), {"name": "a", "secret": "s"}),
        (("a",), {"raw": "r", "ports": (1,)}),
    ]
    for args, kwargs in cases:
        # Then they hold the same values
        assert asdict(shared(*args, **kwargs)) == asdict(generated(*args, **kwargs))
    # And each gets its own default_factory value
    assert shared("a").attributes is not shared("a").attributes
    # And the same mistakes fail in both
    for args, kwargs in [((), {}), (("a",), {"name": "b"}), (("a",), {"colour": 1}), (("a",) * 6, {})]:
        with pytest.raises(TypeError):
            generated(*args, **kwargs)
        with pytest.raises(TypeError):
            shared(*args, **kwargs)


def test_the_fields_are_collected_as_dataclass_collects_them() -> None:
    # Given the twin classes (@frozen collects fields without calling dataclass)
    pair: tuple[Any, Any] = twins(plan_like)
    generated, shared = pair

    # Then the Field objects say the same, the class attributes are the same defaults (or absent),
    # match_args and replace() agree, and dataclasses sees a dataclass
    def described(cls: Any) -> list[tuple[Any, ...]]:
        return [
            (f.name, f.type, f.default, f.default_factory, f.init, f.repr, f.hash, f.compare, f.kw_only)
            for f in fields(cls)
        ]

    assert described(shared) == described(generated)
    for name in ("name", "ports", "attributes", "raw", "secret"):
        assert hasattr(shared, name) == hasattr(generated, name)
        assert getattr(shared, name, None) == getattr(generated, name, None)
    assert shared.__match_args__ == generated.__match_args__
    assert dataclasses.is_dataclass(shared) and dataclasses.is_dataclass(shared("a"))
    assert asdict(replace(shared("a"), ports=(25,))) == asdict(replace(generated("a"), ports=(25,)))
    with pytest.raises(TypeError):
        replace(shared("a"), colour=1)


def test_classvars_and_mutable_defaults_are_told_apart_as_dataclass_does() -> None:
    # Given a ClassVar spelled through the module (a pseudo-field for dataclass too)
    import typing

    @frozen
    class Spelled:
        value: int
        LIMIT: typing.ClassVar[int] = 3

    assert [f.name for f in fields(Spelled)] == ["value"] and Spelled(1).LIMIT == 3
    # And a mutable default is refused by both
    with pytest.raises(ValueError, match="mutable default"):

        @dataclass(frozen=True)
        class Generated:
            items: list[int] = []  # noqa: RUF008

    with pytest.raises(ValueError, match="mutable default"):

        @frozen
        class Shared:
            items: list[int] = []
