"""The keeper's operations on what it holds (docs/custody.md, "Keeper side"): a host's deposit, data, seal, commit,
destroy, challenge, heartbeat and tombstone, anyone's read and holdings. The release policy's operations (release,
move, veto, disaster) are in `ftm.keeper.releasing`, reached through `KeeperService.releasing`.

Each operation that decides something records its decision in the signed log inside the transaction that acts on
it (`ftm.keeper.journal`), and only then answers. Work on one resident's files is serialised by a lock per
resident; file work happens before the transaction that records it (a crash in between leaves either nothing
recorded or, after a destroy, orphan ciphertext that `start_up` sweeps away). A share is opened only in memory,
to verify it at deposit and to prove possession of it; what is stored is the sealed box as the host sent it.

Who may do what: host operations need a request signed by an enrolled host (`hosts` table), for its own
deposits; `read` also serves a requester an epoch was released to; `holdings` is anyone's. Requests from keys
that are not hosts are refused (`not_a_host`, 403) without a log entry, so strangers cannot grow the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.identity import SigningKey
from ftm.federation.signedanswers import open_signed
from ftm.keeper import merkle
from ftm.keeper.deposits import as_deposited, check_deposit, check_tombstone, deposit_record, holding_answer
from ftm.keeper.errors import KeeperError
from ftm.keeper.journal import Journal, key_id
from ftm.keeper.protocol import (
    CHUNK_BYTES,
    MAX_RESIDENTS_LISTED,
    ORDER_DOMAIN,
    PROOF_DOMAIN,
    PROTOCOL_VERSION,
    RECEIPT_DOMAIN,
    Ack,
    Challenge,
    Commit,
    Deposit,
    DestroyOrder,
    DestroyReason,
    DestroyReceipt,
    Heartbeat,
    HoldingEntry,
    Holdings,
    HoldingsAnswer,
    Progress,
    Proof,
    ReadRequest,
    Seal,
    SignedAnswer,
    TombstoneOrder,
    WireError,
    sign_answer,
)
from ftm.keeper.releasing import Releasing
from ftm.keeper.replicas import Replicas, host_dir_name
from ftm.keeper.shareboxes import ShareBoxError, open_share
from ftm.keeper.shares import Commitments, prove_possession, verify_share
from ftm.keeper.store import LIVE_STATES, DepositRecord, KeeperStore

log = logging.getLogger(__name__)

_SEALED = ("held", "committed")


@dataclass(frozen=True, slots=True)
class Limits:
    max_replica_bytes: int
    max_residents: int  # 0: no limit


class _Locks:
    """One asyncio lock per resident, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, resident_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(resident_id, (asyncio.Lock(), 0))
        self._locks[resident_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[resident_id]
            if users == 1:
                del self._locks[resident_id]
            else:
                self._locks[resident_id] = (lock, users - 1)


class KeeperService:
    def __init__(
        self,
        *,
        key: SigningKey,
        db: Database,
        store: KeeperStore,
        replicas: Replicas,
        journal: Journal,
        releasing: Releasing,
        clock: Clock,
        limits: Limits,
    ) -> None:
        self.key = key
        self.db = db
        self.store = store
        self.replicas = replicas
        self.journal = journal
        self.releasing = releasing
        self.clock = clock
        self.limits = limits
        self._locks = _Locks()

    @property
    def keeper_key(self) -> bytes:
        return self.key.public_key

    def _now(self) -> int:
        return int(self.clock.now())

    async def start_up(self) -> int:
        """Remove replica files of epochs no longer live (a crash after a destroy committed); how many."""
        live = {
            (host_dir_name(d.host_key), d.resident_id, d.epoch)
            for d in await self.store.all_deposits()
            if d.state in LIVE_STATES
        }
        removed = await self.replicas.sweep(live)
        if removed:
            log.info("orphan replica files removed", extra={"files": removed})
        return removed

    async def take_refusals(self, signer: bytes) -> int:
        """Refusals concerning `signer`'s residents since it was last told (0 for anyone but a host)."""
        host = await self.store.host(self.db, signer)
        if host is None or not host.refusals:
            return 0
        async with self.db.transaction("keeper.refusals_reported") as tx:
            return await self.store.take_refusals(tx, signer)

    async def _host_deposit(self, signer: bytes, resident_id: str, epoch: int) -> DepositRecord:
        """The signer's deposit of this epoch; the signer must be an enrolled host."""
        if await self.store.host(self.db, signer) is None:
            raise KeeperError(403, "not_a_host", "this keeper serves only the hosts it enrolled with")
        record = await self.store.deposit(self.db, signer, resident_id, epoch)
        if record is None:
            raise KeeperError(404, "unknown_epoch", f"no deposit of epoch {epoch} of {resident_id} from this host")
        return record

    # --- deposit -------------------------------------------------------------------------------------------------

    async def deposit(self, signer: bytes, deposit: Deposit) -> Progress:
        commitments = check_deposit(deposit)
        rid, epoch = deposit.resident_id, deposit.epoch
        if await self.store.host(self.db, signer) is None:
            raise KeeperError(403, "not_a_host", "this keeper serves only the hosts it enrolled with")
        async with self._locks.hold(rid):
            known = await self.store.deposit(self.db, signer, rid, epoch)
            if known is not None:
                return await self._deposit_again(signer, known, deposit)
            refusal = await self._deposit_refusal(deposit, commitments)
            now = self._now()
            if refusal is None:
                await self.replicas.begin(signer, rid, epoch)
            async with self.db.transaction("keeper.deposit") as tx:
                await self.journal.contact(tx, signer, now)
                if refusal is not None:
                    await self.journal.refusal(
                        tx, "deposit_refused", rid, refusal.code, signer, host=key_id(signer), epoch=epoch
                    )
                else:
                    await self.store.insert_deposit(tx, deposit_record(signer, deposit, now))
                    await self.journal.record(
                        tx, "deposit_accepted", rid, host=key_id(signer), epoch=epoch, x=deposit.x,
                        threshold=deposit.threshold, length=deposit.length,
                    )  # fmt: skip
        if refusal is not None:
            raise refusal
        return Progress(rid, epoch, 0)

    async def _deposit_again(self, signer: bytes, known: DepositRecord, deposit: Deposit) -> Progress:
        """The same deposit again (a host resuming after a crash) answers with what is held; another one with
        the same resident and epoch is refused."""
        if known.state == "destroyed":
            raise KeeperError(409, "destroyed", f"epoch {known.epoch} of {known.resident_id} was destroyed")
        if deposit_record(signer, deposit, known.deposited_at) != as_deposited(known):
            raise KeeperError(409, "conflicting_deposit", f"epoch {known.epoch} was deposited with other facts")
        received = (
            known.length if known.state in _SEALED else await self.replicas.size(signer, known.resident_id, known.epoch)
        )
        async with self.db.transaction("keeper.contact") as tx:
            await self.journal.contact(tx, signer, self._now())
        return Progress(known.resident_id, known.epoch, received)

    async def _deposit_refusal(self, deposit: Deposit, commitments: Commitments) -> KeeperError | None:
        rid = deposit.resident_id
        if await self.store.is_tombstoned(self.db, rid):
            return KeeperError(403, "tombstoned", f"resident {rid} is tombstoned")
        if deposit.length > self.limits.max_replica_bytes:
            return KeeperError(
                413, "too_large", f"this keeper takes vault files of at most {self.limits.max_replica_bytes} bytes"
            )
        limit = self.limits.max_residents
        if (
            limit
            and not await self.store.holds_resident(self.db, rid)
            and await self.store.live_residents(self.db) >= limit
        ):
            return KeeperError(409, "keeper_full", f"this keeper holds {limit} residents, its limit")
        try:
            share = open_share(self.key, deposit.sealed_share, rid, deposit.epoch, deposit.x)
        except ShareBoxError as error:
            return KeeperError(422, "share_rejected", str(error))
        if not verify_share(share, commitments):
            return KeeperError(422, "share_rejected", f"share x={deposit.x} does not verify against the commitments")
        return None

    # --- data, seal, commit --------------------------------------------------------------------------------------

    async def data(self, signer: bytes, resident_id: str, epoch: int, offset: int, chunk: bytes) -> Progress:
        async with self._locks.hold(resident_id):
            record = await self._host_deposit(signer, resident_id, epoch)
            if record.state != "deposited":
                raise KeeperError(409, "not_receiving", f"epoch {epoch} is {record.state}: its replica is complete")
            if offset + len(chunk) > record.length:
                raise KeeperError(409, "too_long", f"the replica is {record.length} bytes; this goes beyond")
            received = await self.replicas.append(signer, resident_id, epoch, offset, chunk)
        if await self.journal.contact_is_news(signer, self._now()):
            async with self.db.transaction("keeper.contact") as tx:
                await self.journal.contact(tx, signer, self._now())
        return Progress(resident_id, epoch, received)

    async def seal(self, signer: bytes, seal: Seal) -> SignedAnswer:
        rid, epoch = seal.resident_id, seal.epoch
        async with self._locks.hold(rid):
            record = await self._host_deposit(signer, rid, epoch)
            if record.state in _SEALED:
                return holding_answer(self.key, record)  # the same signed answer again (its `at` is stored)
            if record.state != "deposited":
                raise KeeperError(409, "destroyed", f"epoch {epoch} of {rid} was destroyed")
            held = await self.replicas.size(signer, rid, epoch)
            refusal: KeeperError | None = None
            if held != record.length:
                raise KeeperError(409, "incomplete", f"{held} of {record.length} bytes are held")
            computed = await self.replicas.seal(signer, rid, epoch)
            if (computed.root, computed.length) != (record.root, record.length):
                await self.replicas.discard(signer, rid, epoch)
                refusal = KeeperError(
                    409, "wrong_root", "the replica's Merkle root is not the deposited one; send it again"
                )
            else:
                await self.replicas.keep_levels(signer, rid, epoch)
            now = self._now()
            async with self.db.transaction("keeper.seal") as tx:
                await self.journal.contact(tx, signer, now)
                if refusal is not None:
                    await self.journal.refusal(
                        tx, "seal_refused", rid, refusal.code, signer, host=key_id(signer), epoch=epoch
                    )
                else:
                    await self.store.mark_held(tx, record, now)
                    await self.journal.record(
                        tx, "seal_held", rid, host=key_id(signer), epoch=epoch, length=record.length
                    )
            if refusal is not None:
                raise refusal
            sealed = await self.store.deposit(self.db, signer, rid, epoch)
            assert sealed is not None
            return holding_answer(self.key, sealed)

    async def commit(self, signer: bytes, commit: Commit) -> Ack:
        rid, epoch = commit.resident_id, commit.epoch
        async with self._locks.hold(rid):
            record = await self._host_deposit(signer, rid, epoch)
            if record.state == "committed":
                assert record.committed_at is not None
                return Ack(rid, epoch, "committed", record.committed_at)
            if record.state != "held":
                raise KeeperError(409, "not_held", f"epoch {epoch} of {rid} is {record.state}, not held")
            now = self._now()
            async with self.db.transaction("keeper.commit") as tx:
                await self.journal.contact(tx, signer, now)
                await self.store.mark_committed(tx, record, now)
                await self.journal.record(tx, "committed", rid, host=key_id(signer), epoch=epoch)
            return Ack(rid, epoch, "committed", now)

    # --- destroy and tombstone -----------------------------------------------------------------------------------

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
        async with self._locks.hold(rid):
            record = await self._host_deposit(signer, rid, epoch)
            if record.state != "destroyed":
                now = self._now()
                async with self.db.transaction("keeper.destroy") as tx:
                    await self.journal.contact(tx, signer, now)
                    await self.store.mark_destroyed(tx, record, order.reason, now)
                    await self.journal.record(
                        tx, "destroyed", rid, host=key_id(signer), epoch=epoch, reason=order.reason
                    )
                await self.replicas.destroy(signer, rid, epoch)
                await self.db.truncate_wal()  # the wiped share must not live on in the WAL
                record = await self._host_deposit(signer, rid, epoch)
        assert record.destroyed_at is not None
        receipt = DestroyReceipt(
            PROTOCOL_VERSION, rid, epoch, self.keeper_key, record.destroy_reason, record.destroyed_at
        )
        return sign_answer(self.key, RECEIPT_DOMAIN, receipt)

    async def tombstone(self, signer: bytes, order: TombstoneOrder) -> SignedAnswer:
        rid = order.resident_id
        async with self._locks.hold(rid):
            deposits = await self.store.deposits_of(self.db, rid)
            latest = await self.store.latest_deposit(self.db, rid)
            if latest is None or all(d.host_key != signer for d in deposits):
                raise KeeperError(403, "not_a_host", f"this key is not a host of {rid} here")
            resident_key = latest.resident_key
            event_id = check_tombstone(order, resident_key)
            now = self._now()
            live = [d for d in deposits if d.state in LIVE_STATES]
            async with self.db.transaction("keeper.tombstone") as tx:
                await self.journal.contact(tx, signer, now)
                already = await self.store.is_tombstoned(tx, rid)
                for record in live:
                    await self.store.mark_destroyed(tx, record, DestroyReason.TOMBSTONE, now)
                if not already:
                    await self.store.add_tombstone(tx, rid, resident_key, event_id, now)
                if live or not already:
                    await self.journal.record(tx, "tombstoned", rid, host=key_id(signer), epochs=len(live))
            for record in live:
                await self.replicas.destroy(record.host_key, rid, record.epoch)
            if live:
                await self.db.truncate_wal()  # the wiped shares must not live on in the WAL
        at = await self.store.tombstoned_at(self.db, rid)
        assert at is not None
        epoch = max(d.epoch for d in deposits)  # the receipt covers every epoch: it names the latest
        receipt = DestroyReceipt(PROTOCOL_VERSION, rid, epoch, self.keeper_key, DestroyReason.TOMBSTONE, at)
        return sign_answer(self.key, RECEIPT_DOMAIN, receipt)

    # --- read, challenge, heartbeat, holdings --------------------------------------------------------------------

    async def read(self, signer: bytes, request: ReadRequest) -> bytes:
        """Replica bytes for the host, or for a requester the epoch was released to (a move's destination, a
        disaster's new host); a released requester's first read (offset 0) is logged."""
        rid, epoch = request.resident_id, request.epoch
        if not 0 < request.length <= CHUNK_BYTES or request.offset < 0:
            raise KeeperError(400, "bad_range", f"a read is 1 to {CHUNK_BYTES} bytes from a non-negative offset")
        async with self._locks.hold(rid):
            record = await self.store.deposit(self.db, signer, rid, epoch)
            released_to = record is None
            if record is None:
                released = await self.store.released_to(self.db, rid, epoch, signer)
                record = None if released is None else await self.store.deposit(self.db, released, rid, epoch)
                if record is None:
                    message = "only the host, or a requester the epoch was released to, reads its replica"
                    raise KeeperError(403, "not_allowed", message)
            if record.state not in _SEALED:
                raise KeeperError(409, "not_held", f"epoch {epoch} of {rid} is {record.state}")
            if request.offset > record.length:
                raise KeeperError(400, "bad_range", f"the replica is {record.length} bytes")
            if released_to and request.offset == 0:  # a move or a restore starts reading: worth a line in the log
                async with self.db.transaction("keeper.read") as tx:
                    await self.journal.record(
                        tx, "read_started", rid, host=key_id(record.host_key), epoch=epoch, reader=key_id(signer)
                    )
            length = min(request.length, record.length - request.offset)
            return await self.replicas.read(record.host_key, rid, epoch, request.offset, length)

    async def challenge(self, signer: bytes, challenge: Challenge) -> SignedAnswer:
        rid, epoch, nonce = challenge.resident_id, challenge.epoch, challenge.nonce
        low, high, most = merkle.MIN_NONCE_BYTES, merkle.MAX_NONCE_BYTES, merkle.MAX_SAMPLES
        if not low <= len(nonce) <= high or not 1 <= challenge.samples <= most:
            message = f"a nonce is {low} to {high} bytes, and 1 to {most} samples are asked for"
            raise KeeperError(400, "bad_challenge", message)
        async with self._locks.hold(rid):
            record = await self._host_deposit(signer, rid, epoch)
            if record.state not in _SEALED:
                raise KeeperError(409, "not_held", f"epoch {epoch} of {rid} is {record.state}")
            damaged: merkle.ProverError | None = None
            try:
                proof = await self.replicas.prove(
                    signer, rid, epoch, nonce, challenge.samples, record.root, record.length
                )
            except merkle.ProverError as error:
                damaged = error
            now = self._now()
            async with self.db.transaction("keeper.challenge") as tx:
                await self.journal.contact(tx, signer, now)
                outcome = "answered" if damaged is None else "damaged"
                leaf = None if damaged is None else damaged.leaf
                await self.store.record_challenge(tx, record, nonce, challenge.samples, outcome, leaf, now)
                if damaged is None:
                    await self.journal.record(
                        tx, "challenge_answered", rid, host=key_id(signer), epoch=epoch, samples=challenge.samples
                    )
                else:
                    await self.journal.refusal(
                        tx,
                        "challenge_failed",
                        rid,
                        "replica_damaged",
                        signer,
                        host=key_id(signer),
                        epoch=epoch,
                        leaf=leaf,
                    )
        if damaged is not None:
            raise KeeperError(409, "replica_damaged", f"this keeper's copy is damaged: {damaged}")
        commitments = Commitments.decode(record.commitments)
        share = open_share(self.key, record.sealed_share, rid, epoch, record.x)
        possession = prove_possession(share, commitments, nonce=nonce, binding=self.keeper_key)
        del share
        answer = Proof(PROTOCOL_VERSION, rid, epoch, nonce, self.keeper_key, proof.encode(), possession, now)
        return sign_answer(self.key, PROOF_DOMAIN, answer)

    async def heartbeat(self, signer: bytes, heartbeat: Heartbeat) -> Ack:
        now = self._now()
        async with self.db.transaction("keeper.heartbeat") as tx:
            if not await self.journal.contact(tx, signer, now):
                raise KeeperError(403, "not_a_host", "this keeper serves only the hosts it enrolled with")
        return Ack("", 0, "alive", now)

    async def holdings(self, holdings: Holdings) -> HoldingsAnswer:
        records = await self.store.holdings(holdings.host_key, MAX_RESIDENTS_LISTED)
        entries = tuple(HoldingEntry(r.resident_id, r.epoch, r.state, r.length, r.root, r.commitments) for r in records)
        return HoldingsAnswer(self.keeper_key, holdings.host_key, entries)
