"""Strict msgpack encoding of frozen dataclasses: the one codec for wire messages and stored packages.

A dataclass encodes as a msgpack map of its field names. Decoding is strict, because every decoded message came
from somewhere we do not trust: a size cap before parsing, exact types (a bool is not an int, an int is not a
float), no unknown fields, no msgpack extension types, and string keys only. Errors name the path of the bad
field ("memory[2].label") but never echo a value, so a decode error cannot leak what it was decoding.

Supported field types: `str`, `bytes`, `int`, `float`, `bool`, `None` in unions (`X | None`), `tuple[X, ...]`,
nested dataclasses, and `dict[str, Any]` for JSON-like values preserved from foreign formats.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union, get_args, get_origin

import msgpack

T = TypeVar("T")

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_MAX_DEPTH = 64


class DecodeError(ValueError):
    """Bytes that are not a valid encoding of the expected message; the text names where, never what."""


def encode(message: object) -> bytes:
    """Encode a dataclass instance (or a plain msgpack value) to bytes."""
    packed = msgpack.packb(_to_plain(message), use_bin_type=True)
    assert isinstance(packed, bytes)
    return packed


def decode(cls: type[T], data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> T:
    """Decode `data` as an instance of the dataclass `cls`, enforcing size, exact types and known fields."""
    if len(data) > max_bytes:
        raise DecodeError(f"message is {len(data)} bytes, more than the limit of {max_bytes}")
    try:
        plain = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_refuse_ext,
        )
    except DecodeError:
        raise
    except UnicodeDecodeError:
        raise DecodeError("a text field is not valid UTF-8") from None
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise DecodeError(f"not valid msgpack ({type(exc).__name__})") from None
    return typing.cast(T, _from_plain(cls, plain, "$", 0))


def to_plain(message: object) -> Any:
    """The msgpack-ready plain value of a dataclass (maps, lists, scalars)."""
    return _to_plain(message)


def from_plain(cls: type[T], plain: Any) -> T:
    """Build `cls` from an already-unpacked plain value, with the same strict checks as `decode`."""
    return typing.cast(T, _from_plain(cls, plain, "$", 0))


def _refuse_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"msgpack extension type {code} is not allowed")


def _to_plain(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_to_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _to_plain(item) for key, item in value.items()}
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _from_plain(hint: Any, value: Any, path: str, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise DecodeError(f"{path}: nested too deeply")
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _dataclass_from_plain(hint, value, path, depth)
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _from_plain(option, value, path, depth)
            except DecodeError as exc:
                errors.append(str(exc))
        raise DecodeError(errors[0] if len(errors) == 1 else f"{path}: matches none of the allowed types")
    if origin is tuple:
        args = get_args(hint)
        if not isinstance(value, list):
            raise DecodeError(f"{path}: expected an array, got {_kind(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_plain(args[0], item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
        if len(args) != len(value):
            raise DecodeError(f"{path}: expected {len(args)} items, got {len(value)}")
        return tuple(
            _from_plain(a, item, f"{path}[{i}]", depth + 1) for i, (a, item) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        key_type, value_type = get_args(hint)
        if not isinstance(value, dict):
            raise DecodeError(f"{path}: expected a map, got {_kind(value)}")
        out = {}
        for key, item in value.items():
            checked_key = _from_plain(key_type, key, f"{path}.<key>", depth + 1)
            out[checked_key] = _from_plain(value_type, item, f"{path}.{key}", depth + 1)
        return out
    if hint is Any:
        _check_json_like(value, path, depth)
        return value
    if hint is bool:
        if type(value) is not bool:
            raise DecodeError(f"{path}: expected a boolean, got {_kind(value)}")
        return value
    if hint is int:
        if type(value) is not int:
            raise DecodeError(f"{path}: expected an integer, got {_kind(value)}")
        return value
    if hint in (float, str, bytes):
        if type(value) is not hint:
            raise DecodeError(f"{path}: expected {_TYPE_NAMES[hint]}, got {_kind(value)}")
        return value
    raise TypeError(f"codec cannot decode fields of type {hint!r}")


def _dataclass_from_plain(cls: type, value: Any, path: str, depth: int) -> Any:
    if not isinstance(value, dict):
        raise DecodeError(f"{path}: expected a map for {cls.__name__}, got {_kind(value)}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise DecodeError(f"{path}: unknown field {unknown[0]!r} in {cls.__name__}")
    kwargs = {}
    for name, field in fields.items():
        if name in value:
            kwargs[name] = _from_plain(hints[name], value[name], f"{path}.{name}", depth + 1)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise DecodeError(f"{path}: missing field {name!r} in {cls.__name__}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        # A dataclass may validate itself in __post_init__; its message is ours and names no content.
        raise DecodeError(f"{path}: {exc}") from None


def _check_json_like(value: Any, path: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise DecodeError(f"{path}: nested too deeply")
    if value is None or type(value) in (bool, int, float, str):
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json_like(item, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise DecodeError(f"{path}: map keys must be strings")
            _check_json_like(item, f"{path}.{key}", depth + 1)
        return
    raise DecodeError(f"{path}: {_kind(value)} is not a JSON-like value")


_TYPE_NAMES = {float: "a float", str: "a string", bytes: "bytes"}


def _kind(value: Any) -> str:
    return {
        type(None): "nil",
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        bytes: "bytes",
        list: "an array",
        dict: "a map",
    }.get(type(value), type(value).__name__)
