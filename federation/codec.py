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
import threading
import types
import typing
from collections.abc import Callable, Mapping
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
    return typing.cast(T, _from_plain(cls, plain))


def to_plain(message: object) -> Any:
    """The msgpack-ready plain value of a dataclass (maps, lists, scalars)."""
    return _to_plain(message)


def from_plain(cls: type[T], plain: Any) -> T:
    """Build `cls` from an already-unpacked plain value, with the same strict checks as `decode`."""
    return typing.cast(T, _from_plain(cls, plain))


def _refuse_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"msgpack extension type {code} is not allowed")


# Encoding: a dispatch on the value's exact type, with one encoder per dataclass built on first sight.

_PASS_THROUGH = frozenset({str, int, float, bool, bytes, type(None)})
_Encoder = Callable[[Any], Any]


def _to_plain(value: object) -> Any:
    kind = type(value)
    if kind in _PASS_THROUGH:
        return value
    encoder = _ENCODERS.get(kind)
    if encoder is not None:
        return encoder(value)
    return _to_plain_other(value)


def _to_plain_other(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        encoder = _dataclass_encoder(type(value))
        _ENCODERS[type(value)] = encoder
        return encoder(value)
    if isinstance(value, tuple | list):
        return _list_to_plain(value)
    if isinstance(value, Mapping):
        return _mapping_to_plain(value)
    return value


def _list_to_plain(value: Any) -> list[Any]:
    return [item if type(item) in _PASS_THROUGH else _to_plain(item) for item in value]


def _mapping_to_plain(value: Any) -> dict[Any, Any]:
    return {key: item if type(item) in _PASS_THROUGH else _to_plain(item) for key, item in value.items()}


def _dataclass_encoder(cls: type) -> _Encoder:
    """A function that maps an instance of `cls` to the dict of its fields, in field order.

    Generated once per class, as `dataclasses` generates `__init__`: one dict display, each field passed through
    as it is when its value is a scalar and converted otherwise. This is several times faster than a loop over the
    fields. Field names are identifiers (dataclasses refuses anything else) and keys are written with `repr`.
    """
    items = []
    for number, field in enumerate(dataclasses.fields(cls)):
        if not field.name.isidentifier():  # pragma: no cover - dataclasses refuses such names
            raise TypeError(f"codec cannot encode field {field.name!r}")
        item = f"_{number}"
        items.append(f"{field.name!r}: {item} if type({item} := value.{field.name}) in _pass else _to_plain({item})")
    source = f"def encode_dataclass(value):\n    return {{{', '.join(items)}}}\n"
    namespace: dict[str, Any] = {"_pass": _PASS_THROUGH, "_to_plain": _to_plain}
    exec(source, namespace)  # noqa: S102 - the source is built above from field names only
    return typing.cast(_Encoder, namespace["encode_dataclass"])


_ENCODERS: dict[type, _Encoder] = {tuple: _list_to_plain, list: _list_to_plain, dict: _mapping_to_plain}


# Decoding: one converter per type hint, built once. A converter takes the plain value and its nesting depth and
# returns the decoded value or raises _Invalid. _Invalid carries the reason and collects the path on its way out,
# so a path string is only ever built for an error; the public entry points turn it into a DecodeError.

_Converter = Callable[[Any, int], Any]


class _Invalid(Exception):
    def __init__(self, reason: str, *parts: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.parts = list(parts)  # innermost first

    def at(self, part: str) -> _Invalid:
        self.parts.append(part)
        return self

    def message(self, root: str = "$") -> str:
        return f"{root}{''.join(reversed(self.parts))}: {self.reason}"


def _from_plain(hint: Any, value: Any) -> Any:
    try:
        return _converter(hint)(value, 0)
    except _Invalid as exc:
        raise DecodeError(exc.message()) from None


_CONVERTERS: dict[Any, _Converter] = {}
_BUILDING: dict[Any, _Converter] = {}
_BUILD_LOCK = threading.RLock()


def _converter(hint: Any) -> _Converter:
    """The converter for `hint`, built once under a lock and published only when complete (it may be recursive)."""
    try:
        return _CONVERTERS[hint]
    except (KeyError, TypeError):  # not built yet, or an unhashable hint (built every time)
        pass
    with _BUILD_LOCK:
        try:
            found = _CONVERTERS.get(hint) or _BUILDING.get(hint)
        except TypeError:
            return _build_converter(hint)
        if found is not None:
            return found
        outermost = not _BUILDING
        try:
            converter = _build_converter(hint)
            _BUILDING[hint] = converter
            if outermost:
                _CONVERTERS.update(_BUILDING)
        finally:
            if outermost:
                _BUILDING.clear()
        return converter


def _exact_types(hint: Any) -> frozenset[type] | None:
    """The exact types that decode as themselves under `hint` with no further check, if it is that simple."""
    options = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    if all(option in _SCALARS for option in options) and options != (type(None),):
        return frozenset(options)
    return None


_SCALARS = (bool, int, float, str, bytes, type(None))


def _build_converter(hint: Any) -> _Converter:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _dataclass_converter(hint)
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return _union_converter(hint)
    if origin is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return _sequence_converter(args[0])
        return _fixed_tuple_converter(args)
    if origin is dict:
        args = get_args(hint)
        if len(args) == 2:
            return _dict_converter(*args)
    if hint is Any:
        return _check_json_like
    if hint in (bool, int, float, str, bytes):
        return _scalar_converter(hint)
    return _unsupported_converter(hint)


def _scalar_converter(hint: type) -> _Converter:
    expected = {bool: "a boolean", int: "an integer", **_TYPE_NAMES}[hint]

    def convert_scalar(value: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise _Invalid("nested too deeply")
        if type(value) is not hint:
            raise _Invalid(f"expected {expected}, got {_kind(value)}")
        return value

    return convert_scalar


def _unsupported_converter(hint: Any) -> _Converter:
    def convert_unsupported(value: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise _Invalid("nested too deeply")
        raise TypeError(f"codec cannot decode fields of type {hint!r}")

    return convert_unsupported


def _union_converter(hint: Any) -> _Converter:
    options = get_args(hint)
    nullable = type(None) in options
    choices = tuple(_converter(option) for option in options if option is not type(None))
    exact = _exact_types(hint)

    def convert_union(value: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise _Invalid("nested too deeply")
        if exact is not None and type(value) in exact:
            return value
        if value is None and nullable:
            return None
        errors = []
        for choice in choices:
            try:
                return choice(value, depth)
            except _Invalid as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise _Invalid("matches none of the allowed types")

    return convert_union


def _sequence_converter(item_hint: Any) -> _Converter:
    item_converter = _converter(item_hint)
    exact = _exact_types(item_hint)

    def convert_sequence(value: Any, depth: int) -> tuple[Any, ...]:
        if depth > _MAX_DEPTH:
            raise _Invalid("nested too deeply")
        if not isinstance(value, list):
            raise _Invalid(f"expected an array, got {_kind(value)}")
        depth += 1
        if depth > _MAX_DEPTH and value:
            raise _Invalid("nested too deeply", "[0]")
        if exact is not None:
            for index, item in enumerate(value):
                if type(item) not in exact:
                    try:
                        item_converter(item, depth)
                    except _Invalid as exc:
                        raise exc.at(f"[{index}]") from None
            return tuple(value)
        out: list[Any] = []
        append = out.append
        try:
            for item in value:
                append(item_converter(item, depth))
        except _Invalid as exc:
            raise exc.at(f"[{len(out)}]") from None
        return tuple(out)

    return convert_sequence


def _fixed_tuple_converter(item_hints: tuple[Any, ...]) -> _Converter:
    item_converters = tuple(_converter(item_hint) for item_hint in item_hints)

    def convert_fixed_tuple(value: Any, depth: int) -> tuple[Any, ...]:
        if depth > _MAX_DEPTH:
            raise _Invalid("nested too deeply")
        if not isinstance(value, list):
            raise _Invalid(f"expected an array, got {_kind(value)}")
        if len(item_converters) != len(value):
            raise _Invalid(f"expected {len(item_converters)} items, got {len(value)}")
        out: list[Any] = []
        try:
            for item_converter, item in zip(item_converters, value, strict=True):
                out.append(item_converter(item, depth + 1))
        except _Invalid as exc:
            raise exc.at(f"[{len(out)}]") from None
        return tuple(out)

    return convert_fixed_tuple


def _dict_converter(key_hint: Any, value_hint: Any) -> _Converter:
    key_converter = _converter(key_hint)
    value_converter = _converter(value_hint)

    def convert_dict(value: Any, depth: int) -> dict[Any, Any]:
        if depth > _MAX_DEPTH:
            raise _Invalid("nested too deeply")
        if not isinstance(value, dict):
            raise _Invalid(f"expected a map, got {_kind(value)}")
        depth += 1
        out = {}
        for key, item in value.items():
            try:
                checked_key = key_converter(key, depth)
            except _Invalid as exc:
                raise exc.at(".<key>") from None
            try:
                out[checked_key] = value_converter(item, depth)
            except _Invalid as exc:
                raise exc.at(f".{key}") from None
        return out

    return convert_dict


_MISSING = object()


def _dataclass_converter(cls: type) -> _Converter:
    name_of_class = cls.__name__
    known = frozenset(f.name for f in dataclasses.fields(cls))
    # Per field: its name, the exact types taken as they are (or None), its converter, and whether it is required.
    # Filled in below, after this converter is registered, so that a dataclass may contain itself.
    plan: tuple[tuple[str, frozenset[type] | None, _Converter, bool], ...] = ()

    def convert_dataclass(value: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise _Invalid("nested too deeply")
        if not isinstance(value, dict):
            raise _Invalid(f"expected a map for {name_of_class}, got {_kind(value)}")
        if not value.keys() <= known:
            unknown = sorted(set(value) - known)
            raise _Invalid(f"unknown field {unknown[0]!r} in {name_of_class}")
        depth += 1
        shallow = depth <= _MAX_DEPTH
        get = value.get
        kwargs = {}
        for name, exact, converter, required in plan:
            item = get(name, _MISSING)
            if item is _MISSING:
                if required:
                    raise _Invalid(f"missing field {name!r} in {name_of_class}")
            elif exact is not None and shallow and type(item) in exact:
                kwargs[name] = item
            else:
                try:
                    kwargs[name] = converter(item, depth)
                except _Invalid as exc:
                    raise exc.at(f".{name}") from None
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            # A dataclass may validate itself in __post_init__; its message is ours and names no content.
            raise _Invalid(str(exc)) from None

    _BUILDING[cls] = convert_dataclass
    hints = _hints(cls)
    plan = tuple(
        (
            f.name,
            _exact_types(hints[f.name]),
            _converter(hints[f.name]),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
    )
    return convert_dataclass


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_JSON_SCALARS = frozenset({type(None), bool, int, float, str})


def _check_json_like(value: Any, depth: int) -> Any:
    """`value` itself if it is JSON-like (None, bool, int, float, str, lists, maps with string keys)."""
    if depth > _MAX_DEPTH:
        raise _Invalid("nested too deeply")
    if type(value) in _JSON_SCALARS:
        return value
    depth += 1
    shallow = depth <= _MAX_DEPTH
    if isinstance(value, list):
        index = 0
        try:
            for index, item in enumerate(value):  # noqa: B007 - index names the failing item
                if not (shallow and type(item) in _JSON_SCALARS):
                    _check_json_like(item, depth)
        except _Invalid as exc:
            raise exc.at(f"[{index}]") from None
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Invalid("map keys must be strings")
            if not (shallow and type(item) in _JSON_SCALARS):
                try:
                    _check_json_like(item, depth)
                except _Invalid as exc:
                    raise exc.at(f".{key}") from None
        return value
    raise _Invalid(f"{_kind(value)} is not a JSON-like value")


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
