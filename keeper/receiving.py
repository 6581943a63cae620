"""A host delivering an epoch to the keeper (docs/custody.md, "Keeper side"): `deposit` (the share, sealed to this
keeper, with its commitments and the replica's facts), `data` (the replica in pieces), `seal` (the replica is
complete and its Merkle root checked: the signed `Holding`) and `commit` (the host's rotation committed).

Only an enrolled host may deliver, for itself. A share is opened only in memory, to verify it against the
commitments at deposit; what is stored is the sealed box as the host sent it. Each decision is logged in the
transaction that records it (`ftm.keeper.journal`), refusals included, before the answer.

A deposit may name a base (an earlier epoch its file begins like); a new deposit whose base this keeper holds
sealed starts its replica with those bytes and answers `Progress` from there, so the host sends only the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftm.keeper.deposits import as_deposited, check_deposit, deposit_record, holding_answer
from ftm.keeper.errors import KeeperError
from ftm.keeper.holdingparts import SEALED, HoldingParts
from ftm.keeper.hostchange import host_change_refusal
from ftm.keeper.journal import key_id
from ftm.keeper.protocol import (
    Ack,
    Commit,
    Deposit,
    Progress,
    Seal,
    SignedAnswer,
)
from ftm.keeper.repairing import finish_repair
from ftm.keeper.shareboxes import ShareBoxError, open_share
from ftm.keeper.shares import Commitments, verify_share
from ftm.keeper.store import DepositRecord


@dataclass(frozen=True, slots=True)
class Limits:
    max_replica_bytes: int
    max_residents: int  # 0: no limit


class Receiving:
    def __init__(self, parts: HoldingParts, limits: Limits) -> None:
        self._p = parts
        self._limits = limits

    async def deposit(self, signer: bytes, deposit: Deposit) -> Progress:
        commitments = check_deposit(deposit)
        rid, epoch = deposit.resident_id, deposit.epoch
        await self._p.require_host(signer)
        async with self._p.locks.hold(rid):
            known = await self._p.store.deposit(self._p.db, signer, rid, epoch)
            if known is not None:
                return await self._deposit_again(signer, known, deposit)
            refusal = await self._deposit_refusal(signer, deposit, commitments)
            now = self._p.now()
            reused = 0 if refusal is not None else await self._begin_replica(signer, deposit)
            async with self._p.db.transaction("keeper.deposit") as tx:
                await self._p.journal.contact(tx, signer, now)
                if refusal is not None:
                    await self._p.journal.refusal(
                        tx, "deposit_refused", rid, refusal.code, signer, host=key_id(signer), epoch=epoch
                    )
                else:
                    await self._p.store.insert_deposit(tx, deposit_record(signer, deposit, now))
                    await self._p.journal.record(
                        tx, "deposit_accepted", rid, host=key_id(signer), epoch=epoch, x=deposit.x,
                        threshold=deposit.threshold, length=deposit.length, reused=reused,
                    )  # fmt: skip
        if refusal is not None:
            raise refusal
        return Progress(rid, epoch, reused)

    async def _deposit_again(self, signer: bytes, known: DepositRecord, deposit: Deposit) -> Progress:
        """The same deposit again (a host resuming after a crash) answers with what is held; another one with
        the same resident and epoch is refused."""
        if known.state == "destroyed":
            raise KeeperError(409, "destroyed", f"epoch {known.epoch} of {known.resident_id} was destroyed")
        if deposit_record(signer, deposit, known.deposited_at) != as_deposited(known):
            raise KeeperError(409, "conflicting_deposit", f"epoch {known.epoch} was deposited with other facts")
        received = (
            known.length
            if known.state in SEALED
            else await self._p.replicas.size(signer, known.resident_id, known.epoch)
        )
        async with self._p.db.transaction("keeper.contact") as tx:
            await self._p.journal.contact(tx, signer, self._p.now())
        return Progress(known.resident_id, known.epoch, received)

    async def _begin_replica(self, signer: bytes, deposit: Deposit) -> int:
        """Start a new deposit's replica: with the first bytes of the base epoch's replica if the deposit names a
        base this keeper can use (the signer's own deposit of it, sealed, of the root named and long enough), else
        empty. A base that cannot be used is ignored, never refused. The bytes reused."""
        rid, epoch, base = deposit.resident_id, deposit.epoch, deposit.base
        held = None if base is None else await self._p.store.deposit(self._p.db, signer, rid, base.epoch)
        if (
            base is None
            or held is None
            or held.state not in SEALED
            or held.root != base.root
            or held.length < base.prefix
        ):
            await self._p.replicas.begin(signer, rid, epoch)
            return 0
        # A wrong copy (a base replica damaged on disk) fails the seal's root check, which empties the replica:
        # the host then sends the whole file, since a deposit repeated answers from what is held.
        return await self._p.replicas.begin_from(signer, rid, epoch, base.epoch, base.prefix)

    async def _deposit_refusal(self, signer: bytes, deposit: Deposit, commitments: Commitments) -> KeeperError | None:
        rid = deposit.resident_id
        if await self._p.store.is_tombstoned(self._p.db, rid):
            return KeeperError(403, "tombstoned", f"resident {rid} is tombstoned")
        if (taken_over := await host_change_refusal(self._p, signer, rid)) is not None:
            return taken_over  # another host's resident, and no claim hands it over (`ftm.keeper.hostchange`)
        if deposit.length > self._limits.max_replica_bytes:
            return KeeperError(
                413, "too_large", f"this keeper takes vault files of at most {self._limits.max_replica_bytes} bytes"
            )
        limit = self._limits.max_residents
        if (
            limit
            and not await self._p.store.holds_resident(self._p.db, rid)
            and await self._p.store.live_residents(self._p.db) >= limit
        ):
            return KeeperError(409, "keeper_full", f"this keeper holds {limit} residents, its limit")
        try:
            share = open_share(self._p.key, deposit.sealed_share, rid, deposit.epoch, deposit.x)
        except ShareBoxError as error:
            return KeeperError(422, "share_rejected", str(error))
        if not verify_share(share, commitments):
            return KeeperError(422, "share_rejected", f"share x={deposit.x} does not verify against the commitments")
        return None

    async def data(self, signer: bytes, resident_id: str, epoch: int, offset: int, chunk: bytes) -> Progress:
        async with self._p.locks.hold(resident_id):
            record = await self._p.host_deposit(signer, resident_id, epoch)
            if record.state != "deposited" and record.state not in SEALED:
                raise KeeperError(409, "not_receiving", f"epoch {epoch} is {record.state}")
            if offset + len(chunk) > record.length:
                raise KeeperError(409, "too_long", f"the replica is {record.length} bytes; this goes beyond")
            # To a sealed replica, data is a repair (`ftm.keeper.repairing`): it goes beside the copy, not into it.
            write = self._p.replicas.append if record.state == "deposited" else self._p.replicas.repair_append
            received = await write(signer, resident_id, epoch, offset, chunk)
        if await self._p.journal.contact_is_news(signer, self._p.now()):
            async with self._p.db.transaction("keeper.contact") as tx:
                await self._p.journal.contact(tx, signer, self._p.now())
        return Progress(resident_id, epoch, received)

    async def seal(self, signer: bytes, seal: Seal) -> SignedAnswer:
        rid, epoch = seal.resident_id, seal.epoch
        async with self._p.locks.hold(rid):
            record = await self._p.host_deposit(signer, rid, epoch)
            if record.state in SEALED:
                await finish_repair(self._p, signer, record)  # if a repair was sent: its root must be the deposited
                return holding_answer(self._p.key, record)  # the same signed answer again (its `at` is stored)
            if record.state != "deposited":
                raise KeeperError(409, "destroyed", f"epoch {epoch} of {rid} was destroyed")
            held = await self._p.replicas.size(signer, rid, epoch)
            refusal: KeeperError | None = None
            if held != record.length:
                raise KeeperError(409, "incomplete", f"{held} of {record.length} bytes are held")
            computed = await self._p.replicas.seal(signer, rid, epoch)
            if (computed.root, computed.length) != (record.root, record.length):
                await self._p.replicas.discard(signer, rid, epoch)
                refusal = KeeperError(
                    409, "wrong_root", "the replica's Merkle root is not the deposited one; send it again"
                )
            else:
                await self._p.replicas.keep_levels(signer, rid, epoch)
            now = self._p.now()
            async with self._p.db.transaction("keeper.seal") as tx:
                await self._p.journal.contact(tx, signer, now)
                if refusal is not None:
                    await self._p.journal.refusal(
                        tx, "seal_refused", rid, refusal.code, signer, host=key_id(signer), epoch=epoch
                    )
                else:
                    await self._p.store.mark_held(tx, record, now)
                    await self._p.journal.record(
                        tx, "seal_held", rid, host=key_id(signer), epoch=epoch, length=record.length
                    )
            if refusal is not None:
                raise refusal
            sealed = await self._p.store.deposit(self._p.db, signer, rid, epoch)
            assert sealed is not None
            return holding_answer(self._p.key, sealed)

    async def commit(self, signer: bytes, commit: Commit) -> Ack:
        rid, epoch = commit.resident_id, commit.epoch
        async with self._p.locks.hold(rid):
            record = await self._p.host_deposit(signer, rid, epoch)
            if record.state == "committed":
                assert record.committed_at is not None
                return Ack(rid, epoch, "committed", record.committed_at)
            if record.state != "held":
                raise KeeperError(409, "not_held", f"epoch {epoch} of {rid} is {record.state}, not held")
            now = self._p.now()
            async with self._p.db.transaction("keeper.commit") as tx:
                await self._p.journal.contact(tx, signer, now)
                await self._p.store.mark_committed(tx, record, now)
                await self._p.journal.record(tx, "committed", rid, host=key_id(signer), epoch=epoch)
            return Ack(rid, epoch, "committed", now)
