"""The reconciliation message format: exact bytes, and strict refusal of anything malformed or too large."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftm.federation.reconcile import ReconcileIndex, ReconcileSession, reconcile_respond, run_session
from ftm.federation.reconcileindex import encode_varint, item_key
from ftm.federation.reconcilewire import (
    INFINITY,
    Limits,
    Mode,
    Range,
    ReconcileError,
    decode_message,
    encode_message,
)

LIMITS = Limits()
FP = bytes(range(16))


def test_bytes_of_a_message_are_pinned() -> None:
    ranges = [
        Range(item_key(1000, b"\xab\xcd" + bytes(30))[:10], Mode.SKIP),  # timestamp 1000, prefix ab cd
        Range(item_key(1130, bytes(32))[:8], Mode.FINGERPRINT, fingerprint=FP),
        Range(INFINITY, Mode.ID_LIST, ids=(b"\x01" * 32,)),
    ]
    data = encode_message(ranges)
    assert data == (
        b"\x01"  # version
        + b"\xe9\x07"  # 1000 + 1 as LEB128
        + b"\x08\xab\xcd"  # head: prefix length 2 << 2 | Skip, then the prefix
        + b"\x83\x01"  # 130 + 1: the timestamp delta
        + b"\x01"  # head: no prefix, Fingerprint
        + FP
        + b"\x00\x02"  # infinity, IdList
        + b"\x01"
        + b"\x01" * 32
    )
    assert decode_message(data, LIMITS) == ranges


def test_varints_are_leb128() -> None:
    assert encode_varint(0) == b"\x00"
    assert encode_varint(127) == b"\x7f"
    assert encode_varint(128) == b"\x80\x01"
    assert encode_varint(2**53) == b"\x80\x80\x80\x80\x80\x80\x80\x10"


def bound(ts: int, prefix: bytes = b"") -> bytes:
    """Encoded first bound: timestamp delta from 0, then a Skip head."""
    return encode_varint(ts + 1) + encode_varint(len(prefix) << 2) + prefix


MALFORMED = {
    "truncated": [
        b"",
        b"\x01\x80",
        b"\x01\x05",
        b"\x01\x05\x04",
        b"\x01\x00\x01" + FP[:5],
        b"\x01\x00\x02\x02" + bytes(40),
    ],
    "unsupported_version": [b"\x02", b"\x61\x00\x00"],
    "non_minimal_varint": [b"\x01\x85\x00\x00"],
    "varint_too_long": [b"\x01" + b"\xff" * 10],
    "unknown_mode": [b"\x01\x00\x03"],
    "bad_bound": [
        b"\x01" + encode_varint(2**53 + 1) + b"\x00",  # timestamp 2**53
        b"\x01\x05" + encode_varint(33 << 2) + bytes(33),  # prefix longer than an id
        b"\x01\x05\x04\x00",  # prefix ends in a zero byte
        b"\x01\x00\x04\x01",  # infinity with a prefix
        b"\x01\x01\x00",  # the lowest bound itself: an empty range
        b"\x01" + bound(5) + b"\x01\x00",  # the same bound twice
        b"\x01" + bound(5, b"\x07") + b"\x01\x04\x06",  # a lower prefix at the same timestamp
    ],
    "range_after_end": [b"\x01\x00\x00\x05\x00"],
    "duplicate_id": [b"\x01\x00\x02\x02" + b"\x07" * 64],
}


@pytest.mark.parametrize(("code", "data"), [(code, data) for code, cases in MALFORMED.items() for data in cases])
def test_malformed_messages_are_refused_with_a_code(code: str, data: bytes) -> None:
    with pytest.raises(ReconcileError) as caught:
        decode_message(data, LIMITS)
    assert caught.value.code == code
    with pytest.raises(ReconcileError):
        reconcile_respond(ReconcileIndex(), data)


def test_oversized_message_is_refused_before_parsing() -> None:
    limits = Limits(max_message_bytes=4096)
    data = b"\x01\x00\x02" + encode_varint(200) + bytes(range(200)) * 32  # 200 distinct-looking ids, 6.4 KB
    with pytest.raises(ReconcileError) as caught:
        decode_message(data, limits)
    assert caught.value.code == "message_too_large"


def test_too_many_ranges_are_refused() -> None:
    limits = Limits(max_ranges=40)
    many = [Range(item_key(n + 1, bytes(32))[:8], Mode.SKIP) for n in range(41)]
    assert len(decode_message(encode_message(many[:40]), limits)) == 40
    with pytest.raises(ReconcileError) as caught:
        decode_message(encode_message(many), limits)
    assert caught.value.code == "too_many_ranges"


def test_a_message_of_many_mismatching_ranges_gets_an_answer_within_the_limits() -> None:
    """The most work one message can ask for: max_ranges fingerprints, all wrong, over a large index."""
    rnd = random.Random(1)
    index = ReconcileIndex((rnd.randrange(10**6), rnd.randbytes(32)) for _ in range(50_000))
    step = len(index) // LIMITS.max_ranges
    bounds = sorted({index.key_at(n * step)[:8] for n in range(1, LIMITS.max_ranges)})
    ranges = [Range(b, Mode.FINGERPRINT, fingerprint=FP) for b in bounds] + [Range(INFINITY, Mode.FINGERPRINT, FP)]
    message = encode_message(ranges)
    assert len(decode_message(message, LIMITS)) <= LIMITS.max_ranges
    reply = reconcile_respond(index, message)
    assert len(reply) <= LIMITS.max_message_bytes
    answered = decode_message(reply, LIMITS)
    assert 0 < len(answered) <= LIMITS.max_ranges
    assert answered[-1] == Range(INFINITY, Mode.FINGERPRINT, fingerprint=answered[-1].fingerprint)


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes_never_raise_anything_but_reconcile_error(data: bytes) -> None:
    index = ReconcileIndex([(5, b"\x01" * 32), (9, b"\x02" * 32)])
    limits = Limits(max_message_bytes=4096)
    for message in (data, b"\x01" + data):
        try:
            reply = reconcile_respond(index, message, limits)
        except ReconcileError as error:
            code = error.code
        else:
            code = "answered"
            assert len(decode_message(reply, limits)) <= limits.max_ranges
        assert code in {*MALFORMED, "message_too_large", "too_many_ranges", "answered"}


def test_a_finished_session_refuses_more_replies() -> None:
    session = ReconcileSession(ReconcileIndex())
    session.initiate()
    assert session.receive(b"\x01") is None
    with pytest.raises(ReconcileError) as caught:
        session.receive(b"\x01")
    assert caught.value.code == "session_done"


async def test_a_server_that_never_converges_is_cut_off() -> None:
    index = ReconcileIndex([(n, bytes([n + 1]) * 32) for n in range(50)])
    calls = 0

    async def stubborn(message: bytes) -> bytes:
        nonlocal calls
        calls += 1
        return encode_message([Range(INFINITY, Mode.FINGERPRINT, fingerprint=FP)])

    with pytest.raises(ReconcileError) as caught:
        await run_session(index, stubborn, max_round_trips=7)
    assert caught.value.code == "too_many_round_trips"
    assert calls == 7
