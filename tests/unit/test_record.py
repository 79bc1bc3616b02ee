"""Record: the frozen, keyword-only base of the event models behaves as a frozen dataclass would."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest
from proxymx.models.record import Record


class Base(Record):
    name: str
    port: int | None = None
    KIND: ClassVar[str] = "base"


class Narrowed(Base):
    port: int  # made required again
    extra: str = "x"


def test_fields_defaults_and_order() -> None:
    assert repr(Base(name="mx")) == "Base(name='mx', port=None)"
    assert repr(Narrowed(name="mx", port=25)) == "Narrowed(name='mx', port=25, extra='x')"
    assert Base.KIND == "base"


def test_a_required_field_must_be_given_and_unknown_ones_are_refused() -> None:
    with pytest.raises(TypeError, match="missing keyword argument 'name'"):
        Base()
    with pytest.raises(TypeError, match="missing keyword argument 'port'"):
        Narrowed(name="mx")
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['prot'\]"):
        Base(name="mx", prot=25)


def test_frozen() -> None:
    record = Base(name="mx")
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del record.name  # type: ignore[misc]
    assert record.name == "mx"


def test_equality_and_hash_by_type_and_values() -> None:
    assert Base(name="mx", port=25) == Base(name="mx", port=25)
    assert Base(name="mx", port=25) != Base(name="mx", port=26)
    assert Narrowed(name="mx", port=25, extra="") != Base(name="mx", port=25)
    assert len({Base(name="mx"), Base(name="mx"), Base(name="other")}) == 2


def test_a_mutable_default_is_refused_when_the_class_is_made() -> None:
    with pytest.raises(TypeError, match="mutable default"):

        class Shared(Record):
            items: list[str] = []
