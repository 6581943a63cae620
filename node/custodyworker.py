"""The custody worker: threshold custody's background half, driving every epoch from its key record to its end.

    record     a key record (a run's, an intake's, an arrival's, a rotation's) becomes a custody epoch, pending,
               with one delivery per keeper it was dealt to
    deliver    to each keeper of the resident's current epoch, until it answers: `deposit` → `data` from the
               keeper's `Progress`, 1 MiB at a time, from the epoch's vault file → `seal` → its signed Holding
    commit     at threshold + 1 Holdings the epoch is committed; each holder is told (`commit`), now and whenever
               another keeper catches up later
    destroy    once the current epoch is committed, every older one gets a signed DestroyOrder (`rotated`, or
               `abandoned` if it never committed) to each keeper that may hold it, and its signed receipt is kept;
               a resident that moved away gets `moved` orders, one that deleted itself a TOMBSTONE order (its own
               signed TOMBSTONE event) to every keeper that holds anything of it, and is shredded here once
               n - k + 1 keepers of each epoch returned their receipts (`ftm.node.tombstones`)
    heartbeat  every `heartbeat_minutes` to each keeper (it cancels disaster claims against this node)
    prove      `ftm.node.custodyproofs`: daily possession challenges with containment and suspect marking

Every step reads its state from `ftm.node.store.custody`, does one request, and records the result, so a crash at
any instant resumes where it was; a keeper that did not answer is tried again after `retry_seconds` (doubling, up
to 64 times), or at once when a run commits (`kick`). Nothing here ever holds a key: deposits carry shares sealed to
their keepers when they were dealt, and replicas are ciphertext. docs/custody-host.md describes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from ftm.config.settings import CustodySettings
from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.federation.events import EventKind
from ftm.federation.identity import NodeIdentity
from ftm.federation.objectstore import ObjectStore
from ftm.keeper import protocol, shares
from ftm.keeper.protocol import (
    PROTOCOL_VERSION,
    Commit,
    Deposit,
    DestroyOrder,
    DestroyReason,
    Heartbeat,
    RunWindow,
    Seal,
    TombstoneOrder,
)
from ftm.node.custody import CustodyIntegrityError
from ftm.node.custodyproofs import CustodyProofs, first_challenge_at
from ftm.node.keeperclient import KeeperAddress, KeeperCallError, KeeperClient
from ftm.node.run.scheduler import slot_time
from ftm.node.store.custody import (
    HOLDING_STATES,
    CustodyEpoch,
    CustodyStore,
    Delivery,
    NewDelivery,
    ReplicaKeeper,
)
from ftm.node.store.residents import ResidentRecord, ResidentStore
from ftm.node.store.runtime_settings import RuntimeSettingsStore
from ftm.node.store.tombstones import TombstoneStore
from ftm.node.thresholdcustody import decode_record
from ftm.node.tombstones import Shredder
from ftm.node.vaultstore import VaultStore

log = logging.getLogger(__name__)

CUSTODY = "threshold"
DAY_SECONDS = 86_400
WINDOW_LEAD_SECONDS = 300  # a window opens this long before the slot: clocks of host and keeper differ a little
RECORDS_PER_TICK = 500
RESIDENTS_PER_TICK = 1000
MAX_BACKOFF_FACTOR = 64
NOTHING_HELD_STATUS = 404  # a keeper that holds nothing of an epoch has nothing to destroy
FORBIDDEN_STATUS = 403
NOT_A_HOST = "not_a_host"  # a tombstone to a keeper holding nothing of the resident from this node


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
        self._runtime_settings = runtime_settings
        self._vault = vault
        self._client = client
        self._identity = identity
        self._objectstore = objectstore
        self._eventlog = eventlog
        self._clock = clock
        self._settings = settings
        self._guardians = guardians
        self.proofs = CustodyProofs(
            db=db, store=store, client=client, eventlog=eventlog, clock=clock, settings=settings
        )
        self.shredder = Shredder(db=db, store=TombstoneStore(db), residents=residents, vault=vault, eventlog=eventlog)
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
                None, now, None,
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
                await self._tombstone(resident, epochs, due_only)
            else:
                for epoch in epochs:
                    await self._destroy(epoch, DestroyReason.MOVED, due_only)
            return
        current = next((e for e in epochs if e.epoch == resident.key_epoch), None)
        if current is not None:
            current = await self._deliver(resident, current, due_only)
        committed = current is not None and current.state == "committed"
        for epoch in epochs:
            if epoch.epoch >= resident.key_epoch:
                continue
            if epoch.state == "destroying":
                await self._destroy(epoch, DestroyReason(epoch.reason or DestroyReason.ROTATED), due_only)
            elif committed:
                reason = DestroyReason.ROTATED if epoch.state == "committed" else DestroyReason.ABANDONED
                await self._destroy(epoch, reason, due_only)
            # else: superseded, but nothing newer is committed yet; it stays until something is

    # --- deliver and commit ---------------------------------------------------------------------------------------

    async def _deliver(self, resident: ResidentRecord, epoch: CustodyEpoch, due_only: bool) -> CustodyEpoch:
        now = self._now()
        for delivery in await self._store.deliveries(epoch.resident_id, epoch.epoch):
            if delivery.state not in ("pending", "deposited") or (due_only and delivery.next_try_at > now):
                continue
            keeper = await self._store.keeper(delivery.keeper_key)
            if keeper is None or keeper.state == "retired":
                continue
            try:
                await self._deliver_one(resident, epoch, delivery, keeper)
            except KeeperCallError as error:
                await self._failed(delivery, error.code)
            except OSError as error:
                log.error("cannot read an epoch's vault file to deliver it", extra={"error": type(error).__name__})
                await self._failed(delivery, "vault_file_unreadable")
        deliveries = await self._store.deliveries(epoch.resident_id, epoch.epoch)
        holders = sum(d.state in HOLDING_STATES for d in deliveries)
        if epoch.state == "pending" and holders >= epoch.threshold + 1:
            async with self._db.transaction("custody_epoch_committed") as tx:
                if await self._store.set_epoch_state(tx, epoch.resident_id, epoch.epoch, "pending", "committed", now):
                    await self._eventlog.append(
                        tx, "custody_committed", epoch.resident_id, {"epoch": epoch.epoch, "holders": holders}
                    )
            log.info("custody epoch committed", extra={"resident_id": epoch.resident_id, "epoch": epoch.epoch})
            refreshed = await self._store.epoch(epoch.resident_id, epoch.epoch)
            assert refreshed is not None
            epoch = refreshed
        if epoch.state == "committed":
            for delivery in deliveries:
                if delivery.state == "held" and (not due_only or delivery.next_try_at <= now):
                    await self._tell_committed(epoch, delivery)
        return epoch

    async def _deliver_one(
        self, resident: ResidentRecord, epoch: CustodyEpoch, delivery: Delivery, keeper: ReplicaKeeper
    ) -> None:
        to = KeeperAddress(keeper.keeper_key, keeper.url)
        deposit = Deposit(
            PROTOCOL_VERSION, epoch.resident_id, resident.signing_public_key, epoch.epoch, epoch.threshold,
            delivery.x, epoch.commitments, delivery.sealed_share, await self._window(resident), self._guardians,
            self._settings.guardian_threshold if self._guardians else 0, epoch.length, epoch.root,
        )  # fmt: skip
        progress = await self._client.deposit(to, deposit)
        sent = progress.received
        await self._store.update_delivery(
            epoch.resident_id, epoch.epoch, keeper.keeper_key, self._now(), state="deposited", sent=sent
        )
        path = self._vault.path_for(epoch.resident_id, epoch.epoch)
        while sent < epoch.length:
            chunk = await asyncio.to_thread(_read_chunk, path, sent)
            if not chunk:
                raise KeeperCallError("vault_file_short", "the epoch's vault file is shorter than its record says")
            progress = await self._client.data(to, epoch.resident_id, epoch.epoch, sent, chunk)
            if progress.received <= sent:
                raise KeeperCallError("no_progress", "the keeper did not take the data")
            sent = progress.received
            await self._store.update_delivery(epoch.resident_id, epoch.epoch, keeper.keeper_key, self._now(), sent=sent)
        digest = shares.Commitments.decode(epoch.commitments).digest()
        holding = await self._client.seal(
            to,
            Seal(PROTOCOL_VERSION, epoch.resident_id, epoch.epoch),
            x=delivery.x,
            commitments_digest=digest,
            root=epoch.root,
            length=epoch.length,
        )
        await self._store.update_delivery(
            epoch.resident_id, epoch.epoch, keeper.keeper_key, self._now(),
            state="held", holding=holding.raw, tries=0, next_try_at=0, last_error=None,
        )  # fmt: skip
        await self._store.seen(keeper.keeper_key, self._now())
        log.info(
            "keeper holds an epoch",
            extra={"resident_id": epoch.resident_id, "epoch": epoch.epoch, "x": delivery.x, "bytes": epoch.length},
        )

    async def _tell_committed(self, epoch: CustodyEpoch, delivery: Delivery) -> None:
        keeper = await self._store.keeper(delivery.keeper_key)
        if keeper is None:
            return
        try:
            await self._client.commit(
                KeeperAddress(keeper.keeper_key, keeper.url), Commit(PROTOCOL_VERSION, epoch.resident_id, epoch.epoch)
            )
        except KeeperCallError as error:
            await self._failed(delivery, error.code)
            return
        now = self._now()
        await self._store.update_delivery(
            epoch.resident_id, epoch.epoch, keeper.keeper_key, now,
            state="committed", tries=0, next_try_at=0, last_error=None,
            next_challenge_at=first_challenge_at(now, self._settings.challenge_hours),
        )  # fmt: skip

    async def _window(self, resident: ResidentRecord) -> RunWindow:
        """The daily window in which keepers release the resident's key for a run (rule R1): from just before its
        slot (as the scheduler computes it) to the end of the UTC day, or `run_window_hours` long."""
        hours = self._settings.run_window_hours
        if hours >= 24:
            return RunWindow(0, DAY_SECONDS)
        start_of_window = (await self._runtime_settings.current()).run_window_start
        slot = int(slot_time(resident.id, "1970-01-01", start_of_window, resident.run_time)) % DAY_SECONDS
        start = (slot - WINDOW_LEAD_SECONDS) % DAY_SECONDS
        length = (DAY_SECONDS - slot if hours == 0 else hours * 3600) + WINDOW_LEAD_SECONDS
        return RunWindow(start, min(length, DAY_SECONDS))

    # --- destroy --------------------------------------------------------------------------------------------------

    async def _destroy(self, epoch: CustodyEpoch, reason: DestroyReason, due_only: bool) -> None:
        now = self._now()
        if epoch.state != "destroying":
            async with self._db.transaction("custody_epoch_destroying") as tx:
                await self._store.set_epoch_state(
                    tx, epoch.resident_id, epoch.epoch, epoch.state, "destroying", now, reason.value
                )
        for delivery in await self._store.deliveries(epoch.resident_id, epoch.epoch):
            if delivery.state in ("destroyed", "skipped"):
                continue
            if delivery.state == "pending" and delivery.tries == 0:
                # Never sent: the keeper has nothing of it.
                await self._store.update_delivery(
                    epoch.resident_id, epoch.epoch, delivery.keeper_key, now, state="skipped"
                )
                continue
            if due_only and delivery.next_try_at > now:
                continue
            keeper = await self._store.keeper(delivery.keeper_key)
            if keeper is None:
                continue
            order = DestroyOrder(
                PROTOCOL_VERSION, epoch.resident_id, epoch.epoch, reason.value, self._identity.public_key, now
            )
            try:
                receipt = await self._client.destroy(KeeperAddress(keeper.keeper_key, keeper.url), order)
            except KeeperCallError as error:
                if error.status == NOTHING_HELD_STATUS:
                    await self._store.update_delivery(
                        epoch.resident_id,
                        epoch.epoch,
                        delivery.keeper_key,
                        now,
                        state="destroyed",
                        last_error=error.code,
                    )
                else:
                    await self._failed(delivery, error.code)
                continue
            await self._store.update_delivery(
                epoch.resident_id, epoch.epoch, delivery.keeper_key, self._now(),
                state="destroyed", receipt=receipt.raw, last_error=None,
            )  # fmt: skip
        await self._finish_destroying(epoch)

    async def _finish_destroying(self, epoch: CustodyEpoch) -> None:
        deliveries = await self._store.deliveries(epoch.resident_id, epoch.epoch)
        if any(d.state not in ("destroyed", "skipped") for d in deliveries):
            return
        receipts = sum(d.receipt is not None for d in deliveries)
        async with self._db.transaction("custody_epoch_destroyed") as tx:
            if await self._store.set_epoch_state(
                tx, epoch.resident_id, epoch.epoch, "destroying", "destroyed", self._now()
            ):
                await self._eventlog.append(
                    tx, "custody_destroyed", epoch.resident_id, {"epoch": epoch.epoch, "receipts": receipts}
                )
        log.info("custody epoch destroyed", extra={"resident_id": epoch.resident_id, "epoch": epoch.epoch})

    async def _tombstone(self, resident: ResidentRecord, epochs: list[CustodyEpoch], due_only: bool) -> None:
        """A resident that deleted itself: one TOMBSTONE order per keeper that may hold anything of it destroys every
        epoch there and bars every release for ever. Once enough receipts are in that fewer than k keepers of any
        epoch can still hold a share, this node shreds what it kept (`ftm.node.tombstones`); orders to the others
        go on until each has answered."""
        stored = await self._objectstore.page(1, author=resident.signing_public_key, kind=EventKind.TOMBSTONE)
        if not stored:
            return  # its TOMBSTONE event is queued and reaches the object store shortly
        now = self._now()
        by_keeper: dict[bytes, list[Delivery]] = {}
        for epoch in epochs:
            if epoch.state != "destroying":
                async with self._db.transaction("custody_epoch_destroying") as tx:
                    await self._store.set_epoch_state(
                        tx, resident.id, epoch.epoch, epoch.state, "destroying", now, DestroyReason.TOMBSTONE.value
                    )
            for delivery in await self._store.deliveries(resident.id, epoch.epoch):
                if delivery.state == "pending" and delivery.tries == 0:
                    await self._store.update_delivery(
                        resident.id, epoch.epoch, delivery.keeper_key, now, state="skipped"
                    )
                elif delivery.state not in ("destroyed", "skipped"):
                    by_keeper.setdefault(delivery.keeper_key, []).append(delivery)
        order = TombstoneOrder(PROTOCOL_VERSION, resident.id, stored[0].signed)
        for keeper_key, held in by_keeper.items():
            keeper = await self._store.keeper(keeper_key)
            if keeper is None or (due_only and min(d.next_try_at for d in held) > now):
                continue
            try:
                receipt = await self._client.tombstone(KeeperAddress(keeper.keeper_key, keeper.url), order)
            except KeeperCallError as error:
                await self._tombstone_refused(held, error)
                continue
            async with self._db.transaction("custody_tombstoned") as tx:
                for delivery in held:
                    await self._store.update_delivery(
                        resident.id, delivery.epoch, keeper_key, self._now(), tx,
                        state="destroyed", receipt=receipt.raw, last_error=None,
                    )  # fmt: skip
        await self.shredder.settle(resident.id, resident.key_epoch)  # before the epochs close: a crash resumes it
        for epoch in await self._store.epochs_of(resident.id):
            if epoch.state == "destroying":
                await self._finish_destroying(epoch)

    async def _tombstone_refused(self, held: list[Delivery], error: KeeperCallError) -> None:
        """A keeper with no deposit of the resident from this node says so (403 `not_a_host`, or 404). That settles
        deliveries it never acknowledged (they were never made: `skipped`); one it acknowledged needs its receipt,
        so it is asked again, like any other failure."""
        nothing_held = error.status == NOTHING_HELD_STATUS or (
            error.status == FORBIDDEN_STATUS and error.code == NOT_A_HOST
        )
        for delivery in held:
            if nothing_held and delivery.state == "pending":
                await self._store.update_delivery(
                    delivery.resident_id, delivery.epoch, delivery.keeper_key, self._now(),
                    state="skipped", last_error=error.code,
                )  # fmt: skip
            else:
                await self._failed(delivery, error.code)

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

    # --- helpers --------------------------------------------------------------------------------------------------

    async def _failed(self, delivery: Delivery, code: str) -> None:
        now = self._now()
        delay = self._settings.retry_seconds * min(2**delivery.tries, MAX_BACKOFF_FACTOR)
        await self._store.update_delivery(
            delivery.resident_id, delivery.epoch, delivery.keeper_key, now,
            tries=delivery.tries + 1, next_try_at=now + delay, last_error=code[:100],
        )  # fmt: skip
        log.info(
            "keeper request failed; retrying later",
            extra={"resident_id": delivery.resident_id, "epoch": delivery.epoch, "x": delivery.x, "code": code},
        )

    def _now(self) -> int:
        return int(self._clock.now())


def _read_chunk(path: Path, offset: int) -> bytes:
    with open(path, "rb") as source:
        source.seek(offset)
        return source.read(protocol.CHUNK_BYTES)
