"""The strict msgpack codec: round trips, and refusal of anything that is not exactly the schema."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftm.federation.codec import DecodeError, decode, encode


@dataclass(frozen=True, slots=True)
class Inner:
    label: str
    size: int


@dataclass(frozen=True, slots=True)
class Outer:
    name: str
    blob: bytes
    ratio: float
    flag: bool
    items: tuple[Inner, ...]
    maybe: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def make_outer(**overrides: Any) -> Outer:
    values: dict[str, Any] = {
        "name": "n",
        "blob": b"\x00\x01",
        "ratio": 0.5,
        "flag": True,
        "items": (Inner("a", 1), Inner("b", 2)),
        "extra": {"kept": [1, "two", None, {"x": 1.5}]},
    }
    values.update(overrides)
    return Outer(**values)


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def plain() -> dict[str, Any]:
    return msgpack.unpackb(encode(make_outer()), raw=False)


def test_round_trip() -> None:
    original = make_outer(maybe=7)
    assert decode(Outer, encode(original)) == original


def test_missing_optional_field_takes_its_default() -> None:
    data = plain()
    del data["maybe"], data["extra"]
    assert decode(Outer, pack(data)).maybe is None


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(surprise=1), "unknown field 'surprise'"),
        (lambda d: d.pop("name"), "missing field 'name'"),
        (lambda d: d.update(flag=1), r"\$\.flag: expected a boolean"),
        (lambda d: d.update(ratio=1), r"\$\.ratio: expected a float"),
        (lambda d: d.update(name=b"bytes"), r"\$\.name: expected a string"),
        (lambda d: d["items"][1].update(size=True), r"\$\.items\[1\]\.size: expected an integer"),
        (lambda d: d.update(items={"a": 1}), r"\$\.items: expected an array"),
        (lambda d: d.update(extra={"k": b"raw"}), "not a JSON-like value"),
    ],
)
def test_wrong_shapes_are_refused_with_a_path(mutate: Any, expected: str) -> None:
    data = plain()
    mutate(data)
    with pytest.raises(DecodeError, match=expected):
        decode(Outer, pack(data))


def test_size_limit_is_checked_before_parsing() -> None:
    with pytest.raises(DecodeError, match="more than the limit"):
        decode(Outer, encode(make_outer()), max_bytes=10)


def test_extension_types_trailing_bytes_and_bad_utf8_are_refused() -> None:
    with pytest.raises(DecodeError, match="extension type"):
        decode(Outer, msgpack.packb(msgpack.ExtType(5, b"x")))
    with pytest.raises(DecodeError, match="not valid msgpack"):
        decode(Outer, encode(make_outer()) + b"\x00")
    bad_text = b"\x81\xa4name\xa2\xff\xfe"  # {"name": <invalid UTF-8>}
    with pytest.raises(DecodeError, match="UTF-8"):
        decode(Outer, bad_text)


def test_error_messages_never_echo_values() -> None:
    data = plain()
    data["flag"] = "SECRET-VALUE"
    with pytest.raises(DecodeError) as caught:
        decode(Outer, pack(data))
    assert "SECRET-VALUE" not in str(caught.value)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode(Outer, data)
