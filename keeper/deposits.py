"""What the keeper accepts as a deposit and a tombstone, and what it signs for a sealed epoch: the checks of
`Deposit` (400 `bad_deposit`, 422 `bad_base`) and `TombstoneOrder` (`bad_tombstone`), the stored record a deposit
becomes, and the `Holding` answer. Pure functions; `ftm.keeper.service` uses them.
"""

from __future__ import annotations

from dataclasses import replace

from ftm.federation import codec
from ftm.federation.eventcontent import TombstoneContent, decode_content
from ftm.federation.events import EventError, EventKind, check_event
from ftm.federation.identity import SigningKey, derive_id
from ftm.keeper.errors import KeeperError
from ftm.keeper.merkletree import MAX_LENGTH
from ftm.keeper.protocol import (
    HOLDING_DOMAIN,
    PROTOCOL_VERSION,
    Deposit,
    Holding,
    SignedAnswer,
    TombstoneOrder,
    sign_answer,
)
from ftm.keeper.shares import MAX_SHARES, Commitments, ShareError
from ftm.keeper.store import DepositRecord

DAY_SECONDS = 86_400
MAX_EPOCH = (1 << 63) - 1  # SQLite's integers are signed 64-bit
KEY_BYTES = 32
ROOT_BYTES = 32


def holding_answer(key: SigningKey, record: DepositRecord) -> SignedAnswer:
    """The signed `Holding` of a sealed epoch; the same bytes each time it is asked for (Ed25519 is
    deterministic and every field, `at` included, is stored)."""
    assert record.held_at is not None
    digest = Commitments.decode(record.commitments).digest()
    holding = Holding(
        PROTOCOL_VERSION, record.resident_id, record.epoch, key.public_key, record.host_key, record.x, digest,
        record.root, record.length, record.held_at,
    )  # fmt: skip
    return sign_answer(key, HOLDING_DOMAIN, holding)


def check_deposit(deposit: Deposit) -> Commitments:
    """Structural checks of a deposit (400 `bad_deposit`; 422 `bad_base` for a malformed base); the decoded
    commitments."""

    def bad(message: str) -> KeeperError:
        return KeeperError(400, "bad_deposit", message)

    if derive_id("resident", deposit.resident_key) != deposit.resident_id or len(deposit.resident_key) != KEY_BYTES:
        raise bad("the resident id is not the one derived from the resident key")
    if not 0 <= deposit.epoch <= MAX_EPOCH:
        raise bad(f"an epoch is 0 to {MAX_EPOCH}")
    if not 1 <= deposit.x <= MAX_SHARES or not 1 <= deposit.threshold <= MAX_SHARES:
        raise bad(f"x and the threshold are 1 to {MAX_SHARES}")
    window = deposit.window
    if not 0 <= window.start_second < DAY_SECONDS or not 1 <= window.length_seconds <= DAY_SECONDS:
        raise bad("a run window starts within the day and lasts 1 to 86,400 seconds")
    guardians = deposit.guardians
    if (
        any(len(g) != KEY_BYTES for g in guardians)
        or len(set(guardians)) != len(guardians)
        or len(guardians) > MAX_SHARES
    ):
        raise bad(f"guardians are at most {MAX_SHARES} distinct 32-byte keys")
    if not (0 if not guardians else 1) <= deposit.guardian_threshold <= len(guardians):
        raise bad("the guardian threshold is 1 to the number of guardians (0 without guardians)")
    if not 0 <= deposit.length <= MAX_LENGTH or len(deposit.root) != ROOT_BYTES:
        raise bad("a length fits in 64 bits and a root is 32 bytes")
    try:
        commitments = Commitments.decode(deposit.commitments)
    except (codec.DecodeError, ShareError):
        raise bad("the commitments are not a valid encoding of valid points") from None
    if commitments.threshold != deposit.threshold:
        raise bad("the number of commitments is not the threshold")
    base = deposit.base
    if base is not None and (
        not 0 <= base.epoch < deposit.epoch or len(base.root) != ROOT_BYTES or not 0 <= base.prefix <= deposit.length
    ):
        raise KeeperError(
            422, "bad_base", "a base is an earlier epoch, a 32-byte root and a prefix of 0 to the deposit's length"
        )
    return commitments


def deposit_record(host_key: bytes, deposit: Deposit, now: int) -> DepositRecord:
    return DepositRecord(
        host_key=host_key,
        resident_id=deposit.resident_id,
        epoch=deposit.epoch,
        resident_key=deposit.resident_key,
        threshold=deposit.threshold,
        x=deposit.x,
        commitments=deposit.commitments,
        sealed_share=deposit.sealed_share,
        window_start=deposit.window.start_second,
        window_length=deposit.window.length_seconds,
        guardians=deposit.guardians,
        guardian_threshold=deposit.guardian_threshold,
        length=deposit.length,
        root=deposit.root,
        state="deposited",
        destroy_reason="",
        deposited_at=now,
        held_at=None,
        committed_at=None,
        destroyed_at=None,
    )


def as_deposited(record: DepositRecord) -> DepositRecord:
    """A stored deposit reduced to the facts the host sent, to compare with a deposit received again."""
    return replace(record, state="deposited", destroy_reason="", held_at=None, committed_at=None, destroyed_at=None)


def check_tombstone(order: TombstoneOrder, resident_key: bytes) -> bytes:
    """The tombstone's event id, once it is checked to be a TOMBSTONE the resident's own key signed."""
    try:
        parsed = check_event(order.tombstone)
        if parsed.body.kind is not EventKind.TOMBSTONE or order.tombstone.content is None:
            raise EventError("not_a_tombstone")
        content = decode_content(EventKind.TOMBSTONE, order.tombstone.content)
    except EventError as error:
        raise KeeperError(
            400, "bad_tombstone", f"the tombstone is not a valid TOMBSTONE event ({error.reason})"
        ) from None
    if (
        parsed.body.author != resident_key
        or not isinstance(content, TombstoneContent)
        or content.resident_key != resident_key
    ):
        raise KeeperError(403, "bad_tombstone", "the tombstone is not signed by the resident's own key")
    return parsed.id
