"""ReconcileIndex against a plain sorted list: order, positions, fingerprints, inserts and removals."""

from __future__ import annotations

import hashlib
import random

import pytest

from ftm.federation.reconcileindex import (
    BLOCK_LOAD,
    ReconcileIndex,
    encode_varint,
    fingerprint,
    item_key,
)


def naive_fingerprint(ids: list[bytes]) -> bytes:
    total = sum(int.from_bytes(event_id, "little") for event_id in ids) % 2**256
    return hashlib.sha256(total.to_bytes(32, "little") + encode_varint(len(ids))).digest()[:16]


def random_items(rnd: random.Random, count: int, spread: int = 50) -> list[tuple[int, bytes]]:
    return [(rnd.randrange(spread), rnd.randbytes(32)) for _ in range(count)]


def check_against(index: ReconcileIndex, model: list[bytes], rnd: random.Random) -> None:
    assert len(index) == len(model)
    assert [item_key(c, i) for c, i in index] == model
    for _ in range(40):
        lo = rnd.randrange(len(model) + 1)
        hi = rnd.randrange(lo, len(model) + 1)
        assert index.fingerprint(lo, hi) == naive_fingerprint([key[8:] for key in model[lo:hi]])
        assert index.keys(lo, hi) == model[lo:hi]
    for key in rnd.sample(model, min(20, len(model))):
        position = model.index(key)
        assert index.key_at(position) == key
        assert index.position(key) == position
        assert index.position(key[:9]) == sum(1 for other in model if other < key[:9])


def test_fingerprint_matches_the_definition() -> None:
    ids = [bytes([n]) * 32 for n in (1, 2, 250)]
    assert fingerprint(sum(int.from_bytes(i, "little") for i in ids), 3) == naive_fingerprint(ids)
    # The sum wraps at 2**256: ids 2**256 - 1 and 1 (little-endian) sum to 0.
    assert naive_fingerprint([b"\xff" * 32, b"\x01" + bytes(31)]) == fingerprint(0, 2) == fingerprint(2**256, 2)
    assert fingerprint(0, 2) != fingerprint(0, 1)
    assert len(fingerprint(0, 0)) == 16


def test_bulk_load_sorts_and_deduplicates() -> None:
    rnd = random.Random(7)
    items = random_items(rnd, 5 * BLOCK_LOAD)
    index = ReconcileIndex(items + items[:10])
    check_against(index, sorted({item_key(c, i) for c, i in items}), rnd)


def test_inserts_and_discards_keep_every_query_right() -> None:
    rnd = random.Random(11)
    index = ReconcileIndex()
    model: list[bytes] = []
    for created_at, event_id in random_items(rnd, 12 * BLOCK_LOAD):
        assert index.insert(created_at, event_id)
        model.append(item_key(created_at, event_id))
    model.sort()
    check_against(index, model, rnd)
    created_at, event_id = next(iter(index))
    assert not index.insert(created_at, event_id)
    assert (created_at, event_id) in index
    assert index.discard(created_at, event_id)
    model.remove(item_key(created_at, event_id))
    assert not index.discard(created_at, event_id)
    assert (created_at, event_id) not in index
    # Remove a run of consecutive items, emptying whole blocks, and some scattered ones.
    for key in model[100 : 100 + 3 * BLOCK_LOAD] + rnd.sample(model, 50):
        if key in model:
            assert index.discard(int.from_bytes(key[:8], "big"), key[8:])
            model.remove(key)
    check_against(index, model, rnd)
    # New events at the end, interleaved with queries (the lazy prefix rebuild from the changed block).
    for step in range(3 * BLOCK_LOAD):
        event_id = rnd.randbytes(32)
        index.insert(1000 + step, event_id)
        model.append(item_key(1000 + step, event_id))
        if step % 37 == 0:
            assert index.fingerprint(0, len(model)) == naive_fingerprint([key[8:] for key in model])
    check_against(index, model, rnd)


def test_empty_index() -> None:
    index = ReconcileIndex()
    assert len(index) == 0
    assert index.position(b"\xff") == 0
    assert index.fingerprint(0, 0) == naive_fingerprint([])
    assert index.keys(0, 5) == []
    assert not index.discard(1, bytes(32))
    with pytest.raises(IndexError):
        index.key_at(0)


def test_item_validation() -> None:
    index = ReconcileIndex()
    for created_at, event_id in ((-1, bytes(32)), (2**53, bytes(32)), (1, bytes(31)), (True, bytes(32))):
        with pytest.raises(ValueError, match=r"created_at|event id"):
            index.insert(created_at, event_id)
        assert (created_at, event_id) not in index
    assert index.insert(2**53 - 1, b"\xff" * 32)
    assert (2**53 - 1, b"\xff" * 32) in index


def test_known_fingerprints_from_the_specification() -> None:
    index = ReconcileIndex([(7, b"\x01" * 32), (9, b"\x02" * 32)])
    assert index.fingerprint(0, 2).hex() == "12a7b248579deb04f68dac6d3db20efd"
    assert index.fingerprint(0, 0).hex() == "7f9c9e31ac8256ca2f258583df262dbc"
