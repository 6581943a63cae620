"""The sorted in-memory index that set reconciliation reads: items (created_at, id) with cheap range fingerprints.

An item is kept as one 40-byte key, `created_at` as 8 bytes big-endian followed by the 32-byte id, so byte order
is (created_at, id) order and a bound `(timestamp, id prefix)` is simply the key prefix `timestamp ‖ prefix`.

Layout (why it is fast): the keys sit in a list of sorted blocks of at most `2 * BLOCK_LOAD` keys, as in
`sortedcontainers`. Each block keeps the sum of its ids (as little-endian integers, mod 2**256). Two arrays over
the blocks, the count and the id sum before each block, are rebuilt lazily from the first block that changed, so
inserting a new event (nearly always near the end) costs one bisect, one list insert and one addition. A range
sum is then `prefix(hi) - prefix(lo)`, and `prefix(p)` adds at most half a block of ids to a cached sum: a range
fingerprint costs O(log n + BLOCK_LOAD) whatever the size of the range, so a round that answers many sub-ranges
never pays O(n) per range.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import operator
from collections.abc import Iterable, Iterator
from typing import Literal

ID_BYTES = 32
TIMESTAMP_BYTES = 8
KEY_BYTES = TIMESTAMP_BYTES + ID_BYTES
MAX_TIMESTAMP = 2**53 - 1  # created_at is an int below 2**53, like every int in an event body
FINGERPRINT_BYTES = 16
BLOCK_LOAD = 64  # measured (100k items): 64 beat 32, 128 and 256 on range fingerprints, with inserts as cheap
_MOD = 1 << 256
_MASK = _MOD - 1
_ID_PART = operator.itemgetter(slice(TIMESTAMP_BYTES, None))
_LITTLE: itertools.repeat[Literal["little"]] = itertools.repeat("little")


def item_key(created_at: int, event_id: bytes) -> bytes:
    """The 40-byte sort key of an item; raises ValueError for an out-of-range timestamp or a wrong-size id."""
    if type(created_at) is not int or not 0 <= created_at <= MAX_TIMESTAMP:
        raise ValueError("created_at must be an int in [0, 2**53)")
    if type(event_id) is not bytes or len(event_id) != ID_BYTES:
        raise ValueError("an event id is 32 bytes")
    return created_at.to_bytes(TIMESTAMP_BYTES, "big") + event_id


def key_timestamp(key: bytes) -> int:
    return int.from_bytes(key[:TIMESTAMP_BYTES], "big")


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128: seven bits per byte, least significant group first, high bit set on all but the last."""
    if value < 0:
        raise ValueError("a varint is unsigned")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def fingerprint(id_sum: int, count: int) -> bytes:
    """First 16 bytes of SHA-256(id sum mod 2**256 as 32 bytes little-endian ‖ varint(count))."""
    digest = hashlib.sha256((id_sum & _MASK).to_bytes(ID_BYTES, "little") + encode_varint(count)).digest()
    return digest[:FINGERPRINT_BYTES]


def id_sum(keys: Iterable[bytes]) -> int:
    """The sum of the ids in `keys` (not reduced)."""
    return sum(map(int.from_bytes, map(_ID_PART, keys), _LITTLE))


