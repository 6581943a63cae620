"""A host repairing the keeper's copy of an epoch it holds sealed (docs/custody.md, "Repair").

A host whose possession challenges found this keeper's replica damaged sends the epoch's vault file again, with
the requests of a first delivery: `data` from offset 0 (to a sealed epoch it goes to the repair file,
`Replicas.repair_append`, never into the replica), then `seal`. At that `seal`, `finish_repair` checks the repair
file against the root deposited with the epoch: only if it matches does it replace the replica and its level
file (logged `repair_held`); otherwise it is thrown away, the replica stays exactly as it was, and the host is
refused `wrong_root` (logged `repair_refused`, counted as a refusal). The caller holds the resident's lock.
"""

from __future__ import annotations

from ftm.keeper.errors import KeeperError
from ftm.keeper.holdingparts import HoldingParts
from ftm.keeper.journal import key_id
from ftm.keeper.store import DepositRecord


async def finish_repair(parts: HoldingParts, signer: bytes, record: DepositRecord) -> None:
    """Take in a repair of `record`'s sealed replica, if one was sent; `KeeperError` if it is incomplete (409
    `incomplete`) or not the deposited bytes (409 `wrong_root`). Nothing happens when no repair was sent."""
    rid, epoch = record.resident_id, record.epoch
    received = await parts.replicas.repair_size(signer, rid, epoch)
    if received is None:
        return
    if received != record.length:
        raise KeeperError(409, "incomplete", f"{received} of {record.length} bytes of the repair are held")
    repaired = await parts.replicas.finish_repair(signer, rid, epoch, record.root, record.length)
    now = parts.now()
    async with parts.db.transaction("keeper.repair") as tx:
        await parts.journal.contact(tx, signer, now)
        if repaired:
            await parts.journal.record(tx, "repair_held", rid, host=key_id(signer), epoch=epoch, length=record.length)
        else:
            await parts.journal.refusal(
                tx, "repair_refused", rid, "wrong_root", signer, host=key_id(signer), epoch=epoch
            )
    if not repaired:
        raise KeeperError(
            409, "wrong_root", "the repair's Merkle root is not the deposited one; the copy held is unchanged"
        )
