"""``@frozen``: ``@dataclass(frozen=True)`` at a third less of its cold-start cost.

Measured with Python 3.13 (issue 11): ``@dataclass`` writes each class's methods as source and
``exec``s them when its module is imported, ~0.5 ms of CPU per frozen class at EVERY cold start
(bytecode shipped in the layer does not keep it: the ``exec`` runs at import), and a handler
imports 20-40 of them: with Powertools, the largest share of a handler's cold import. ``__eq__``,
``__hash__`` and ``__repr__`` do the same thing for every class, so ``@frozen`` shares one
implementation of each, driven by the field names it reads once, instead of compiling three
per class (~30 % of the decorator's cost, valgrind's instruction count; ``__init__`` and the
frozen ``__setattr__``/``__delattr__`` stay the generated ones).

The class is a real dataclass (``fields``, ``asdict``, ``replace``, ``field(...)`` work, and
mypy checks it as a frozen dataclass through PEP 681's ``dataclass_transform``), and the shared
methods answer exactly what the generated ones answer: the same ``repr`` text, ``==`` with the
same short-circuit and the same ``NotImplemented`` for another class, the same ``hash``
(tests/unit/test_frozen.py compares them with ``@dataclass(frozen=True)``'s).
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from reprlib import recursive_repr
from typing import Any, TypeVar, dataclass_transform

T = TypeVar("T")

_COMPARED = "__proxymx_compared__"
_HASHED = "__proxymx_hashed__"
_SHOWN = "__proxymx_shown__"


def _eq(self: Any, other: Any) -> Any:
    # As generated: identity first, the same class only, then `a == a' and b == b' ...`, which
    # answers the first falsy comparison (or the last one).
    if self is other:
        return True
    if other.__class__ is not self.__class__:
        return NotImplemented
    result: Any = True
    for name in getattr(self, _COMPARED):
        result = getattr(self, name) == getattr(other, name)
        if not result:
            return result
    return result


def _hash(self: Any) -> int:
    return hash(tuple(getattr(self, name) for name in getattr(self, _HASHED)))


@recursive_repr()
def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in getattr(self, _SHOWN))
    return f"{self.__class__.__qualname__}({shown})"


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def frozen(cls: type[T]) -> type[T]:
    """``@dataclass(frozen=True)``, with the shared ``__eq__``, ``__hash__`` and ``__repr__``."""
    made: Any = dataclass(frozen=True, eq=False, repr=False)(cls)
    found = fields(made)
    setattr(made, _COMPARED, tuple(f.name for f in found if f.compare))
    # dataclass hashes the compared fields, unless a field says otherwise with hash=.
    setattr(made, _HASHED, tuple(f.name for f in found if (f.compare if f.hash is None else f.hash)))
    setattr(made, _SHOWN, tuple(f.name for f in found if f.repr))
    # A method the class body defines wins, as it does with @dataclass.
    for name, method in (("__eq__", _eq), ("__hash__", _hash), ("__repr__", _repr)):
        if name not in made.__dict__:
            setattr(made, name, method)
    return cls
