"""Repairing a keeper's copy of the current epoch (docs/custody.md, "Repair").

When a keeper's copy fails its possession challenges (after containment) in a way that shows the ciphertext
missing or wrong, `ftm.node.custodyproofs` marks the holding (`sent` = 0). This sends the epoch's vault file to
that keeper again, from offset 0 to its end, through the same `data` and `seal` requests as a first delivery: a
keeper that holds the epoch sealed writes what it is sent beside its copy, and at `seal` replaces its copy only
if what it received hashes to the epoch's root (otherwise it refuses `wrong_root` and keeps what it had). The
answer is the keeper's Holding again.

A repaired holding is logged in the public event log (`replica_repaired`: the keeper's registration, the
resident, the epoch, the bytes sent) and challenged again at the worker's next pass, with containment reset.
A repair that fails (the keeper is down, refused it, or the vault file cannot be read) is tried again after
`retry_seconds`, doubling (`ftm.node.custodyretry`), from offset 0 each time, while the epoch is the resident's
current one and committed. Only the current epoch is repaired: the node keeps no other vault file for long.
"""

from __future__ import annotations

import logging

from ftm.config.settings import CustodySettings
from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.node.custodydelivery import EpochDelivery, send_replica
from ftm.node.custodyretry import retry_later
from ftm.node.keeperclient import KeeperAddress, KeeperCallError, KeeperClient
from ftm.node.store.custody import CustodyStore, Delivery
from ftm.node.vaultstore import VaultStore

log = logging.getLogger(__name__)

REPAIRS_PER_TICK = 20  # each sends a whole vault file; more wait for the next pass


class ReplicaRepairs:
    def __init__(
        self,
        *,
        db: Database,
        store: CustodyStore,
        vault: VaultStore,
        client: KeeperClient,
        eventlog: EventLog,
        delivery: EpochDelivery,
        clock: Clock,
        settings: CustodySettings,
    ) -> None:
        self._db = db
        self._store = store
        self._vault = vault
        self._client = client
        self._eventlog = eventlog
        self._delivery = delivery
        self._clock = clock
        self._settings = settings

    async def tick(self, *, due_only: bool = True) -> None:
        """Repair every holding marked for it whose try is due (every one, with `due_only` False)."""
        for delivery in await self._store.due_repairs(self._now() if due_only else None, REPAIRS_PER_TICK):
            await self.repair(delivery)

    async def repair(self, delivery: Delivery) -> bool:
        """Send the keeper the epoch's vault file again and have it sealed; True once the keeper holds it whole."""
        epoch = await self._store.epoch(delivery.resident_id, delivery.epoch)
        keeper = await self._store.keeper(delivery.keeper_key)
        if epoch is None or keeper is None or keeper.state == "retired":
            return False
        to = KeeperAddress(keeper.keeper_key, keeper.url)
        path = self._vault.path_for(epoch.resident_id, epoch.epoch)
        try:
            await send_replica(self._client, to, path, epoch, 0)  # nothing to record: a retry starts at 0 again
            await self._delivery.seal(to, epoch, delivery)
        except KeeperCallError as error:
            await self._failed(delivery, error.code)
            return False
        except OSError as error:
            log.error("cannot read an epoch's vault file to repair it", extra={"error": type(error).__name__})
            await self._failed(delivery, "vault_file_unreadable")
            return False
        now = self._now()
        async with self._db.transaction("custody_replica_repaired") as tx:
            await self._store.update_delivery(
                epoch.resident_id, epoch.epoch, keeper.keeper_key, now, tx,
                sent=epoch.length, tries=0, next_try_at=0, last_error=None,
                containment=0, first_failed_at=None, next_challenge_at=now,
            )  # fmt: skip
            await self._eventlog.append(
                tx, "replica_repaired", keeper.registration_id,
                {"resident": epoch.resident_id, "epoch": epoch.epoch, "bytes": epoch.length},
            )  # fmt: skip
        await self._store.seen(keeper.keeper_key, now)
        log.info(
            "keeper's copy of an epoch repaired",
            extra={"keeper": keeper.registration_id, "resident_id": epoch.resident_id, "epoch": epoch.epoch},
        )
        return True

    async def _failed(self, delivery: Delivery, code: str) -> None:
        await retry_later(self._store, delivery, code, now=self._now(), retry_seconds=self._settings.retry_seconds)

    def _now(self) -> int:
        return int(self._clock.now())
