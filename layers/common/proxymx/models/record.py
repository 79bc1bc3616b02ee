"""Frozen, keyword-only records: what ``@dataclass(frozen=True, kw_only=True)`` gives the event
models, without its cost at import.

Measured with Python 3.13: each frozen dataclass costs ~0.6 ms of CPU when its module is
imported, because the decorator generates its methods as source and ``exec``s them; the CloudTrail
models are 27 classes, ~15 ms of every cold start, and bytecode shipped in the layer does not
remove it (the ``exec`` runs at every import). A :class:`Record` subclass is a plain class
statement; its fields are read once from its annotations. mypy checks it as a frozen, keyword-only
dataclass (PEP 681 ``dataclass_transform``): the constructor's arguments and types, no assignment.

A field is an annotation in the class body (``ClassVar`` ones excepted); a value assigned to it
there is its default (immutable values only: there is no ``default_factory``). A subclass may
annotate an inherited field again, to narrow its type or make it required.
"""

from __future__ import annotations

import inspect
from dataclasses import FrozenInstanceError
from typing import Any, ClassVar, dataclass_transform

_REQUIRED = object()
_MUTABLE = (list, dict, set, bytearray)


@dataclass_transform(kw_only_default=True, frozen_default=True)
class Record:
    __slots__ = ()
    _fields: ClassVar[dict[str, Any]] = {}  # name -> default (_REQUIRED: none), in declaration order

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields = dict(cls._fields)
        # The class's own annotations only (strings under "from __future__ import annotations").
        for name, annotation in inspect.get_annotations(cls).items():
            if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
                continue
            default = cls.__dict__.get(name, _REQUIRED)
            if isinstance(default, _MUTABLE):
                raise TypeError(f"{cls.__name__}.{name}: a mutable default would be shared by every instance")
            fields[name] = default
        cls._fields = fields

    def __init__(self, **values: Any) -> None:
        for name, default in self._fields.items():
            value = values.pop(name, default)
            if value is _REQUIRED:
                raise TypeError(f"{type(self).__name__}() missing keyword argument {name!r}")
            object.__setattr__(self, name, value)
        if values:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword arguments {sorted(values)}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self) or not isinstance(other, Record):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({shown})"
