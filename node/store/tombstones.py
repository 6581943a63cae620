"""SQL for the end of a resident that deleted itself under threshold custody: who of its keepers may still hold a
share of which epoch (read by the custody worker to decide when to shred, and by the transparency page), and the
shredding of what this node kept of it. The rule itself is `ftm.node.tombstones`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ftm.federation.database import Database, Transaction


@dataclass(frozen=True, slots=True)
class HolderFact:
    """One keeper an epoch of the resident was dealt to, and where its destruction stands."""

    epoch: int
    threshold: int  # k of that epoch
    keeper_key: bytes
    state: str  # the delivery's state (`ftm.node.store.custody.DELIVERY_STATES`)
    receipt: bool  # its signed receipt is kept


@dataclass(frozen=True, slots=True)
class DeletedResident:
    """A memorial resident with custody epochs: its last epoch, when it ended, and whether this node still keeps
    any key record of it (threshold records wait for the keepers' receipts)."""

    resident_id: str
    display_name: str
    last_epoch: int
    deleted_at: int | None
    keys_kept: bool


class TombstoneStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def holders(self, resident_id: str) -> list[HolderFact]:
        """Every delivery of every custody epoch of the resident."""
        return (await self.holders_of([resident_id])).get(resident_id, [])

    async def holders_of(self, resident_ids: Sequence[str]) -> dict[str, list[HolderFact]]:
        if not resident_ids:
            return {}
        marks = ", ".join("?" for _ in resident_ids)
        rows = await self._db.fetch_all(
            "SELECT d.resident_id, d.epoch, e.threshold, d.keeper_key, d.state, d.receipt IS NOT NULL"
            " FROM custody_deliveries AS d JOIN custody_epochs AS e USING (resident_id, epoch)"
            f" WHERE d.resident_id IN ({marks}) ORDER BY d.resident_id, d.epoch, d.x",
            list(resident_ids),
        )
        facts: dict[str, list[HolderFact]] = {}
        for row in rows:
            fact = HolderFact(int(row[1]), int(row[2]), bytes(row[3]), row[4], bool(row[5]))
            facts.setdefault(row[0], []).append(fact)
        return facts

    async def deleted(self, limit: int) -> list[DeletedResident]:
        """Memorial residents that had custody epochs, the most recently ended first."""
        rows = await self._db.fetch_all(
            "SELECT id, display_name, key_epoch, last_run_at,"
            " EXISTS (SELECT 1 FROM resident_keys WHERE resident_keys.resident_id = residents.id)"
            " FROM residents WHERE status = 'deleted_memorial'"
            " AND EXISTS (SELECT 1 FROM custody_epochs WHERE custody_epochs.resident_id = residents.id)"
            " ORDER BY last_run_at DESC, id LIMIT ?",
            (limit,),
        )
        return [DeletedResident(row[0], row[1], int(row[2]), row[3], bool(row[4])) for row in rows]

    async def has_remains(self, resident_id: str) -> bool:
        """Whether this node still keeps a key record of the resident, or a sealed share it delivered."""
        value = await self._db.fetch_value(
            "SELECT EXISTS (SELECT 1 FROM resident_keys WHERE resident_id = ?)"
            " OR EXISTS (SELECT 1 FROM custody_deliveries WHERE resident_id = ? AND length(sealed_share) > 0)",
            (resident_id, resident_id),
        )
        return bool(value)

    async def forget_shares(self, tx: Transaction, resident_id: str) -> int:
        """Wipe the sealed shares this node kept to deliver the resident's epochs (sealed to their keepers, they
        open nothing here; gone, a keeper key that leaks later cannot open them either)."""
        return await tx.execute(
            "UPDATE custody_deliveries SET sealed_share = X'' WHERE resident_id = ? AND length(sealed_share) > 0",
            (resident_id,),
        )
