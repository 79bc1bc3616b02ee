"""Checked reads of JSON: the one validator behind every event model and the summary.

A model builds itself from an :class:`Obj`, one read per field; each read checks the type and
the bounds of that field and raises :class:`Invalid` naming its path
(``detail.requestParameters.listeners[0].instancePort: input should be a valid integer, got 'smtp'``).
A model can only hold what a read returned, so no field escapes validation.

Strict JSON types: a string is not a number, a number is not a boolean, ``1.0`` is not an
integer. ``null`` is the same as absent for an optional field, and an error for a required one.
Times are RFC 3339 with a UTC offset, because the flows subtract them from aware datetimes.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Final

# Bounds for strings whose AWS limit is not documented: far above any real value, far below
# what would hurt (a log line, a metric dimension, an SNS message).
SHORT_MAX: Final = 256
ARN_MAX: Final = 2048
TEXT_MAX: Final = 16384
LIST_MAX: Final = 1000

# RFC 3339 section 5.6 (date-time): "T"/"Z" in either case, fractions of any length, and an
# offset that is required (a time without one cannot be compared with an aware datetime).
# re.ASCII: in a str pattern \d is any Unicode digit (fullwidth ones too), which int() reads.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
_SHOWN = 40  # characters of a bad value quoted in a message (values may be huge or hostile)


class Invalid(ValueError):
    """A field is missing or not what the model needs; ``str()`` is ``path: message``."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def show(value: object) -> str:
    """A short, printable rendering of a rejected value."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 3]}..."


def parse_time(text: str) -> datetime | None:
    """An aware datetime from an RFC 3339 date-time, or None."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    offset = timedelta(0)
    if sign:
        if int(off_h) > 23 or int(off_m) > 59:
            return None
        offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == "-" else 1)
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            # RFC 3339 allows a leap second (60); Python has none: it is the last second, kept.
            min(int(second), 59),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=timezone(offset),
        )
    except ValueError:
        return None


