"""``@frozen``: ``@dataclass(frozen=True)`` without compiling a line at import.

Measured with Python 3.13 (issue 11): ``@dataclass`` writes each class's methods as source and
``exec``s them when its module is imported, ~0.5 ms of CPU per frozen class at EVERY cold start
(bytecode shipped in the layer does not keep it: the ``exec`` runs at import), and a handler
imports 17-38 of them: with Powertools, the largest share of a handler's cold import. The methods
do the same thing for every class, so ``@frozen`` lets ``dataclass`` collect the fields (its
``Field`` objects, ``fields()``, ``asdict``, ``replace`` and ``__match_args__`` work as usual) but
generate nothing, and gives the class one shared ``__init__``, ``__setattr__``/``__delattr__``
(frozen), ``__eq__``, ``__hash__`` and ``__repr__``, driven by the field names read once. mypy
checks the class as a frozen dataclass through PEP 681's ``dataclass_transform``.

The shared methods answer what the generated ones answer (tests/unit/test_frozen.py compares
them with ``@dataclass(frozen=True)``'s): the same constructor arguments (positional or by
keyword, defaults, ``default_factory``), ``FrozenInstanceError`` on assignment and deletion, the
same ``repr`` text, ``==`` with the same short-circuit and ``NotImplemented`` for another class,
the same ``hash``. What they do not support (``__post_init__``, so ``InitVar``, ``kw_only``,
``init=False`` fields, inheriting fields) is refused when the class is decorated: use
``@dataclass(frozen=True)`` for such a class. ``__dataclass_params__.frozen`` reads False (the
freezing is ours), so a ``@dataclass(frozen=True)`` cannot subclass a ``@frozen`` class.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, FrozenInstanceError, dataclass, field, fields
from reprlib import recursive_repr
from typing import Any, TypeVar, dataclass_transform

T = TypeVar("T")

# Set on each class: (name, default, default_factory) of every field, in order; the names of the
# compared, hashed and shown ones.
_INIT = "__proxymx_init__"
_COMPARED = "__proxymx_compared__"
_HASHED = "__proxymx_hashed__"
_SHOWN = "__proxymx_shown__"


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    spec: tuple[tuple[str, Any, Any], ...] = getattr(self, _INIT)
    where = f"{type(self).__qualname__}.__init__()"
    if len(args) > len(spec):
        raise TypeError(f"{where} takes {len(spec) + 1} positional arguments but {len(args) + 1} were given")
    for index, (name, default, factory) in enumerate(spec):
        if index < len(args):
            if name in kwargs:
                raise TypeError(f"{where} got multiple values for argument {name!r}")
            value = args[index]
        elif name in kwargs:
            value = kwargs[name]
        elif default is not MISSING:
            value = default
        elif factory is not MISSING:
            value = factory()
        else:
            raise TypeError(f"{where} missing 1 required argument: {name!r}")
        object.__setattr__(self, name, value)
    if len(kwargs) > sum(1 for name, _, _ in spec[len(args) :] if name in kwargs):
        unexpected = next(name for name in kwargs if name not in {n for n, _, _ in spec})
        raise TypeError(f"{where} got an unexpected keyword argument {unexpected!r}")


def _setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


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


_SHARED = {
    "__init__": _init,
    "__setattr__": _setattr,
    "__delattr__": _delattr,
    "__eq__": _eq,
    "__hash__": _hash,
    "__repr__": _repr,
}


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def frozen(cls: type[T]) -> type[T]:
    """``@dataclass(frozen=True)``, with shared methods instead of generated ones."""
    if any("__dataclass_fields__" in vars(base) for base in cls.__mro__[1:]) or "__post_init__" in vars(cls):
        raise TypeError(
            f"@frozen {cls.__qualname__}: inherited fields or __post_init__: use @dataclass(frozen=True)"
        )
    if cls.__doc__ is None:
        # dataclass would compute a docstring from the signature of its __init__ (inspect: costly).
        cls.__doc__ = f"{cls.__name__}({', '.join(vars(cls).get('__annotations__', {}))})"
    made: Any = dataclass(init=False, repr=False, eq=False)(cls)
    found = fields(made)
    # (ClassVar annotations are not fields, as with @dataclass; an InitVar needs __post_init__.)
    if any(f.kw_only is True or not f.init for f in found):
        raise TypeError(f"@frozen {cls.__qualname__}: kw_only or init=False: use @dataclass(frozen=True)")
    setattr(made, _INIT, tuple((f.name, f.default, f.default_factory) for f in found))
    setattr(made, _COMPARED, tuple(f.name for f in found if f.compare))
    # dataclass hashes the compared fields, unless a field says otherwise with hash=.
    setattr(made, _HASHED, tuple(f.name for f in found if (f.compare if f.hash is None else f.hash)))
    setattr(made, _SHOWN, tuple(f.name for f in found if f.repr))
    for name, method in _SHARED.items():
        if name in vars(made):
            # A method the class body defines wins, as it does with @dataclass, which also refuses
            # a frozen class's own __setattr__/__delattr__.
            if name in ("__setattr__", "__delattr__"):
                raise TypeError(f"@frozen {cls.__qualname__} cannot define {name}")
            continue
        setattr(made, name, method)
    return cls
