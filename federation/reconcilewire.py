"""The reconciliation message format: ranges of (created_at, id) space, each skipped, fingerprinted or listed.

Byte layout (all varints are unsigned LEB128, minimal length, at most 9 bytes):

    message = version:u8 (0x01) ‖ range*
    range   = ts:varint ‖ head:varint ‖ prefix:bytes[head >> 2] ‖ payload
    mode    = head & 3: 0 Skip (no payload) | 1 Fingerprint (16 bytes) | 2 IdList (varint n ‖ n * 32-byte ids)

A range is given by its upper bound only; its lower bound is the previous range's upper bound (the first range
starts at the lowest bound, timestamp 0 with an empty prefix). A bound is `(timestamp, id prefix)`: it stands for
the key `timestamp as 8 bytes big-endian ‖ prefix`, and an item belongs below it when the item's 40-byte key is
less in byte order. `ts = 0` is the bound past every item (then the prefix is empty and no range may follow);
otherwise the timestamp is the previous bound's timestamp (0 for the first) plus `ts - 1`, so bounds cost a byte
or two. Rules a receiver enforces: timestamps below 2**53, prefixes of at most 32 bytes that do not end in a zero
byte, bounds strictly increasing, ids in a list distinct, no unknown mode, nothing after the last range, and the
size limits below. Ranges left out at the end are skipped.

Bounds are kept here as their key bytes; `INFINITY` (one 0xFF byte) sorts above every 40-byte item key, whose
first byte is 0 because timestamps are below 2**53.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ftm.federation.reconcileindex import (
    FINGERPRINT_BYTES,
    ID_BYTES,
    MAX_TIMESTAMP,
    TIMESTAMP_BYTES,
    encode_varint,
)

PROTOCOL_VERSION = 0x01
INFINITY = b"\xff"
LOWEST = bytes(TIMESTAMP_BYTES)
MAX_VARINT_BYTES = 9


class Mode(IntEnum):
    SKIP = 0
    FINGERPRINT = 1
    ID_LIST = 2


class ReconcileError(ValueError):
    """A reconciliation message that is malformed, too large or otherwise refused; `code` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Limits:
    """What a peer may send us, and what we send. Both sides must use the same or a compatible pair.

    `max_message_bytes` and `max_ranges` bound the work and memory one message can cause. `buckets` and
    `id_list_threshold` only shape what we send (a range with more items than the threshold is split into that
    many buckets by count, a smaller one is sent as an id list); a receiver accepts any shape within the limits.
    """

    max_message_bytes: int = 64 * 1024
    max_ranges: int = 512
    buckets: int = 8
    id_list_threshold: int = 4
    first_buckets: int = 8  # the opening message splits the whole set into this many ranges

    def __post_init__(self) -> None:
        if not 2 <= self.buckets <= 64 or not 1 <= self.first_buckets <= 256:
            raise ValueError("buckets must be in [2, 64] and first_buckets in [1, 256]")
        if not 1 <= self.id_list_threshold <= 64:
            # at least 1: a range holding one item cannot be split, so it must be listed
            raise ValueError("id_list_threshold must be in [1, 64]")
        if self.max_ranges < 2 * max(self.buckets, self.first_buckets) + 4:
            raise ValueError("max_ranges must leave room for a full split")
        if self.max_message_bytes < 4096 or self.max_message_bytes > 16 * 1024 * 1024:
            raise ValueError("max_message_bytes must be in [4 KiB, 16 MiB]")


@dataclass(frozen=True, slots=True)
class Range:
    upper: bytes  # the bound's key bytes, or INFINITY
    mode: Mode
    fingerprint: bytes = b""
    ids: tuple[bytes, ...] = ()


def bound_size(upper: bytes, previous_timestamp: int) -> int:
    """Encoded size of a bound after one whose timestamp was `previous_timestamp` (head byte included)."""
    if upper == INFINITY:
        return 2
    timestamp = int.from_bytes(upper[:TIMESTAMP_BYTES], "big")
    prefix = len(upper) - TIMESTAMP_BYTES
    return len(encode_varint(timestamp - previous_timestamp + 1)) + len(encode_varint(prefix << 2)) + prefix


def range_size(item: Range, previous_timestamp: int) -> int:
    size = bound_size(item.upper, previous_timestamp)
    if item.mode is Mode.FINGERPRINT:
        size += FINGERPRINT_BYTES
    elif item.mode is Mode.ID_LIST:
        size += len(encode_varint(len(item.ids))) + ID_BYTES * len(item.ids)
    return size


