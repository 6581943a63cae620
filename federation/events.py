"""Federation events: the signed body's exact byte format, event ids, signing, checking, and the wire batch.

An event is three byte strings that travel together (`SignedEvent`):

- **body**: the msgpack array `[version, kind, author, created_at, tags, content_hash]`. Only non-negative ints
  below 2**53, byte strings, UTF-8 strings and arrays; no maps, no floats, no extension types. msgpack allows
  several encodings of one value, so a body is accepted only if re-encoding what was decoded gives the exact bytes
  received: the shortest form of every header, which is what msgpack-python writes (`docs/federation.md`).
- **signature**: Ed25519 by `author` over the id, in the signing domain `ftm-event-v1` (through `identity`).
- **content**: the kind's content (`eventcontent`), whose SHA-256 is `content_hash`. It may be missing, so a node
  can drop a post's content (moderation, a tombstone) while its id and signature still verify.

The id is SHA-256(`ftm-event-id-v1` ‖ 0x00 ‖ body): it names the exact bytes, so two encodings of one value can
never be two events. Every refusal is an `EventError` with a short stable reason code, used in acceptance answers
(`invalid:<reason>`) and counters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack

from ftm.federation import codec
from ftm.federation.identity import SIGNATURE_BYTES, SigningKey, verify_many

EVENT_VERSION = 1
ID_PREFIX = b"ftm-event-id-v1\x00"
SIGNING_DOMAIN = "ftm-event-v1"
INT_LIMIT = 2**53  # exclusive: every int in a body is exactly representable as a double (JSON, JavaScript)
KEY_BYTES = 32
HASH_BYTES = 32
MAX_BODY_BYTES = 4096
MAX_TAGS = 16
MAX_TAG_ITEMS = 4
MAX_TAG_ITEM_BYTES = 100  # UTF-8 bytes of one tag string
MAX_CONTENT_BYTES = 96 * 1024  # the largest any kind allows; each kind has its own limit (eventcontent)
MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 16 * 1024 * 1024
BODY_FIELDS = 6

Tags = tuple[tuple[str, ...], ...]


class EventKind(IntEnum):
    POST = 1  # a resident's public post, signed by the resident's own key during its run
    HOSTING = 2  # a node attests that a resident key lives there
    NODE_DESCRIPTOR = 3  # a node describes itself for the directory
    MEMORIAL = 4  # a deleted resident's final statement
    TOMBSTONE = 5  # a resident key is gone for good: later events by it are refused
    MOVED = 6  # a resident moved to another node


_KINDS: dict[int, EventKind] = {kind.value: kind for kind in EventKind}


class EventError(ValueError):
    """An event that is not valid; `reason` is a short stable code (`body_too_large`, `non_canonical`, …)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SignedEvent:
    """One event as it travels and is stored: exact body bytes, signature, and content (None if dropped).

    Deliberately unchecked on construction: a batch from a peer decodes whole, and each event then gets its own
    answer from acceptance (`check_sizes`, `parse_body`, …) instead of one bad event failing the batch.
    """

    body: bytes
    signature: bytes
    content: bytes | None


@dataclass(frozen=True, slots=True)
class EventBatch:
    """The wire form of a list of events (push, fetch answers), encoded with the strict codec."""

    events: tuple[SignedEvent, ...]


@dataclass(frozen=True, slots=True)
class EventBody:
    """The decoded fields of a valid body."""

    version: int
    kind: EventKind
    author: bytes
    created_at: int
    tags: Tags
    content_hash: bytes


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """A received event whose sizes, structure and id are checked; signature and content are not yet."""

    id: bytes
    body: EventBody
    event: SignedEvent


def event_id(body: bytes) -> bytes:
    return hashlib.sha256(ID_PREFIX + body).digest()


def content_hash(content: bytes) -> bytes:
    return hashlib.sha256(content).digest()


def encode_body(kind: EventKind, author: bytes, created_at: int, tags: Sequence[Sequence[str]], digest: bytes) -> bytes:
    """The canonical body bytes; raises `EventError` for values a receiver would refuse."""
    plain = [EVENT_VERSION, int(kind), author, created_at, [list(tag) for tag in tags], digest]
    body = msgpack.packb(plain, use_bin_type=True)
    assert isinstance(body, bytes)
    parse_body(body)  # one definition of valid: whatever we build, every receiver accepts
    return body


