"""The end of an epoch at the keeper: a host's signed `destroy` order (a rotation committed, a move, an abandoned
epoch) and a resident's `tombstone` (every epoch, from every host, for good), each answered with a signed
`DestroyReceipt`. The share and commitments are wiped in the transaction that logs the destruction, then the
replica files are removed and the WAL truncated, so the wiped share does not live on there.
"""

from __future__ import annotations

from ftm.federation.signedanswers import open_signed
from ftm.keeper.deposits import check_tombstone
from ftm.keeper.errors import KeeperError
from ftm.keeper.holdingparts import HoldingParts
from ftm.keeper.journal import key_id
from ftm.keeper.protocol import (
    ORDER_DOMAIN,
    PROTOCOL_VERSION,
    RECEIPT_DOMAIN,
    DestroyOrder,
    DestroyReason,
    DestroyReceipt,
    SignedAnswer,
    TombstoneOrder,
    WireError,
    sign_answer,
)
from ftm.keeper.releasing import displaced_deposit
from ftm.keeper.store import LIVE_STATES, DepositRecord


class Destroying:
    def __init__(self, parts: HoldingParts) -> None:
        self._p = parts

    async def destroy(self, signer: bytes, signed: SignedAnswer) -> SignedAnswer:
        try:
            order = open_signed(DestroyOrder, signed, ORDER_DOMAIN, signer)
        except WireError as error:
            raise KeeperError(400, error.code, error.message) from None
        if order.version != PROTOCOL_VERSION or order.host_key != signer:
            raise KeeperError(400, "bad_order", "the order is not this host's, or of another version")
        if order.reason not in set(DestroyReason):
            raise KeeperError(400, "bad_order", "the reason is not one of rotated, moved, abandoned, tombstone")
        rid, epoch = order.resident_id, order.epoch
        async with self._p.locks.hold(rid):
            record = await self._target(signer, rid, epoch)
            if record.state != "destroyed":
                now = self._p.now()
                async with self._p.db.transaction("keeper.destroy") as tx:
                    await self._p.journal.contact(tx, signer, now)
                    await self._p.store.mark_destroyed(tx, record, order.reason, now)
                    await self._p.journal.record(
                        tx, "destroyed", rid, host=key_id(record.host_key), epoch=epoch, reason=order.reason,
                        by=key_id(signer),
                    )  # fmt: skip
                await self._p.replicas.destroy(record.host_key, rid, epoch)
                await self._p.db.truncate_wal()  # the wiped share must not live on in the WAL
                record = await self._p.host_deposit(record.host_key, rid, epoch)
        assert record.destroyed_at is not None
        receipt = DestroyReceipt(
            PROTOCOL_VERSION, rid, epoch, self._p.keeper_key, record.destroy_reason, record.destroyed_at
        )
        return sign_answer(self._p.key, RECEIPT_DOMAIN, receipt)

    async def _target(self, signer: bytes, resident_id: str, epoch: int) -> DepositRecord:
        """The signer's own deposit of the epoch; else another host's that the signer, as the new host of a
        disaster claim against that host, may have destroyed (`ftm.keeper.releasing.displaced_deposit`)."""
        try:
            return await self._p.host_deposit(signer, resident_id, epoch)
        except KeeperError as own:
            refusal = own
        now = self._p.now()
        record, decision = await displaced_deposit(self._p.store, self._p.db, signer, resident_id, epoch, now)
        if record is None:
            raise refusal if decision.code == "unknown_epoch" else KeeperError(403, decision.code, decision.reason)
        return record

    async def tombstone(self, signer: bytes, order: TombstoneOrder) -> SignedAnswer:
        rid = order.resident_id
        async with self._p.locks.hold(rid):
            deposits = await self._p.store.deposits_of(self._p.db, rid)
            latest = await self._p.store.latest_deposit(self._p.db, rid)
            if latest is None or all(d.host_key != signer for d in deposits):
                raise KeeperError(403, "not_a_host", f"this key is not a host of {rid} here")
            resident_key = latest.resident_key
            event_id = check_tombstone(order, resident_key)
            now = self._p.now()
            live = [d for d in deposits if d.state in LIVE_STATES]
            async with self._p.db.transaction("keeper.tombstone") as tx:
                await self._p.journal.contact(tx, signer, now)
                already = await self._p.store.is_tombstoned(tx, rid)
                for record in live:
                    await self._p.store.mark_destroyed(tx, record, DestroyReason.TOMBSTONE, now)
                if not already:
                    await self._p.store.add_tombstone(tx, rid, resident_key, event_id, now)
                if live or not already:
                    await self._p.journal.record(tx, "tombstoned", rid, host=key_id(signer), epochs=len(live))
            for record in live:
                await self._p.replicas.destroy(record.host_key, rid, record.epoch)
            if live:
                await self._p.db.truncate_wal()  # the wiped shares must not live on in the WAL
        at = await self._p.store.tombstoned_at(self._p.db, rid)
        assert at is not None
        epoch = max(d.epoch for d in deposits)  # the receipt covers every epoch: it names the latest
        receipt = DestroyReceipt(PROTOCOL_VERSION, rid, epoch, self._p.keeper_key, DestroyReason.TOMBSTONE, at)
        return sign_answer(self._p.key, RECEIPT_DOMAIN, receipt)
