"""A real EventBridge event pattern matcher.

moto's ``events.test_event_pattern`` returns no ``Result``, and ``proxymx invoke`` / the rule
tests must route events through the template's patterns exactly as EventBridge would. This
module implements the documented semantics
(https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html and
``eb-create-pattern-operators.html``):

- A pattern is a JSON object; every key must match (AND). A value that is an object descends
  into the event; a value that is an array lists the accepted leaf values (OR).
- Arrays in the event are flattened: a leaf matches when ANY element matches, and nested
  objects inside arrays are matched field by field (``{"attributes": {"key": ["k"]}}`` matches
  when any element of ``attributes`` has ``key == "k"``), as EventBridge does.
- Leaf matchers: exact values (strings, numbers, booleans, ``null``; types are not coerced),
  ``prefix``, ``suffix`` (both optionally ``{"equals-ignore-case": ...}``), ``anything-but``
  (a value, a list, or a ``prefix`` / ``suffix`` / ``equals-ignore-case`` / ``wildcard``),
  ``numeric`` (``[op, value, op, value]``), ``exists``, ``equals-ignore-case``, ``wildcard``
  (``*``, with ``\\*`` for a literal star), ``cidr``.
- ``$or`` at any level: the object matches when any of the alternatives matches.
- Every matcher except ``{"exists": false}`` needs the field to be present with a leaf value.

An unknown operator raises :class:`PatternError`, so a typo in template.yaml fails a test
instead of silently matching nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["PatternError", "matches"]

_NUMERIC_OPS = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class PatternError(ValueError):
    """The pattern itself is invalid (unknown operator, wrong operand type)."""


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """True when ``event`` matches the EventBridge ``pattern``."""
    if not isinstance(pattern, Mapping):
        raise PatternError(f"an event pattern is a JSON object, not {type(pattern).__name__}")
    return _match_object(pattern, [event])


def _children(nodes: Sequence[Any], key: str) -> tuple[list[Any], bool]:
    """The values found under ``key`` in every node, arrays flattened; and whether the key exists."""
    found: list[Any] = []
    present = False
    for node in nodes:
        if isinstance(node, Mapping) and key in node:
            present = True
            _flatten(node[key], found)
    return found, present


def _flatten(value: Any, into: list[Any]) -> None:
    if isinstance(value, list):
        for item in value:
            _flatten(item, into)
    else:
        into.append(value)


def _match_object(pattern: Mapping[str, Any], nodes: Sequence[Any]) -> bool:
    for key, expected in pattern.items():
        if key == "$or":
            if not isinstance(expected, list) or not expected:
                raise PatternError("$or takes a non-empty array of patterns")
            if not any(_match_object(_as_object(alt), nodes) for alt in expected):
                return False
            continue
        values, _present = _children(nodes, key)
        if isinstance(expected, Mapping):
            objects = [value for value in values if isinstance(value, Mapping)]
            if not objects or not _match_object(expected, objects):
                return False
        elif isinstance(expected, list):
            leaves = [value for value in values if not isinstance(value, Mapping)]
            if not _match_leaf(expected, leaves):
                return False
        else:
            raise PatternError(f"pattern field {key!r} must be an object or an array, not {expected!r}")
    return True


def _as_object(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PatternError(f"$or alternatives are objects, not {value!r}")
    return value


def _match_leaf(matchers: list[Any], leaves: list[Any]) -> bool:
    if not matchers:
        raise PatternError("an empty array matches nothing; EventBridge rejects it")
    for matcher in matchers:
        if isinstance(matcher, Mapping):
            if len(matcher) != 1:
                raise PatternError(f"a content filter has exactly one operator: {dict(matcher)!r}")
            ((op, operand),) = matcher.items()
            if op == "exists":
                if not isinstance(operand, bool):
                    raise PatternError("exists takes true or false")
                if bool(leaves) == operand:
                    return True
                continue
            if any(_content_match(op, operand, leaf) for leaf in leaves):
                return True
        elif any(_exact(matcher, leaf) for leaf in leaves):
            return True
    return False


def _exact(expected: Any, actual: Any) -> bool:
    # JSON types are not coerced: "5" does not match 5, true does not match "true".
    if isinstance(expected, bool) or isinstance(actual, bool) or expected is None or actual is None:
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(expected) == float(actual)
    return type(expected) is type(actual) and bool(expected == actual)


def _content_match(op: str, operand: Any, leaf: Any) -> bool:
    if op == "prefix":
        return _affix(operand, leaf, str.startswith)
    if op == "suffix":
        return _affix(operand, leaf, str.endswith)
    if op == "equals-ignore-case":
        return isinstance(leaf, str) and _text(operand, op).casefold() == leaf.casefold()
    if op == "wildcard":
        return isinstance(leaf, str) and _wildcard_regex(_text(operand, op)).fullmatch(leaf) is not None
    if op == "anything-but":
        return _anything_but(operand, leaf)
    if op == "numeric":
        return _numeric(operand, leaf)
    if op == "cidr":
        return _cidr(operand, leaf)
    raise PatternError(f"unknown content filter {op!r}")


def _text(operand: Any, op: str) -> str:
    if not isinstance(operand, str):
        raise PatternError(f"{op} takes a string, not {operand!r}")
    return operand


def _affix(operand: Any, leaf: Any, test: Any) -> bool:
    if not isinstance(leaf, str):
        return False
    if isinstance(operand, Mapping):
        if set(operand) != {"equals-ignore-case"}:
            raise PatternError(f"prefix/suffix take a string or equals-ignore-case, not {dict(operand)!r}")
        wanted = _text(operand["equals-ignore-case"], "equals-ignore-case")
        return bool(test(leaf.casefold(), wanted.casefold()))
    return bool(test(leaf, _text(operand, "prefix/suffix")))


def _anything_but(operand: Any, leaf: Any) -> bool:
    if isinstance(operand, Mapping):
        if len(operand) != 1:
            raise PatternError(f"anything-but takes one operator, not {dict(operand)!r}")
        ((op, inner),) = operand.items()
        if op not in ("prefix", "suffix", "equals-ignore-case", "wildcard"):
            raise PatternError(f"anything-but does not support {op!r}")
        if not isinstance(leaf, str):
            return False
        if isinstance(inner, list):
            return not any(_content_match(op, item, leaf) for item in inner)
        return not _content_match(op, inner, leaf)
    excluded = operand if isinstance(operand, list) else [operand]
    return not any(_exact(value, leaf) for value in excluded)


def _numeric(operand: Any, leaf: Any) -> bool:
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise PatternError(f"numeric takes [op, value] or [op, value, op, value], not {operand!r}")
    if isinstance(leaf, bool) or not isinstance(leaf, int | float):
        return False
    for op, bound in zip(operand[::2], operand[1::2], strict=True):
        if op not in _NUMERIC_OPS or isinstance(bound, bool) or not isinstance(bound, int | float):
            raise PatternError(f"invalid numeric comparison {op!r} {bound!r}")
        if not _NUMERIC_OPS[op](float(leaf), float(bound)):
            return False
    return True


def _cidr(operand: Any, leaf: Any) -> bool:
    try:
        network = ipaddress.ip_network(_text(operand, "cidr"), strict=False)
    except ValueError as exc:
        raise PatternError(f"invalid cidr {operand!r}") from exc
    if not isinstance(leaf, str):
        return False
    try:
        return ipaddress.ip_address(leaf) in network
    except ValueError:
        return False


def _wildcard_regex(text: str) -> re.Pattern[str]:
    parts: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text) and text[index + 1] in "*\\":
            parts.append(re.escape(text[index + 1]))
            index += 2
            continue
        parts.append(".*" if char == "*" else re.escape(char))
        index += 1
    return re.compile("".join(parts), re.DOTALL)
