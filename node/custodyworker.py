"""The custody worker: threshold custody's background half, driving every epoch from its key record to its end.

    record     a key record (a run's, an intake's, an arrival's, a rotation's) becomes a custody epoch, pending,
               with one delivery per keeper it was dealt to (here)
    deliver    `ftm.node.custodydelivery`: each keeper of the current epoch is sent its deposit and the vault file,
    commit     and seals it; at threshold + 1 Holdings the epoch commits and each holder is told
    destroy    `ftm.node.custodydestruction`: older epochs get signed destroy orders (tombstone orders for a
               resident that deleted itself), and their receipts are kept
    heartbeat  every `heartbeat_minutes` to each keeper (it cancels disaster claims against this node) (here)
    prove      `ftm.node.custodyproofs`: daily possession challenges with containment and suspect marking
    repair     `ftm.node.custodyrepair`: a keeper whose copy of the current epoch failed its challenges is sent the
               vault file again, which it takes only if it hashes to the epoch's root

Every step reads its state from `ftm.node.store.custody`, does one request, and records the result, so a crash at
any instant resumes where it was; a keeper that did not answer is tried again after `retry_seconds` (doubling, up
to 64 times: `ftm.node.custodyretry`), or at once when a run commits (`kick`). Nothing here ever holds a key:
deposits carry shares sealed to their keepers when they were dealt, and replicas are ciphertext.
docs/custody-host.md describes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ftm.config.settings import CustodySettings
from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.federation.identity import NodeIdentity
from ftm.federation.objectstore import ObjectStore
from ftm.keeper.protocol import PROTOCOL_VERSION, DestroyReason, Heartbeat
from ftm.node.custody import CustodyIntegrityError
from ftm.node.custodydelivery import EpochDelivery
from ftm.node.custodydestruction import EpochDestruction
from ftm.node.custodyproofs import CustodyProofs
from ftm.node.custodyrepair import ReplicaRepairs
from ftm.node.keeperclient import KeeperAddress, KeeperCallError, KeeperClient
from ftm.node.store.custody import CustodyEpoch, CustodyStore, NewDelivery
from ftm.node.store.residents import ResidentStore
from ftm.node.store.runtime_settings import RuntimeSettingsStore
from ftm.node.store.tombstones import TombstoneStore
from ftm.node.thresholdcustody import decode_record
from ftm.node.tombstones import Shredder
from ftm.node.vaultstore import VaultStore

log = logging.getLogger(__name__)

CUSTODY = "threshold"
RECORDS_PER_TICK = 500
RESIDENTS_PER_TICK = 1000


class CustodyWorker:
    def __init__(
        self,
        *,
        db: Database,
        store: CustodyStore,
        residents: ResidentStore,
        runtime_settings: RuntimeSettingsStore,
        vault: VaultStore,
        client: KeeperClient,
        identity: NodeIdentity,
        objectstore: ObjectStore,
        eventlog: EventLog,
        clock: Clock,
        settings: CustodySettings,
        guardians: tuple[bytes, ...],
    ) -> None:
        self._db = db
        self._store = store
        self._residents = residents
        self._client = client
        self._clock = clock
        self._settings = settings
        self.proofs = CustodyProofs(
            db=db, store=store, client=client, eventlog=eventlog, clock=clock, settings=settings
        )
        self.shredder = Shredder(db=db, store=TombstoneStore(db), residents=residents, vault=vault, eventlog=eventlog)
        self.delivery = EpochDelivery(
            db=db, store=store, runtime_settings=runtime_settings, vault=vault, client=client, eventlog=eventlog,
            clock=clock, settings=settings, guardians=guardians,
        )  # fmt: skip
        self.destruction = EpochDestruction(
            db=db, store=store, client=client, identity=identity, objectstore=objectstore, eventlog=eventlog,
            shredder=self.shredder, clock=clock, settings=settings,
        )  # fmt: skip
        self.repairs = ReplicaRepairs(
            db=db, store=store, vault=vault, client=client, eventlog=eventlog, delivery=self.delivery, clock=clock,
            settings=settings,
        )  # fmt: skip
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def kick(self, *_: object) -> None:
        """Work now, whatever the retry times: a run committed, or a keeper enrolled."""
        self._wake.set()

    async def tick(self, *, due_only: bool = True) -> None:
        """One pass over everything custody has to do. Never raises an ordinary exception."""
        async with self._lock:
            try:
                await self._record_new()
                for resident_id in await self._store.residents_with_work(RESIDENTS_PER_TICK):
                    try:
                        await self._resident(resident_id, due_only)
                    except Exception:
                        log.exception("custody work failed for a resident", extra={"resident_id": resident_id})
                await self._heartbeats()
                await self.proofs.tick()
                await self.repairs.tick(due_only=due_only)
            except Exception:
                log.exception("custody worker pass failed; trying again at the next")

    async def run_forever(self, stop: asyncio.Event) -> None:
        """A `tick` at once, then every `retry_seconds` or when kicked, until `stop` is set."""
        first = True
        while not stop.is_set():
            kicked = self._wake.is_set()
            self._wake.clear()
            await self.tick(due_only=not (first or kicked))
            first = False
            waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED), self._settings.retry_seconds
                )
            for waiter in waiters:
                waiter.cancel()

    async def close(self) -> None:
        await self._client.close()

    # --- record ---------------------------------------------------------------------------------------------------

    async def _record_new(self) -> None:
        now = self._now()
        for resident_id, epoch, raw in await self._store.unrecorded(CUSTODY, RECORDS_PER_TICK):
            try:
                record = decode_record(raw)
            except CustodyIntegrityError:
                log.error("a threshold key record does not decode", extra={"resident_id": resident_id, "epoch": epoch})
                continue
            row = CustodyEpoch(
                resident_id, epoch, "pending", record.threshold, record.commitments, record.root, record.length,
                None, now, None, record.base,
            )  # fmt: skip
            deliveries = [NewDelivery(h.keeper_key, h.x, h.sealed_share) for h in record.holders]
            async with self._db.transaction("custody_epoch_recorded") as tx:
                await self._store.add_epoch(tx, row, deliveries, now)

    # --- one resident ---------------------------------------------------------------------------------------------

    async def _resident(self, resident_id: str, due_only: bool) -> None:
        resident = await self._residents.get(resident_id)
        epochs = [e for e in await self._store.epochs_of(resident_id) if e.state != "destroyed"]
        if resident is None or resident.status in ("moved", "deleted_memorial"):
            if resident is not None and resident.status == "deleted_memorial":
                await self.destruction.tombstone(resident, epochs, due_only)
            else:
                for epoch in epochs:
                    await self.destruction.destroy(epoch, DestroyReason.MOVED, due_only)
            return
        current = next((e for e in epochs if e.epoch == resident.key_epoch), None)
        if current is not None:
            current = await self.delivery.deliver(resident, current, due_only)
        committed = current is not None and current.state == "committed"
        for epoch in epochs:
            if epoch.epoch >= resident.key_epoch:
                continue
            if epoch.state == "destroying":
                await self.destruction.destroy(epoch, DestroyReason(epoch.reason or DestroyReason.ROTATED), due_only)
            elif committed:
                reason = DestroyReason.ROTATED if epoch.state == "committed" else DestroyReason.ABANDONED
                await self.destruction.destroy(epoch, reason, due_only)
            # else: superseded, but nothing newer is committed yet; it stays until something is

    # --- heartbeats -----------------------------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        now = self._now()
        for keeper in await self._store.due_heartbeats(now):
            try:
                await self._client.heartbeat(
                    KeeperAddress(keeper.keeper_key, keeper.url), Heartbeat(PROTOCOL_VERSION, now)
                )
            except KeeperCallError as error:
                log.info("keeper missed a heartbeat", extra={"keeper": keeper.registration_id, "code": error.code})
            else:
                await self._store.seen(keeper.keeper_key, now)
            await self._store.heartbeat_at(keeper.keeper_key, now + self._settings.heartbeat_minutes * 60)

    def _now(self) -> int:
        return int(self._clock.now())