class Obj:
    """A JSON object at a path (``""`` for the event itself)."""

    __slots__ = ("_data", "path")

    def __init__(self, data: object, path: str = "") -> None:
        if not isinstance(data, dict):
            raise Invalid(path or "(event)", f"input should be an object, got {type(data).__name__}")
        self._data: dict[str, Any] = data
        self.path = path

    def fields(self) -> dict[str, Any]:
        """The object as it is, unchecked (a scheduled event's detail: nothing reads it)."""
        return dict(self._data)

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str) -> Any:
        """The unchecked value (None when absent): for dispatch only, never stored in a model."""
        return self._data.get(key)

    def _value(self, key: str, required: bool) -> Any:
        value = self._data.get(key)
        if value is None and required:
            raise Invalid(self.at(key), "field required" if key not in self._data else "input is null")
        return value

    # ----- strings --------------------------------------------------------------------------

    def text(
        self, key: str, *, max_len: int, min_len: int = 1, pattern: re.Pattern[str] | None = None
    ) -> str:
        return _text(self._value(key, True), self.at(key), max_len, min_len, pattern)

    def opt_text(
        self, key: str, *, max_len: int, min_len: int = 0, pattern: re.Pattern[str] | None = None
    ) -> str | None:
        value = self._value(key, False)
        return None if value is None else _text(value, self.at(key), max_len, min_len, pattern)

    def const(self, key: str, expected: str) -> str:
        value = self._value(key, True)
        if value != expected:
            raise Invalid(self.at(key), f"input should be {expected!r}, got {show(value)}")
        return expected

    def choice(self, key: str, choices: Collection[str], default: str | None = None) -> str:
        value = self._value(key, default is None)
        if value is None and default is not None:
            return default
        if not isinstance(value, str) or value not in choices:
            listed = ", ".join(repr(c) for c in choices)
            raise Invalid(self.at(key), f"input should be one of {listed}, got {show(value)}")
        return value

    def opt_choice(self, key: str, choices: Collection[str]) -> str | None:
        return None if self._value(key, False) is None else self.choice(key, choices)

    # ----- numbers, booleans, times ---------------------------------------------------------

    def integer(self, key: str, *, lo: int, hi: int, default: int | None = None) -> int:
        """An integer in [lo, hi]; with a ``default``, absent or null gives it."""
        value = self._value(key, default is None)
        return default if value is None and default is not None else _integer(value, self.at(key), lo, hi)

    def opt_integer(self, key: str, *, lo: int, hi: int) -> int | None:
        value = self._value(key, False)
        return None if value is None else _integer(value, self.at(key), lo, hi)

    def port(self, key: str) -> int:
        return self.integer(key, lo=1, hi=65535)

    def opt_port(self, key: str) -> int | None:
        return self.opt_integer(key, lo=1, hi=65535)

    def flag(self, key: str, default: bool) -> bool:
        value = self._value(key, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise Invalid(self.at(key), f"input should be a valid boolean, got {show(value)}")
        return value

    def time(self, key: str) -> datetime:
        return _time(self._value(key, True), self.at(key))

    def opt_time(self, key: str) -> datetime | None:
        value = self._value(key, False)
        return None if value is None else _time(value, self.at(key))

    # ----- nested objects and lists ---------------------------------------------------------

    def obj(self, key: str) -> Obj:
        return Obj(self._value(key, True), self.at(key))

    def opt_obj(self, key: str) -> Obj | None:
        value = self._value(key, False)
        return None if value is None else Obj(value, self.at(key))

    def loose(self, key: str) -> dict[str, Any] | None:
        """An object kept as it is (a failed call's request: nothing reads it)."""
        value = self._value(key, False)
        if value is not None and not isinstance(value, dict):
            raise Invalid(self.at(key), f"input should be an object, got {type(value).__name__}")
        return value

    def objs(
        self, key: str, *, max_items: int = LIST_MAX, min_items: int = 0, required: bool = False
    ) -> list[Obj]:
        """A list of objects; unless ``required`` or ``min_items``, absent or null is an empty list."""
        items = self._list(key, max_items, min_items, required or min_items > 0)
        return [Obj(item, f"{self.at(key)}[{i}]") for i, item in enumerate(items)]

    def texts(
        self, key: str, *, max_len: int, max_items: int = LIST_MAX, required: bool = False
    ) -> list[str]:
        """A list of strings; unless ``required``, absent or null is an empty list."""
        items = self._list(key, max_items, 0, required)
        return [_text(item, f"{self.at(key)}[{i}]", max_len, 1, None) for i, item in enumerate(items)]

    def integers(self, key: str, *, lo: int, hi: int, max_items: int = LIST_MAX) -> list[int]:
        """A list of integers in [lo, hi]; absent or null is an empty list."""
        items = self._list(key, max_items, 0, False)
        return [_integer(item, f"{self.at(key)}[{i}]", lo, hi) for i, item in enumerate(items)]

    def _list(self, key: str, max_items: int, min_items: int, required: bool) -> list[Any]:
        value = self._value(key, required)
        if value is None:
            return []
        if not isinstance(value, list):
            raise Invalid(self.at(key), f"input should be a valid list, got {type(value).__name__}")
        if not min_items <= len(value) <= max_items:
            raise Invalid(
                self.at(key), f"list should have {min_items} to {max_items} items, got {len(value)}"
            )
        return value

    def text_map(self, key: str, *, max_len: int, max_items: int) -> dict[str, str]:
        """An object of string values; absent or null is empty."""
        value = self._value(key, False)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise Invalid(self.at(key), f"input should be an object, got {type(value).__name__}")
        if len(value) > max_items:
            raise Invalid(self.at(key), f"object should have at most {max_items} keys, got {len(value)}")
        where = self.at(key)
        return {
            _text(k, f"{where} (a key)", max_len, 1, None): _text(v, f"{where}.{k}", max_len, 0, None)
            for k, v in value.items()
        }


def _text(value: object, where: str, max_len: int, min_len: int, pattern: re.Pattern[str] | None) -> str:
    if not isinstance(value, str):
        raise Invalid(where, f"input should be a valid string, got {show(value)}")
    if len(value) < min_len:
        raise Invalid(where, f"string should have at least {min_len} character{'s' * (min_len > 1)}")
    if len(value) > max_len:
        raise Invalid(where, f"string should have at most {max_len} characters, got {len(value)}")
    if pattern is not None and pattern.fullmatch(value) is None:
        raise Invalid(where, f"string should match pattern {pattern.pattern!r}, got {show(value)}")
    return value


def _integer(value: object, where: str, lo: int, hi: int) -> int:
    # bool is an int in Python, not in JSON.
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(where, f"input should be a valid integer, got {show(value)}")
    if not lo <= value <= hi:
        raise Invalid(where, f"input should be between {lo} and {hi}, got {value}")
    return value


def _time(value: object, where: str) -> datetime:
    parsed = parse_time(value) if isinstance(value, str) and len(value) <= 64 else None
    if parsed is None:
        raise Invalid(where, f"input should be an RFC 3339 date-time with a UTC offset, got {show(value)}")
    return parsed
