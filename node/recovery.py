"""Recovery at start: make the vault agree with the database after any crash.

Every write path puts new vault files down before the database commit that refers to them, and removes old ones
only after it (write new → commit → destroy old). So after a crash the database is the truth, and anything in
the vault it does not point at is garbage: files of intakes that never committed, the next epoch of a run that
never committed, the previous epoch of a run that did, and the files of residents who deleted themselves.
Runs before the node serves anything, so no write is in progress.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ftm.node.store.residents import ResidentStore
from ftm.node.vaultstore import VaultStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepReport:
    unknown_residents: int
    stale_epochs: int
    memorial_files: int


async def sweep_vault(residents: ResidentStore, vault: VaultStore) -> SweepReport:
    epochs = await residents.current_epochs()
    unknown = await vault.remove_orphans(set(epochs))
    stale = memorial = 0
    for resident_id in vault.resident_ids() & set(epochs):
        current = epochs[resident_id]
        if current is None:
            await vault.destroy_resident(resident_id)
            memorial += 1
            continue
        for epoch in vault.epochs(resident_id):
            if epoch != current:
                await vault.destroy(resident_id, epoch)
                stale += 1
    report = SweepReport(unknown, stale, memorial)
    if unknown or stale or memorial:
        log.warning(
            "vault recovered after an interrupted write",
            extra={"unknown_residents": unknown, "stale_epochs": stale, "memorial_files": memorial},
        )
    return report
