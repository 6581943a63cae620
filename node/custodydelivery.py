"""Delivering a custody epoch to its keepers, and committing it (the custody worker's `deliver` and `commit`).

    deliver    to each keeper of the resident's current epoch, until it answers: `deposit` → `data` from the
               keeper's `Progress`, 1 MiB at a time, from the epoch's vault file → `seal` → its signed Holding.
               A keeper holding the epoch's base (the previous epoch, when the files share their first bytes) is
               told of it in the deposit, copies those bytes itself, and answers `Progress` from there
    commit     at threshold + 1 Holdings the epoch is committed; each holder is told (`commit`), now and whenever
               another keeper catches up later

`send_replica` is the one loop that streams a vault file to a keeper; a repair (`ftm.node.custodyrepair`) sends
through it too. Each acknowledged step is recorded before the next, so a crash resumes from the keeper's answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from ftm.config.settings import CustodySettings
from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.keeper import protocol, shares
from ftm.keeper.protocol import PROTOCOL_VERSION, Commit, Deposit, DepositBase, RunWindow, Seal
from ftm.node.custodyproofs import first_challenge_at
from ftm.node.custodyretry import retry_later
from ftm.node.keeperclient import KeeperAddress, KeeperCallError, KeeperClient
from ftm.node.run.scheduler import slot_time
from ftm.node.store.custody import HOLDING_STATES, CustodyEpoch, CustodyStore, Delivery, ReplicaKeeper
from ftm.node.store.residents import ResidentRecord
from ftm.node.store.runtime_settings import RuntimeSettingsStore
from ftm.node.vaultstore import VaultStore

log = logging.getLogger(__name__)

DAY_SECONDS = 86_400
WINDOW_LEAD_SECONDS = 300  # a window opens this long before the slot: clocks of host and keeper differ a little

Progressed = Callable[[int], Awaitable[None]]


async def send_replica(
    client: KeeperClient,
    to: KeeperAddress,
    path: Path,
    epoch: CustodyEpoch,
    start: int,
    progressed: Progressed | None = None,
) -> None:
    """Send the epoch's vault file at `path` to a keeper from byte `start` to its end, a chunk at a time, calling
    `progressed` (if given) with what the keeper acknowledged after each. `KeeperCallError` if the keeper does not
    take it (or the file is shorter than its record); `OSError` if the file cannot be read."""
    sent = start
    while sent < epoch.length:
        chunk = await asyncio.to_thread(_read_chunk, path, sent)
        if not chunk:
            raise KeeperCallError("vault_file_short", "the epoch's vault file is shorter than its record says")
        progress = await client.data(to, epoch.resident_id, epoch.epoch, sent, chunk)
        if progress.received <= sent:
            raise KeeperCallError("no_progress", "the keeper did not take the data")
        sent = progress.received
        if progressed is not None:
            await progressed(sent)


class EpochDelivery:
    def __init__(
        self,
        *,
        db: Database,
        store: CustodyStore,
        runtime_settings: RuntimeSettingsStore,
        vault: VaultStore,
        client: KeeperClient,
        eventlog: EventLog,
        clock: Clock,
        settings: CustodySettings,
        guardians: tuple[bytes, ...],
    ) -> None:
        self._db = db
        self._store = store
        self._runtime_settings = runtime_settings
        self._vault = vault
        self._client = client
        self._eventlog = eventlog
        self._clock = clock
        self._settings = settings
        self._guardians = guardians

    async def deliver(self, resident: ResidentRecord, epoch: CustodyEpoch, due_only: bool) -> CustodyEpoch:
        """Deliver the epoch to each keeper that does not hold it yet, commit it at threshold + 1 holders, and
        tell holders it committed; the epoch as it is afterwards."""
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
        base = await self._base_for(epoch, keeper.keeper_key)
        deposit = Deposit(
            PROTOCOL_VERSION, epoch.resident_id, resident.signing_public_key, epoch.epoch, epoch.threshold,
            delivery.x, epoch.commitments, delivery.sealed_share, await self._window(resident), self._guardians,
            self._settings.guardian_threshold if self._guardians else 0, epoch.length, epoch.root, base,
        )  # fmt: skip
        place = (epoch.resident_id, epoch.epoch, keeper.keeper_key)
        if delivery.state == "pending" and delivery.tries == 0:
            # From here the keeper may hold a share even if we die before hearing back: a pending delivery with no
            # try is one destruction may skip, so count this try first (a failure below records the same count).
            await self._store.update_delivery(*place, self._now(), tries=1)
        progress = await self._client.deposit(to, deposit)
        # Before a first `deposited` nothing was sent: what the keeper holds then, it copied from the base.
        reused = progress.received if base is not None and delivery.state == "pending" else 0
        await self._store.update_delivery(*place, self._now(), state="deposited", sent=progress.received)

        async def progressed(sent: int) -> None:
            await self._store.update_delivery(*place, self._now(), sent=sent)

        path = self._vault.path_for(epoch.resident_id, epoch.epoch)
        await send_replica(self._client, to, path, epoch, progress.received, progressed)
        holding = await self.seal(to, epoch, delivery)
        await self._store.update_delivery(
            *place, self._now(), state="held", holding=holding, tries=0, next_try_at=0, last_error=None
        )
        await self._store.seen(keeper.keeper_key, self._now())
        log.info(
            "keeper holds an epoch",
            extra={
                "resident_id": epoch.resident_id, "epoch": epoch.epoch, "x": delivery.x, "bytes": epoch.length,
                "sent": epoch.length - progress.received, "reused": reused,
            },
        )  # fmt: skip

    async def _base_for(self, epoch: CustodyEpoch, keeper_key: bytes) -> DepositBase | None:
        """The epoch's base, for a keeper that signed a Holding of the base epoch (it may copy the shared bytes
        from its replica); None for any other keeper, which is sent the whole file. A holding marked for repair
        (`sent` below the length: its copy failed a challenge) is no base: its bytes would fail the seal."""
        base = epoch.base
        if base is None:
            return None
        for delivery in await self._store.deliveries(epoch.resident_id, base.epoch):
            if delivery.keeper_key == keeper_key and delivery.state in HOLDING_STATES and delivery.sent >= base.prefix:
                return base
        return None

    async def seal(self, to: KeeperAddress, epoch: CustodyEpoch, delivery: Delivery) -> bytes:
        """Ask the keeper to seal what it was sent; its signed Holding (checked to state what was dealt)."""
        digest = shares.Commitments.decode(epoch.commitments).digest()
        holding = await self._client.seal(
            to,
            Seal(PROTOCOL_VERSION, epoch.resident_id, epoch.epoch),
            x=delivery.x,
            commitments_digest=digest,
            root=epoch.root,
            length=epoch.length,
        )
        return holding.raw

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

    async def _failed(self, delivery: Delivery, code: str) -> None:
        await retry_later(self._store, delivery, code, now=self._now(), retry_seconds=self._settings.retry_seconds)

    def _now(self) -> int:
        return int(self._clock.now())


def _read_chunk(path: Path, offset: int) -> bytes:
    with open(path, "rb") as source:
        source.seek(offset)
        return source.read(protocol.CHUNK_BYTES)
