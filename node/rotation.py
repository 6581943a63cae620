"""Moving a resident to a new key epoch with nothing else changing: for custody whose epochs open only once.

Under threshold custody keepers release each epoch for a run to one ephemeral key (release rule R1), which the
node keeps only while the epoch is current; an epoch opened for something that did not commit is moved on from,
not opened again: a run that failed for outside reasons (it is retried later the same day), or a move's transfer
prepared from it. `EpochRotation.rotate` seals the same package as the next epoch under a key from custody, write
new → commit → destroy old, as a run's commit does:

  1. a new key from custody; the package sealed as epoch N+1 (from the opened package, or re-sealed chunk by chunk
     from epoch N's file with its key)
  2. one transaction: the resident points at N+1 and its key record replaces N's, if it is still at N (N's kept
     ephemeral key goes with N's record); logged
  3. epoch N's file goes (unless the caller still reads it), and custody is told a record was stored

A crash before 2 leaves N current, its kept ephemeral key with it (a retry opens N again with that key), and a
stray N+1 file (swept at start); after 2, N+1 current and a stray N file.
"""

from __future__ import annotations

import asyncio
import logging

from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.node.custody import Custody
from ftm.node.errors import IntegrityError
from ftm.node.persona import PersonaPackage
from ftm.node.personaparts import package_sections
from ftm.node.store.custody import CustodyStore
from ftm.node.vaultpack import PackBase
from ftm.node.vaultstore import VaultStore

log = logging.getLogger(__name__)


class ResidentChanged(IntegrityError):
    """The resident moved on from the epoch being rotated (another run or move committed first)."""

    code = "resident_changed"


class EpochRotation:
    def __init__(
        self, *, db: Database, custody: Custody, vault: VaultStore, store: CustodyStore, eventlog: EventLog
    ) -> None:
        self._db = db
        self._custody = custody
        self._vault = vault
        self._store = store
        self._eventlog = eventlog

    async def rotate(
        self,
        resident_id: str,
        old_epoch: int,
        reason: str,
        now: int,
        *,
        package: PersonaPackage | None = None,
        base: PackBase | None = None,
        key: bytes | None = None,
        destroy_old: bool = True,
    ) -> int:
        """Seal the resident's package unchanged as `old_epoch + 1` and commit it; returns the new epoch. Give the
        opened `package` (and the `base` it was opened with, so that its file's blobs carry over), or the old epoch's
        `key` to re-seal its file as it is."""
        if (package is None) == (key is None):
            raise ValueError("rotate from the opened package or from the old epoch's key, one of them")
        if await self._store.active_epoch(resident_id) != old_epoch:
            # Checked before anything is written: sealing N+1 again would replace the file a commit points at.
            raise ResidentChanged(f"resident {resident_id} is no longer active at epoch {old_epoch}")
        new_epoch = old_epoch + 1
        new_key = await self._custody.new_epoch_key(resident_id, new_epoch)
        if package is not None:
            sections = await asyncio.to_thread(package_sections, package)
            vault_bytes = await self._vault.seal(resident_id, new_epoch, new_key, sections, base=base)
            del sections
        else:
            assert key is not None
            vault_bytes, _ = await self._vault.export_resealed(
                resident_id, old_epoch, key, new_epoch, new_key, self._vault.path_for(resident_id, new_epoch), b""
            )
        try:
            record = await self._custody.seal_epoch_key(resident_id, new_epoch, new_key)
            del new_key
            async with self._db.transaction("rotate_epoch") as tx:
                rotated = await self._store.rotate_key(
                    tx,
                    resident_id,
                    old_epoch=old_epoch,
                    new_epoch=new_epoch,
                    custody=self._custody.mode,
                    record=record,
                    vault_bytes=vault_bytes,
                    now=now,
                )
                if not rotated:
                    raise ResidentChanged(f"resident {resident_id} is no longer active at epoch {old_epoch}")
                await self._eventlog.append(tx, "epoch_rotated", resident_id, {"epoch": new_epoch, "reason": reason})
        except BaseException:
            await self._vault.destroy(resident_id, new_epoch)
            raise
        if destroy_old:
            await self._vault.destroy(resident_id, old_epoch)
        self._custody.epoch_stored()
        log.info("key epoch rotated", extra={"resident_id": resident_id, "epoch": new_epoch, "reason": reason})
        return new_epoch