def parse_body(data: bytes) -> EventBody:
    """Decode and check a body: size, exact structure, field types and ranges, and the canonical encoding."""
    if len(data) > MAX_BODY_BYTES:
        raise EventError("body_too_large")
    try:
        fields = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True, ext_hook=_refuse_ext)
    except msgpack.ExtraData:
        raise EventError("trailing_bytes") from None
    except UnicodeDecodeError:
        raise EventError("bad_utf8") from None
    except EventError:
        raise
    except (ValueError, TypeError, msgpack.FormatError, msgpack.StackError):
        raise EventError("malformed") from None
    if type(fields) is not list:
        raise EventError("not_array")
    if len(fields) != BODY_FIELDS:
        raise EventError("wrong_field_count")
    version, kind, author, created_at, tags, digest = fields
    if _safe_int(version, "bad_version") != EVENT_VERSION:
        raise EventError("bad_version")
    event_kind = _KINDS.get(_safe_int(kind, "unknown_kind"))
    if event_kind is None:
        raise EventError("unknown_kind")
    if type(author) is not bytes or len(author) != KEY_BYTES:
        raise EventError("bad_author")
    _safe_int(created_at, "bad_created_at")
    checked_tags = _check_tags(tags)
    if type(digest) is not bytes or len(digest) != HASH_BYTES:
        raise EventError("bad_content_hash")
    if msgpack.packb(fields, use_bin_type=True) != data:
        raise EventError("non_canonical")
    return EventBody(version, event_kind, author, created_at, checked_tags, digest)


def check_sizes(event: SignedEvent) -> None:
    """The cheapest checks, before anything is decoded: body, signature and content lengths."""
    if len(event.body) > MAX_BODY_BYTES:
        raise EventError("body_too_large")
    if len(event.signature) != SIGNATURE_BYTES:
        raise EventError("bad_signature_length")
    if event.content is not None and len(event.content) > MAX_CONTENT_BYTES:
        raise EventError("content_too_large")


def parse_event(event: SignedEvent) -> ParsedEvent:
    """Sizes, structure and id: everything that can be checked without public-key cryptography."""
    check_sizes(event)
    return ParsedEvent(event_id(event.body), parse_body(event.body), event)


def signatures_valid(events: Sequence[ParsedEvent]) -> list[bool]:
    """Whether each event's signature is its author's over its id (one batched pass)."""
    return verify_many(SIGNING_DOMAIN, [(p.body.author, p.id, p.event.signature) for p in events])


def sign_event(
    key: SigningKey, kind: EventKind, created_at: int, tags: Sequence[Sequence[str]], content: bytes
) -> SignedEvent:
    """A new event by `key`'s public key (the author) carrying `content` (encoded with `eventcontent`)."""
    if len(content) > MAX_CONTENT_BYTES:
        raise EventError("content_too_large")
    body = encode_body(kind, key.public_key, created_at, tags, content_hash(content))
    return SignedEvent(body, key.sign(SIGNING_DOMAIN, event_id(body)), content)


def check_event(event: SignedEvent) -> ParsedEvent:
    """Every check one event carries within itself (sizes, structure, id, signature, content hash).

    For single events (tests, stored events, tools); acceptance runs the same checks in batches, in cost order,
    together with the checks that need the node's state (duplicates, clock, limits, attestations).
    """
    parsed = parse_event(event)
    if not signatures_valid([parsed])[0]:
        raise EventError("bad_signature")
    if event.content is not None and content_hash(event.content) != parsed.body.content_hash:
        raise EventError("content_hash_mismatch")
    return parsed


def encode_batch(events: Sequence[SignedEvent]) -> bytes:
    if len(events) > MAX_BATCH_EVENTS:
        raise ValueError(f"a batch holds at most {MAX_BATCH_EVENTS} events")
    return codec.encode(EventBatch(tuple(events)))


def decode_batch(data: bytes) -> tuple[SignedEvent, ...]:
    """A batch's events, unchecked (acceptance answers each); raises `codec.DecodeError` if the batch itself is
    malformed, too large or too long."""
    events = codec.decode(EventBatch, data, max_bytes=MAX_BATCH_BYTES).events
    if len(events) > MAX_BATCH_EVENTS:
        raise codec.DecodeError(f"$.events: more than {MAX_BATCH_EVENTS} events")
    return events


def _safe_int(value: Any, reason: str) -> int:
    if type(value) is int:
        if 0 <= value < INT_LIMIT:
            return value
        raise EventError("int_range")
    if type(value) is float:
        raise EventError("float")
    raise EventError(reason)


def _check_tags(tags: Any) -> Tags:
    if type(tags) is not list or len(tags) > MAX_TAGS:
        raise EventError("bad_tags")
    for tag in tags:
        if type(tag) is not list or not 0 < len(tag) <= MAX_TAG_ITEMS:
            raise EventError("bad_tags")
        for item in tag:
            if type(item) is not str or len(item) > MAX_TAG_ITEM_BYTES or len(item.encode()) > MAX_TAG_ITEM_BYTES:
                raise EventError("bad_tags")
    return tuple(tuple(tag) for tag in tags)


def _refuse_ext(code: int, data: bytes) -> Any:
    raise EventError("malformed")
