"""Ending custody epochs at their keepers (the custody worker's `destroy`).

Once the current epoch is committed, every older one gets a signed DestroyOrder (`rotated`, or `abandoned` if it
never committed) to each keeper that may hold it, and its signed receipt is kept; a resident that moved away gets
`moved` orders, one that deleted itself a TOMBSTONE order (its own signed TOMBSTONE event) to every keeper that
holds anything of it, and is shredded here once n - k + 1 keepers of each epoch returned their receipts
(`ftm.node.tombstones`). An epoch is `destroyed` when every delivery of it is settled (a receipt, or never made).
"""

from __future__ import annotations

import logging

from ftm.config.settings import CustodySettings
from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.federation.events import EventKind
from ftm.federation.identity import NodeIdentity
from ftm.federation.objectstore import ObjectStore
from ftm.keeper.protocol import PROTOCOL_VERSION, DestroyOrder, DestroyReason, TombstoneOrder
from ftm.node.custodyretry import retry_later
from ftm.node.keeperclient import KeeperAddress, KeeperCallError, KeeperClient
from ftm.node.store.custody import CustodyEpoch, CustodyStore, Delivery
from ftm.node.store.residents import ResidentRecord
from ftm.node.tombstones import Shredder

log = logging.getLogger(__name__)

NOTHING_HELD_STATUS = 404  # a keeper that holds nothing of an epoch has nothing to destroy
FORBIDDEN_STATUS = 403
NOT_A_HOST = "not_a_host"  # a tombstone to a keeper holding nothing of the resident from this node


class EpochDestruction:
    def __init__(
        self,
        *,
        db: Database,
        store: CustodyStore,
        client: KeeperClient,
        identity: NodeIdentity,
        objectstore: ObjectStore,
        eventlog: EventLog,
        shredder: Shredder,
        clock: Clock,
        settings: CustodySettings,
    ) -> None:
        self._db = db
        self._store = store
        self._client = client
        self._identity = identity
        self._objectstore = objectstore
        self._eventlog = eventlog
        self._shredder = shredder
        self._clock = clock
        self._settings = settings

    async def destroy(self, epoch: CustodyEpoch, reason: DestroyReason, due_only: bool) -> None:
        """Order each keeper that may hold the epoch to destroy it, keeping the receipts."""
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
                        epoch.resident_id, epoch.epoch, delivery.keeper_key, now,
                        state="destroyed", last_error=error.code,
                    )  # fmt: skip
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

    async def tombstone(self, resident: ResidentRecord, epochs: list[CustodyEpoch], due_only: bool) -> None:
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
        await self._shredder.settle(resident.id, resident.key_epoch)  # before the epochs close: a crash resumes it
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

    async def _failed(self, delivery: Delivery, code: str) -> None:
        await retry_later(self._store, delivery, code, now=self._now(), retry_seconds=self._settings.retry_seconds)

    def _now(self) -> int:
        return int(self._clock.now())
