"""When a resident that deleted itself under threshold custody is gone for good, and the shredding of what this
node kept of it.

The custody worker sends each keeper that may hold anything of the resident a `TombstoneOrder` carrying the
resident's own signed TOMBSTONE event, in a request signed by this node; the keeper destroys its shares and
replicas of every epoch, bars any release for ever (rule R4), and answers a signed `DestroyReceipt`, which is kept.

An epoch dealt k-of-n can be rebuilt only while k of its keepers still hold their shares. Once n - k + 1 of them
have destroyed theirs, at most k - 1 shares remain anywhere, and k - 1 shares say nothing about the secret
(docs/custody.md, "What the scheme does and does not hide"): nobody, the operator or any coalition of keepers
included, can open the epoch again. So the resident is **shredded** once every epoch it had reached that point.
What counts as destroyed is exact: a keeper's signed receipt, or a delivery never made (`skipped`: the keeper never
acknowledged anything of it, and says it holds nothing). A keeper that acknowledged a deposit and answers without
a receipt is asked again; its word alone does not count.

Until then this node keeps its own key records and vault file of the resident (they open nothing without k
keepers, whose replicas hold the same ciphertext, so keeping them changes nothing for anyone's ability to read
it); the resident is `deleted_memorial` in public all along. At that moment, in one transaction, the node deletes
its key records, wipes the sealed shares it kept for delivery, and logs `resident_shredded`; then its vault files
go. Orders to the keepers still missing go on until each has answered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.node.store.residents import ResidentStore
from ftm.node.store.tombstones import HolderFact, TombstoneStore
from ftm.node.vaultstore import VaultStore

log = logging.getLogger(__name__)

GONE_STATES = ("skipped",)  # besides a receipt: never delivered, so nothing of it to destroy


@dataclass(frozen=True, slots=True)
class Tally:
    """Where a deleted resident's destruction stands. `holders`, `receipts` and `needed` are about its last epoch
    (n, the receipts in, n - k + 1), the numbers shown in public; `shredded` is the exact rule over every epoch."""

    holders: int
    receipts: int
    needed: int
    shredded: bool


def tally(facts: Iterable[HolderFact], last_epoch: int) -> Tally:
    by_epoch: dict[int, list[HolderFact]] = {}
    for fact in facts:
        by_epoch.setdefault(fact.epoch, []).append(fact)
    shredded = all(_remaining(holders) < holders[0].threshold for holders in by_epoch.values())
    last = [f for f in by_epoch.get(last_epoch, []) if f.state not in GONE_STATES]
    threshold = by_epoch[last_epoch][0].threshold if last_epoch in by_epoch else 0
    needed = max(0, len(last) - threshold + 1) if last else 0
    return Tally(len(last), sum(f.receipt for f in last), needed, shredded)


def _remaining(holders: list[HolderFact]) -> int:
    """Keepers of one epoch that may still hold their share."""
    return sum(not f.receipt and f.state not in GONE_STATES for f in holders)


class Shredder:
    """Shreds a deleted resident on this node once its tally says it is gone everywhere (idempotent)."""

    def __init__(
        self,
        *,
        db: Database,
        store: TombstoneStore,
        residents: ResidentStore,
        vault: VaultStore,
        eventlog: EventLog,
    ) -> None:
        self._db = db
        self._store = store
        self._residents = residents
        self._vault = vault
        self._eventlog = eventlog

    async def settle(self, resident_id: str, last_epoch: int) -> Tally:
        """Shred the resident here if its keepers' receipts allow it; its tally either way."""
        counted = tally(await self._store.holders(resident_id), last_epoch)
        if not counted.shredded or not await self._store.has_remains(resident_id):
            return counted  # not yet, or done (a crash before its files went leaves them to the start-up sweep)
        async with self._db.transaction("shred_deleted_resident") as tx:
            destroyed = await self._residents.destroy_keys(tx, resident_id)
            await self._store.forget_shares(tx, resident_id)
            if destroyed:
                await self._eventlog.append(
                    tx,
                    "resident_shredded",
                    resident_id,
                    {
                        "holders": counted.holders,
                        "receipts": counted.receipts,
                        "needed": counted.needed,
                        "key_records_destroyed": destroyed,
                    },
                )
        await self._vault.destroy_resident(resident_id)  # after the commit: a crash between leaves it to the sweep
        if destroyed:
            await self._db.truncate_wal()  # the deleted records and wiped shares leave no older copy behind
            log.info(
                "deleted resident shredded: too few keepers can still hold a share",
                extra={"resident_id": resident_id, "receipts": counted.receipts, "needed": counted.needed},
            )
        return counted