def bound_timestamp(upper: bytes, previous_timestamp: int) -> int:
    return previous_timestamp if upper == INFINITY else int.from_bytes(upper[:TIMESTAMP_BYTES], "big")


def encode_message(ranges: list[Range]) -> bytes:
    out = bytearray((PROTOCOL_VERSION,))
    previous = 0
    for item in ranges:
        if item.upper == INFINITY:
            out += b"\x00" + encode_varint(int(item.mode))
        else:
            timestamp = int.from_bytes(item.upper[:TIMESTAMP_BYTES], "big")
            prefix = item.upper[TIMESTAMP_BYTES:]
            out += encode_varint(timestamp - previous + 1) + encode_varint(len(prefix) << 2 | item.mode) + prefix
            previous = timestamp
        if item.mode is Mode.FINGERPRINT:
            out += item.fingerprint
        elif item.mode is Mode.ID_LIST:
            out += encode_varint(len(item.ids))
            for event_id in item.ids:
                out += event_id
    return bytes(out)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 1

    def varint(self) -> int:
        data, pos = self.data, self.pos
        value = shift = 0
        for count in range(MAX_VARINT_BYTES):
            if pos + count >= len(data):
                raise ReconcileError("truncated", "the message ends inside a number")
            byte = data[pos + count]
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                if byte == 0 and count > 0:
                    raise ReconcileError("non_minimal_varint", "a number is not in its shortest encoding")
                self.pos = pos + count + 1
                return value
        raise ReconcileError("varint_too_long", "a number is longer than 9 bytes")

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise ReconcileError("truncated", "the message ends inside a field")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk


def decode_message(data: bytes, limits: Limits) -> list[Range]:
    """Parse and check a message; raises ReconcileError. Work and memory are linear in len(data)."""
    if len(data) > limits.max_message_bytes:
        raise ReconcileError("message_too_large", f"the message is larger than {limits.max_message_bytes} bytes")
    if not data:
        raise ReconcileError("truncated", "the message is empty")
    if data[0] != PROTOCOL_VERSION:
        raise ReconcileError("unsupported_version", f"protocol version {data[0]} is not supported")
    reader = _Reader(data)
    ranges: list[Range] = []
    previous_timestamp = 0
    previous_bound = LOWEST
    while reader.pos < len(data):
        if len(ranges) >= limits.max_ranges:
            raise ReconcileError("too_many_ranges", f"the message has more than {limits.max_ranges} ranges")
        if previous_bound == INFINITY:
            raise ReconcileError("range_after_end", "a range follows the one that ends the message")
        ts = reader.varint()
        head = reader.varint()
        mode_number, prefix_length = head & 3, head >> 2
        if mode_number > Mode.ID_LIST:
            raise ReconcileError("unknown_mode", f"range mode {mode_number} is not defined")
        if prefix_length > ID_BYTES:
            raise ReconcileError("bad_bound", "a bound's id prefix is longer than 32 bytes")
        prefix = reader.take(prefix_length)
        if ts == 0:
            if prefix:
                raise ReconcileError("bad_bound", "the final bound has an id prefix")
            upper = INFINITY
        else:
            timestamp = previous_timestamp + ts - 1
            if timestamp > MAX_TIMESTAMP:
                raise ReconcileError("bad_bound", "a bound's timestamp is beyond 2**53")
            if prefix.endswith(b"\x00"):
                raise ReconcileError("bad_bound", "a bound's id prefix ends in a zero byte")
            upper = timestamp.to_bytes(TIMESTAMP_BYTES, "big") + prefix
            previous_timestamp = timestamp
        if upper <= previous_bound:
            raise ReconcileError("bad_bound", "bounds are not strictly increasing")
        previous_bound = upper
        mode = Mode(mode_number)
        if mode is Mode.SKIP:
            ranges.append(Range(upper, mode))
        elif mode is Mode.FINGERPRINT:
            ranges.append(Range(upper, mode, fingerprint=reader.take(FINGERPRINT_BYTES)))
        else:
            count = reader.varint()
            if count * ID_BYTES > len(data) - reader.pos:
                raise ReconcileError("truncated", "an id list is longer than the rest of the message")
            blob = reader.take(count * ID_BYTES)
            ids = tuple(blob[i : i + ID_BYTES] for i in range(0, len(blob), ID_BYTES))
            if len(set(ids)) != count:
                raise ReconcileError("duplicate_id", "an id list names the same id twice")
            ranges.append(Range(upper, mode, ids=ids))
    return ranges
