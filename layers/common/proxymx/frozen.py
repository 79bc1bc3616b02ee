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

Collecting the fields does not call ``dataclass`` either: measured on Python 3.13 with valgrind,
``dataclass(init=False, repr=False, eq=False)`` still costs ~0.8 M instructions per class (it
inspects each string annotation for ``ClassVar``/``InitVar`` through ``sys.modules`` and a regex),
about 40 M of the Reconcile handler's ~90 M. :func:`frozen` reads the class's own annotations and
builds the same ``Field`` objects (``dataclasses.field``, then the name, the type and the field
kind ``dataclass`` would set), so ``fields()``, ``asdict``, ``replace``, ``is_dataclass`` and
``__match_args__`` work as before: tests/unit/test_frozen.py checks them against
``@dataclass(frozen=True)``. A ``ClassVar`` annotation (spelled ``ClassVar[...]`` or
``typing.ClassVar[...]``) is not a field; ``InitVar`` would need ``__post_init__`` and is refused.
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, Field, FrozenInstanceError, dataclass, field
from reprlib import recursive_repr
from typing import Any, ClassVar, TypeVar, dataclass_transform

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


# What ``dataclasses.fields`` keeps (a real field, not a ClassVar pseudo-field): the marker
# ``dataclass`` itself puts on each Field. Private, but the same object in 3.10-3.13; a test pins it.
_FIELD_KIND: Any = dataclasses._FIELD  # type: ignore[attr-defined]


# The ``__dataclass_params__`` every @frozen class shares, computed once from an empty class.
def _shared_params() -> Any:
    empty: Any = dataclass(init=False, repr=False, eq=False)(type("_Params", (), {}))
    return empty.__dataclass_params__


_PARAMS = _shared_params()


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return getattr(annotation, "__origin__", None) is ClassVar


def _is_initvar(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("InitVar", "dataclasses.InitVar"))
    return isinstance(annotation, dataclasses.InitVar)


def _collect(cls: type) -> dict[str, Field[Any]]:
    """The Field of every annotated name of the class body, as ``dataclass`` would make them."""
    found: dict[str, Field[Any]] = {}
    for name, annotation in vars(cls).get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        if _is_initvar(annotation):
            raise TypeError(
                f"@frozen {cls.__qualname__}: InitVar needs __post_init__: use @dataclass(frozen=True)"
            )
        default = vars(cls).get(name, MISSING)
        made: Field[Any] = default if isinstance(default, Field) else field(default=default)
        if made.default is not MISSING and made.default.__class__.__hash__ is None:
            # dataclass's own rule: a mutable default would be shared by every instance.
            raise ValueError(
                f"mutable default {type(made.default)} for field {name} is not allowed: use default_factory"
            )
        made.name = name
        made.type = annotation
        made._field_type = _FIELD_KIND  # type: ignore[attr-defined]
        if made.kw_only is MISSING:
            made.kw_only = False  # the decorator's kw_only=False, as dataclass settles it
        # As dataclass does: the class attribute is the default, or absent.
        if isinstance(default, Field):
            if made.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, made.default)
        found[name] = made
    return found


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
    collected = _collect(cls)
    found = tuple(collected.values())
    if any(f.kw_only is True or not f.init for f in found):
        raise TypeError(f"@frozen {cls.__qualname__}: kw_only or init=False: use @dataclass(frozen=True)")
    made: Any = cls
    made.__dataclass_fields__ = collected
    made.__dataclass_params__ = _PARAMS
    type.__setattr__(made, "__match_args__", tuple(f.name for f in found))
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
