"""Event bodies, ids and signatures: exact round trips, and refusal of every encoding we would not write."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftm.federation import codec
from ftm.federation.events import (
    EVENT_VERSION,
    ID_PREFIX,
    INT_LIMIT,
    MAX_BATCH_EVENTS,
    MAX_BODY_BYTES,
    MAX_TAG_ITEM_BYTES,
    MAX_TAG_ITEMS,
    MAX_TAGS,
    SIGNING_DOMAIN,
    EventError,
    EventKind,
    SignedEvent,
    check_event,
    content_hash,
    decode_batch,
    encode_batch,
    encode_body,
    event_id,
    parse_body,
    sign_event,
)
from ftm.federation.identity import SigningKey, verify

AUTHOR = bytes(range(32))
DIGEST = hashlib.sha256(b"content").digest()
KEY = SigningKey(b"\x07" * 32)


def body_bytes(*parts: bytes) -> bytes:
    return b"".join(parts)


# Canonical pieces of a body, to rebuild one with a single part encoded differently.
ARRAY6 = b"\x96"
VERSION = b"\x01"
KIND_POST = b"\x01"
AUTHOR_BIN = b"\xc4\x20" + AUTHOR
CREATED = b"\xce" + struct.pack(">I", 1_800_000_000)
NO_TAGS = b"\x90"
DIGEST_BIN = b"\xc4\x20" + DIGEST


def canonical() -> bytes:
    return body_bytes(ARRAY6, VERSION, KIND_POST, AUTHOR_BIN, CREATED, NO_TAGS, DIGEST_BIN)


def test_hand_built_body_matches_the_encoder_and_parses() -> None:
    data = canonical()
    assert data == encode_body(EventKind.POST, AUTHOR, 1_800_000_000, (), DIGEST)
    body = parse_body(data)
    assert (body.version, body.kind, body.author, body.created_at, body.tags, body.content_hash) == (
        EVENT_VERSION,
        EventKind.POST,
        AUTHOR,
        1_800_000_000,
        (),
        DIGEST,
    )
    assert (
        event_id(data)
        == hashlib.sha256(b"ftm-event-id-v1\x00" + data).digest()
        == hashlib.sha256(ID_PREFIX + data).digest()
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        # the same values in a wider msgpack format than needed
        (body_bytes(ARRAY6, b"\xcc\x01", KIND_POST, AUTHOR_BIN, CREATED, NO_TAGS, DIGEST_BIN), "non_canonical"),
        (body_bytes(ARRAY6, VERSION, b"\xd0\x01", AUTHOR_BIN, CREATED, NO_TAGS, DIGEST_BIN), "non_canonical"),
        (
            body_bytes(
                ARRAY6, VERSION, KIND_POST, AUTHOR_BIN, b"\xcf" + struct.pack(">Q", 1_800_000_000), NO_TAGS, DIGEST_BIN
            ),
            "non_canonical",
        ),
        (
            body_bytes(ARRAY6, VERSION, KIND_POST, b"\xc5\x00\x20" + AUTHOR, CREATED, NO_TAGS, DIGEST_BIN),
            "non_canonical",
        ),
        (body_bytes(b"\xdc\x00\x06", VERSION, KIND_POST, AUTHOR_BIN, CREATED, NO_TAGS, DIGEST_BIN), "non_canonical"),
        (body_bytes(ARRAY6, VERSION, KIND_POST, AUTHOR_BIN, CREATED, b"\xdc\x00\x00", DIGEST_BIN), "non_canonical"),
        (
            body_bytes(ARRAY6, VERSION, KIND_POST, AUTHOR_BIN, CREATED, b"\x91\x91\xd9\x01t", DIGEST_BIN),
            "non_canonical",  # a one-character string as str8 instead of fixstr
        ),
        # not the structure
        (msgpack.packb({"version": 1, "kind": 1}), "not_array"),
        (msgpack.packb([1, 1, AUTHOR, 1_800_000_000, []]), "wrong_field_count"),
        (msgpack.packb([1, 1, AUTHOR, 1_800_000_000, [], DIGEST, 0]), "wrong_field_count"),
        (b"", "malformed"),
        (canonical()[:-1], "malformed"),
        (canonical() + b"\x00", "trailing_bytes"),
        (
            body_bytes(ARRAY6, VERSION, KIND_POST, AUTHOR_BIN, b"\xd6\x05" + b"\x00" * 4, NO_TAGS, DIGEST_BIN),
            "malformed",
        ),
        # values out of range or of the wrong type
        (msgpack.packb([1, 1, AUTHOR, 1_800_000_000.0, [], DIGEST]), "float"),
        (
            body_bytes(ARRAY6, VERSION, KIND_POST, AUTHOR_BIN, b"\xca" + struct.pack(">f", 1.0), NO_TAGS, DIGEST_BIN),
            "float",
        ),
        (msgpack.packb([1.0, 1, AUTHOR, 1_800_000_000, [], DIGEST]), "float"),
        (msgpack.packb([1, 1, AUTHOR, INT_LIMIT, [], DIGEST]), "int_range"),
        (msgpack.packb([1, 1, AUTHOR, -1, [], DIGEST]), "int_range"),
        (msgpack.packb([1, 2**64 - 1, AUTHOR, 1, [], DIGEST]), "int_range"),
        (msgpack.packb([2, 1, AUTHOR, 1_800_000_000, [], DIGEST]), "bad_version"),
        (msgpack.packb([True, 1, AUTHOR, 1_800_000_000, [], DIGEST]), "bad_version"),
        (msgpack.packb([1, 7, AUTHOR, 1_800_000_000, [], DIGEST]), "unknown_kind"),
        (msgpack.packb([1, 0, AUTHOR, 1_800_000_000, [], DIGEST]), "unknown_kind"),
        (msgpack.packb([1, 1, AUTHOR[:31], 1_800_000_000, [], DIGEST]), "bad_author"),
        (msgpack.packb([1, 1, AUTHOR.hex()[:32], 1_800_000_000, [], DIGEST]), "bad_author"),
        (msgpack.packb([1, 1, AUTHOR, None, [], DIGEST]), "bad_created_at"),
        (msgpack.packb([1, 1, AUTHOR, 1, [], DIGEST[:31]]), "bad_content_hash"),
        (msgpack.packb([1, 1, AUTHOR, 1, {}, DIGEST]), "bad_tags"),
        (msgpack.packb([1, 1, AUTHOR, 1, [[]], DIGEST]), "bad_tags"),
        (msgpack.packb([1, 1, AUTHOR, 1, [["t"]] * (MAX_TAGS + 1), DIGEST]), "bad_tags"),
        (msgpack.packb([1, 1, AUTHOR, 1, [["t"] * (MAX_TAG_ITEMS + 1)], DIGEST]), "bad_tags"),
        (msgpack.packb([1, 1, AUTHOR, 1, [["x" * (MAX_TAG_ITEM_BYTES + 1)]], DIGEST]), "bad_tags"),
        (msgpack.packb([1, 1, AUTHOR, 1, [["é" * (MAX_TAG_ITEM_BYTES // 2 + 1)]], DIGEST]), "bad_tags"),
        (msgpack.packb([1, 1, AUTHOR, 1, [[b"t"]], DIGEST]), "bad_tags"),
        (msgpack.packb([1, 1, AUTHOR, 1, [[1]], DIGEST]), "bad_tags"),
        (body_bytes(ARRAY6, VERSION, KIND_POST, AUTHOR_BIN, CREATED, b"\x91\x91\xa1\xff", DIGEST_BIN), "bad_utf8"),
        (b"\x96" + b"\x01" * (MAX_BODY_BYTES - 1) + b"\x01", "body_too_large"),
    ],
)
def test_refuses_what_we_would_not_write(data: bytes, reason: str) -> None:
    with pytest.raises(EventError) as raised:
        parse_body(data)
    assert raised.value.reason == reason


def test_refusal_reasons_are_distinct_for_each_kind_of_fault() -> None:
    reasons = set()
    for data in (
        body_bytes(ARRAY6, b"\xcc\x01", KIND_POST, AUTHOR_BIN, CREATED, NO_TAGS, DIGEST_BIN),
        msgpack.packb({"a": 1}),
        msgpack.packb([1, 1, AUTHOR, 1.5, [], DIGEST]),
        msgpack.packb([1, 1, AUTHOR, INT_LIMIT, [], DIGEST]),
        canonical() + b"\x00",
        msgpack.packb([9, 1, AUTHOR, 1, [], DIGEST]),
        msgpack.packb([1, 9, AUTHOR, 1, [], DIGEST]),
        b"\x90" * (MAX_BODY_BYTES + 1),
    ):
        with pytest.raises(EventError) as raised:
            parse_body(data)
        reasons.add(raised.value.reason)
    assert len(reasons) == 8


def test_encoder_refuses_values_a_receiver_would_refuse() -> None:
    with pytest.raises(EventError, match="int_range"):
        encode_body(EventKind.POST, AUTHOR, INT_LIMIT, (), DIGEST)
    with pytest.raises(EventError, match="bad_tags"):
        encode_body(EventKind.POST, AUTHOR, 1, [["x" * 500]], DIGEST)
    with pytest.raises(EventError, match="bad_author"):
        encode_body(EventKind.POST, AUTHOR[:5], 1, (), DIGEST)


def test_signed_event_checks_and_signature_is_over_the_id_in_its_domain() -> None:
    event = sign_event(KEY, EventKind.POST, 1_800_000_000, [["t", "lamps"]], b"hello")
    parsed = check_event(event)
    assert parsed.body.author == KEY.public_key and parsed.body.tags == (("t", "lamps"),)
    assert parsed.body.content_hash == content_hash(b"hello") and parsed.id == event_id(event.body)
    verify(KEY.public_key, SIGNING_DOMAIN, parsed.id, event.signature)
    # content may be missing (dropped) without the event failing its own checks
    assert check_event(SignedEvent(event.body, event.signature, None)).id == parsed.id


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda e: SignedEvent(e.body, bytes(64), e.content), "bad_signature"),
        (lambda e: SignedEvent(e.body, e.signature[:63], e.content), "bad_signature_length"),
        (lambda e: SignedEvent(e.body, e.signature, b"hellO"), "content_hash_mismatch"),
        (lambda e: SignedEvent(e.body, e.signature, b"x" * (96 * 1024 + 1)), "content_too_large"),
        (lambda e: SignedEvent(e.body + b"\x00", e.signature, e.content), "trailing_bytes"),
    ],
)
def test_check_event_refuses_tampering(change: object, reason: str) -> None:
    event = sign_event(KEY, EventKind.POST, 1_800_000_000, (), b"hello")
    with pytest.raises(EventError) as raised:
        check_event(change(event))  # type: ignore[operator]
    assert raised.value.reason == reason


def test_signature_by_another_key_does_not_check() -> None:
    event = sign_event(KEY, EventKind.POST, 1_800_000_000, (), b"hello")
    other = sign_event(SigningKey.generate(), EventKind.POST, 1_800_000_000, (), b"hello")
    with pytest.raises(EventError, match="bad_signature"):
        check_event(SignedEvent(event.body, other.signature, event.content))


def test_batch_wire_round_trip_and_limits() -> None:
    events = [sign_event(KEY, EventKind.POST, 1_800_000_000 + i, (), b"c%d" % i) for i in range(3)]
    events.append(SignedEvent(events[0].body, events[0].signature, None))
    assert decode_batch(encode_batch(events)) == tuple(events)
    with pytest.raises(ValueError, match="at most"):
        encode_batch([events[0]] * (MAX_BATCH_EVENTS + 1))
    too_many = codec.encode({"events": [codec.to_plain(events[0])] * (MAX_BATCH_EVENTS + 1)})
    with pytest.raises(codec.DecodeError, match="more than"):
        decode_batch(too_many)
    with pytest.raises(codec.DecodeError):
        decode_batch(codec.encode({"events": [{"body": b"x", "signature": b"y"}]}))  # content is not optional


# Property tests.

BODY_REASONS = {
    "body_too_large",
    "malformed",
    "trailing_bytes",
    "bad_utf8",
    "not_array",
    "wrong_field_count",
    "float",
    "int_range",
    "bad_version",
    "unknown_kind",
    "bad_author",
    "bad_created_at",
    "bad_tags",
    "bad_content_hash",
    "non_canonical",
}
tag_text = st.text(max_size=20).filter(lambda s: len(s.encode()) <= MAX_TAG_ITEM_BYTES)
tags = st.lists(st.lists(tag_text, min_size=1, max_size=MAX_TAG_ITEMS), max_size=MAX_TAGS)


@given(
    kind=st.sampled_from(EventKind),
    author=st.binary(min_size=32, max_size=32),
    created_at=st.integers(min_value=0, max_value=INT_LIMIT - 1),
    tag_lists=tags,
    digest=st.binary(min_size=32, max_size=32),
)
def test_every_valid_body_round_trips_exactly(
    kind: EventKind, author: bytes, created_at: int, tag_lists: list[list[str]], digest: bytes
) -> None:
    data = encode_body(kind, author, created_at, tag_lists, digest)
    body = parse_body(data)
    assert (body.kind, body.author, body.created_at, body.content_hash) == (kind, author, created_at, digest)
    assert body.tags == tuple(tuple(tag) for tag in tag_lists)
    assert encode_body(body.kind, body.author, body.created_at, body.tags, body.content_hash) == data


@given(st.binary(max_size=200))
def test_arbitrary_bytes_either_parse_canonically_or_are_refused_with_a_reason(data: bytes) -> None:
    try:
        body = parse_body(data)
    except EventError as exc:
        reason = exc.reason
    else:
        reason = ""
        assert encode_body(body.kind, body.author, body.created_at, body.tags, body.content_hash) == data
    assert reason in BODY_REASONS | {""}


@settings(max_examples=200)
@given(position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255), tag_lists=tags)
def test_any_changed_byte_is_refused_or_is_another_canonical_body(
    position: int, value: int, tag_lists: list[list[str]]
) -> None:
    data = bytearray(encode_body(EventKind.POST, AUTHOR, 1_800_000_000, tag_lists, DIGEST))
    position %= len(data)
    if data[position] == value:
        return
    data[position] = value
    try:
        body = parse_body(bytes(data))
    except EventError:
        return
    assert encode_body(body.kind, body.author, body.created_at, body.tags, body.content_hash) == bytes(data)


@settings(max_examples=25, deadline=None)
@given(
    content=st.binary(max_size=300),
    created_at=st.integers(min_value=0, max_value=INT_LIMIT - 1),
    flip=st.integers(min_value=0),
)
def test_any_flipped_signature_bit_fails(content: bytes, created_at: int, flip: int) -> None:
    event = sign_event(KEY, EventKind.POST, created_at, (), content)
    assert check_event(event).body.created_at == created_at
    signature = bytearray(event.signature)
    signature[(flip // 8) % 64] ^= 1 << (flip % 8)
    with pytest.raises(EventError, match="bad_signature"):
        check_event(SignedEvent(event.body, bytes(signature), event.content))


def spec_encode(value: object) -> bytes:
    """The canonical encoding as docs/federation.md states it, written from that table alone."""
    if isinstance(value, int):
        assert 0 <= value < INT_LIMIT
        if value < 128:
            return bytes([value])
        for code, size in ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
            if value < 1 << (8 * size):
                return bytes([code]) + value.to_bytes(size, "big")
    if isinstance(value, bytes):
        for code, size in ((0xC4, 1), (0xC5, 2), (0xC6, 4)):
            if len(value) < 1 << (8 * size):
                return bytes([code]) + len(value).to_bytes(size, "big") + value
    if isinstance(value, str):
        data = value.encode()
        if len(data) < 32:
            return bytes([0xA0 | len(data)]) + data
        for code, size in ((0xD9, 1), (0xDA, 2), (0xDB, 4)):
            if len(data) < 1 << (8 * size):
                return bytes([code]) + len(data).to_bytes(size, "big") + data
    if isinstance(value, list | tuple):
        head = bytes([0x90 | len(value)]) if len(value) < 16 else b"\xdc" + len(value).to_bytes(2, "big")
        return head + b"".join(spec_encode(item) for item in value)
    raise AssertionError(f"not in the spec: {type(value).__name__}")


@given(
    kind=st.sampled_from(EventKind),
    author=st.binary(min_size=32, max_size=32),
    created_at=st.one_of(st.integers(min_value=0, max_value=300), st.integers(min_value=0, max_value=INT_LIMIT - 1)),
    tag_lists=st.lists(st.lists(st.text(max_size=60), min_size=1, max_size=MAX_TAG_ITEMS), max_size=MAX_TAGS).filter(
        lambda tags: all(len(item.encode()) <= MAX_TAG_ITEM_BYTES for tag in tags for item in tag)
    ),
    digest=st.binary(min_size=32, max_size=32),
)
def test_the_spec_table_and_the_encoder_agree(
    kind: EventKind, author: bytes, created_at: int, tag_lists: list[list[str]], digest: bytes
) -> None:
    expected = spec_encode([EVENT_VERSION, int(kind), author, created_at, tag_lists, digest])
    assert encode_body(kind, author, created_at, tag_lists, digest) == expected
    assert parse_body(expected).created_at == created_at


def test_the_spec_test_vector_is_the_one_the_code_produces() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "federation.md").read_text()
    block = text.split("### Test vector", 1)[1].split("```", 2)[1]
    fields: dict[str, str] = {}
    name = ""
    for line in block.strip().splitlines():
        parts = line.split()
        if len(parts) == 2:
            name = parts[0]
        fields[name] = fields.get(name, "") + parts[-1]
    key = SigningKey(b"\x07" * 32)
    event = SignedEvent(
        bytes.fromhex(fields["body"]), bytes.fromhex(fields["signature"]), bytes.fromhex(fields["content"])
    )
    parsed = check_event(event)
    assert parsed.id.hex() == fields["id"] and parsed.body.author == key.public_key
    assert sign_event(key, parsed.body.kind, parsed.body.created_at, parsed.body.tags, event.content or b"") == event