class ReconcileIndex:
    """Items (created_at, id) in (created_at, id) order, with positional access and range fingerprints.

    Positions are 0-based ranks in that order. An event's id fixes its created_at, so an id is expected once;
    the index does not check that (it would cost a map of every id). Not thread-safe: once shared, use it from
    the event loop only. Building one from many items (about 2 s per million here) belongs in a worker thread,
    e.g. `await asyncio.to_thread(ReconcileIndex, rows)`; after that, inserts cost microseconds.
    """

    def __init__(self, items: Iterable[tuple[int, bytes]] = ()) -> None:
        keys = sorted({item_key(created_at, event_id) for created_at, event_id in items})
        self._blocks: list[list[bytes]] = [keys[i : i + BLOCK_LOAD] for i in range(0, len(keys), BLOCK_LOAD)]
        self._maxes: list[bytes] = [block[-1] for block in self._blocks]
        self._sums: list[int] = [id_sum(block) for block in self._blocks]
        self._len = len(keys)
        # _starts[b] / _prefix[b]: count and id sum of the blocks before b; valid for b <= _clean.
        self._starts: list[int] = [0]
        self._prefix: list[int] = [0]
        self._clean = 0

    def __len__(self) -> int:
        return self._len

    def __contains__(self, item: object) -> bool:
        if not (isinstance(item, tuple) and len(item) == 2):
            return False
        try:
            key = item_key(item[0], item[1])
        except ValueError:
            return False
        b = bisect.bisect_left(self._maxes, key)
        return b < len(self._blocks) and self._blocks[b][bisect.bisect_left(self._blocks[b], key)] == key

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        for block in self._blocks:
            for key in block:
                yield key_timestamp(key), key[TIMESTAMP_BYTES:]

    def insert(self, created_at: int, event_id: bytes) -> bool:
        """Add an item; False if it was already there."""
        key = item_key(created_at, event_id)
        blocks = self._blocks
        if not blocks:
            blocks.append([key])
            self._maxes.append(key)
            self._sums.append(int.from_bytes(event_id, "little"))
            self._len = 1
            self._clean = 0
            return True
        b = bisect.bisect_left(self._maxes, key)
        if b == len(blocks):
            b -= 1  # beyond every key: append to the last block
            block = blocks[b]
            block.append(key)
            self._maxes[b] = key
        else:
            block = blocks[b]
            i = bisect.bisect_left(block, key)
            if block[i] == key:
                return False
            block.insert(i, key)
        self._sums[b] = (self._sums[b] + int.from_bytes(event_id, "little")) & _MASK
        self._len += 1
        if len(block) > 2 * BLOCK_LOAD:
            self._split(b)
        self._clean = min(self._clean, b)
        return True

    def discard(self, created_at: int, event_id: bytes) -> bool:
        """Remove an item; False if it was not there."""
        key = item_key(created_at, event_id)
        b = bisect.bisect_left(self._maxes, key)
        if b == len(self._blocks):
            return False
        block = self._blocks[b]
        i = bisect.bisect_left(block, key)
        if block[i] != key:
            return False
        del block[i]
        self._len -= 1
        if block:
            self._maxes[b] = block[-1]
            self._sums[b] = (self._sums[b] - int.from_bytes(event_id, "little")) & _MASK
        else:
            del self._blocks[b], self._maxes[b], self._sums[b]
        self._clean = min(self._clean, b)
        return True

    def position(self, bound: bytes) -> int:
        """The number of items whose key is below `bound` (a key, a key prefix, or anything bytes-comparable)."""
        b = bisect.bisect_left(self._maxes, bound)
        if b == len(self._blocks):
            return self._len
        self._refresh()
        return self._starts[b] + bisect.bisect_left(self._blocks[b], bound)

    def key_at(self, position: int) -> bytes:
        b, offset = self._locate(position)
        return self._blocks[b][offset]

    def keys(self, lo: int, hi: int) -> list[bytes]:
        """The keys at positions lo..hi-1."""
        lo, hi = max(lo, 0), min(hi, self._len)
        out: list[bytes] = []
        if lo >= hi:
            return out
        b, offset = self._locate(lo)
        while len(out) < hi - lo:
            block = self._blocks[b]
            out.extend(block[offset : offset + (hi - lo - len(out))])
            b, offset = b + 1, 0
        return out

    def ids(self, lo: int, hi: int) -> list[bytes]:
        return [key[TIMESTAMP_BYTES:] for key in self.keys(lo, hi)]

    def sum(self, lo: int, hi: int) -> int:
        """The sum of the ids at positions lo..hi-1, mod 2**256."""
        if hi - lo <= BLOCK_LOAD:
            return id_sum(self.keys(lo, hi)) & _MASK
        return (self._prefix_sum(hi) - self._prefix_sum(lo)) & _MASK

    def fingerprint(self, lo: int, hi: int) -> bytes:
        lo, hi = max(lo, 0), min(hi, self._len)
        if lo >= hi:
            return fingerprint(0, 0)
        return fingerprint(self.sum(lo, hi), hi - lo)

    # Internals.

    def _split(self, b: int) -> None:
        block = self._blocks[b]
        half = len(block) // 2
        left, right = block[:half], block[half:]
        self._blocks[b : b + 1] = [left, right]
        self._maxes[b : b + 1] = [left[-1], right[-1]]
        right_sum = id_sum(right) & _MASK
        self._sums[b : b + 1] = [(self._sums[b] - right_sum) & _MASK, right_sum]

    def _refresh(self) -> None:
        """Rebuild the per-block counts and sums from the first block that changed."""
        nblocks = len(self._blocks)
        if self._clean == nblocks and len(self._starts) == nblocks + 1:
            return
        clean = self._clean
        starts, prefix = self._starts, self._prefix
        del starts[clean + 1 :], prefix[clean + 1 :]
        count, total = starts[clean], prefix[clean]
        for b in range(clean, nblocks):
            count += len(self._blocks[b])
            total = (total + self._sums[b]) & _MASK
            starts.append(count)
            prefix.append(total)
        self._clean = nblocks

    def _locate(self, position: int) -> tuple[int, int]:
        if not 0 <= position < self._len:
            raise IndexError("position out of range")
        self._refresh()
        b = bisect.bisect_right(self._starts, position) - 1
        return b, position - self._starts[b]

    def _prefix_sum(self, position: int) -> int:
        """The sum of the ids before `position` (not reduced)."""
        if position >= self._len:
            self._refresh()
            return self._prefix[-1]
        b, offset = self._locate(position)
        block = self._blocks[b]
        # Add the nearer half of the block: from its start, or subtract from its end.
        if offset <= len(block) // 2:
            return self._prefix[b] + id_sum(block[:offset])
        return self._prefix[b + 1] - id_sum(block[offset:])
