"""The threshold custody record: what the node stores for an epoch, nothing in the clear; and the custody protocol
every caller now gets its keys from."""

from __future__ import annotations

import pytest

from ftm.federation import codec
from ftm.federation.identity import SigningKey
from ftm.keeper import shares
from ftm.keeper.shareboxes import ShareBoxError, open_share, seal_share_to_keeper
from ftm.node.custody import LOCAL_RECORD_SIZE, CustodyIntegrityError, LocalCustody, is_local_record
from ftm.node.thresholdcustody import RECORD_VERSION, RecordHolder, ThresholdRecord, decode_record, encode_record

RESIDENT = "lumen"


def make_record(k: int = 3, n: int = 5) -> tuple[ThresholdRecord, list[SigningKey], shares.Dealing]:
    keepers = [SigningKey.generate() for _ in range(n)]
    dealing = shares.deal(k, n)
    holders = tuple(
        RecordHolder(key.public_key, share.x, seal_share_to_keeper(key.public_key, RESIDENT, 7, share))
        for key, share in zip(keepers, dealing.shares, strict=True)
    )
    record = ThresholdRecord(RECORD_VERSION, k, dealing.commitments.encode(), bytes(range(32)), 4096, holders)
    return record, keepers, dealing


def test_a_record_round_trips_and_holds_only_sealed_shares() -> None:
    record, keepers, dealing = make_record()
    encoded = encode_record(record)
    assert decode_record(encoded) == record
    assert not is_local_record(encoded)
    for secret in (dealing.secret.value, *(share.value for share in dealing.shares)):
        assert secret not in encoded
    # Each keeper, and only it, opens its own share, bound to resident, epoch and x.
    for key, holder, share in zip(keepers, record.holders, dealing.shares, strict=True):
        assert open_share(key, holder.sealed_share, RESIDENT, 7, holder.x) == share
        with pytest.raises(ShareBoxError, match="bound to another"):
            open_share(key, holder.sealed_share, RESIDENT, 8, holder.x)
    with pytest.raises(ShareBoxError, match="does not open"):
        open_share(keepers[1], record.holders[0].sealed_share, RESIDENT, 7, 1)


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2},
        {"threshold": 2},  # not the commitments' count
        {"root": b"short"},
        {"length": -1},
        {"holders": ()},  # fewer holders than the threshold
    ],
)
def test_a_record_that_is_not_well_formed_is_refused(change: dict[str, object]) -> None:
    record, _, _ = make_record()
    fields = {name: getattr(record, name) for name in ThresholdRecord.__dataclass_fields__}
    with pytest.raises(CustodyIntegrityError):
        decode_record(codec.encode(ThresholdRecord(**{**fields, **change})))


def test_two_holders_with_one_x_and_bytes_that_are_no_record_are_refused() -> None:
    record, _, _ = make_record()
    twice = ThresholdRecord(
        record.version, record.threshold, record.commitments, record.root, record.length,
        (*record.holders[:-1], record.holders[0]),
    )  # fmt: skip
    for data in (encode_record(twice), b"\x01" * LOCAL_RECORD_SIZE, b"not msgpack"):
        with pytest.raises(CustodyIntegrityError):
            decode_record(data)


async def test_local_custody_makes_random_keys_and_keeps_its_record_format() -> None:
    custody = LocalCustody(bytes(32))
    first, second = await custody.new_epoch_key(RESIDENT, 1), await custody.new_epoch_key(RESIDENT, 1)
    assert len(first) == 32 and first != second
    record = await custody.seal_epoch_key(RESIDENT, 1, first)
    assert len(record) == LOCAL_RECORD_SIZE and is_local_record(record)
    assert await custody.open_epoch_key(RESIDENT, 1, record) == first
    assert custody.opens_once is False
