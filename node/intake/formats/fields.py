"""Typed access to fields of untrusted JSON values, and the timestamp rules every importer shares.

Uploaded JSON can hold anything anywhere, so importers never index into it directly: they ask for "the string at
`data.name`" and get either a `str` or an `InvalidField(code="wrong_type")` whose message names the field path and
the expected type. Paths are built only from names in our own schemas and list indices, never from keys or values
in the upload, so an error message cannot carry persona content.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from ftm.node.errors import InvalidField

JsonObject = dict[str, Any]

# Unix times above this are taken to be milliseconds (SillyTavern, JavaScript exports); in seconds it would be the
# year 5138, so no real timestamp is misread.
_MILLISECONDS_FROM = 100_000_000_000
# Timestamps outside 1970..9999 are treated as absent rather than trusted.
_LATEST_SECONDS = 253_402_300_799


def child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def item(path: str, index: int) -> str:
    return f"{path}[{index}]"


def describe(path: str) -> str:
    return f"field '{path}'" if path else "the top-level value"


def wrong_type(path: str, expected: str) -> InvalidField:
    return InvalidField(f"{describe(path)} must be {expected}", code="wrong_type")


def as_object(value: object, path: str) -> JsonObject:
    if not isinstance(value, dict):
        raise wrong_type(path, "an object")
    return value


def as_list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise wrong_type(path, "a list")
    return value


def opt_str(obj: JsonObject, key: str, path: str) -> str | None:
    """The string at `obj[key]`, or None when it is missing or null."""
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise wrong_type(child(path, key), "a string")


def get_str(obj: JsonObject, key: str, path: str) -> str:
    """The string at `obj[key]`, with missing or null read as the empty string."""
    return opt_str(obj, key, path) or ""


def opt_bool(obj: JsonObject, key: str, path: str) -> bool | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise wrong_type(child(path, key), "true or false")


def opt_int(obj: JsonObject, key: str, path: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    # bool is an int subclass in Python; `true` is not a number in any format we read.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise wrong_type(child(path, key), "an integer")


def opt_object(obj: JsonObject, key: str, path: str) -> JsonObject | None:
    value = obj.get(key)
    return None if value is None else as_object(value, child(path, key))


def opt_list(obj: JsonObject, key: str, path: str) -> list[Any]:
    """The list at `obj[key]`, with missing or null read as an empty list."""
    value = obj.get(key)
    return [] if value is None else as_list(value, child(path, key))


def str_list(obj: JsonObject, key: str, path: str) -> tuple[str, ...]:
    """A list of strings at `obj[key]` (missing or null: empty)."""
    values = opt_list(obj, key, path)
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise wrong_type(item(child(path, key), index), "a string")
    return tuple(values)


def unknown_fields(obj: JsonObject, known: frozenset[str] | set[str]) -> JsonObject:
    """The fields of `obj` an importer does not model, kept as they were (they came from JSON, so are JSON-like)."""
    return {key: value for key, value in obj.items() if key not in known}


def to_unix(value: object) -> int | None:
    """A timestamp as unix seconds: ISO-8601 strings, unix seconds or milliseconds (int, float or digits).

    Anything unreadable or out of range becomes None: a missing time is better than refusing a whole history over
    one odd field.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return _from_number(float(value))
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 64:
            return None
        try:
            return _from_number(float(text))
        except ValueError:
            pass
        return from_datetime_text(text)
    return None


def from_datetime_text(text: str, *formats: str) -> int | None:
    """Parse ISO-8601 (and any extra `strptime` formats); naive times are taken as UTC."""
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for pattern in formats:
            try:
                parsed = datetime.strptime(text, pattern)  # naive on purpose: made UTC below
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return _from_number(parsed.timestamp())
    except (OverflowError, OSError, ValueError):
        return None


def _from_number(seconds: float) -> int | None:
    if not math.isfinite(seconds):
        return None
    if seconds >= _MILLISECONDS_FROM:
        seconds /= 1000
    if seconds < 0 or seconds > _LATEST_SECONDS:
        return None
    return int(seconds)
