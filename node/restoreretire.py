"""After a disaster restore: the displaced host's copies of each restored resident, destroyed at every keeper that
holds them (docs/custody.md, "Restore", step 7).

The old host cannot order its own epochs destroyed (it is gone), so this node does, as the new host the guardians'
claim names: a `DestroyOrder` (`moved`) signed by this node for every epoch the keepers list for the old host,
answered by a signed `DestroyReceipt`, which the node keeps as the keeper sent it (`displaced_receipts`, in the
`displaced_receipts` table). A keeper accepts it under the claim (`ftm.keeper.policy.decide_displaced_destroy`: the
claim past its wait and not cancelled), whether or not this node dealt it the resident's next epoch. It is done only
once the resident's epoch here is **committed** at this node's keepers (threshold custody, k + 1 holdings): before
that, the old copies may still be the only ones off this node. Under local custody it is never done for the same
reason: the old copies are the resident's only backups at keepers, and they stay sealed.

Once the keepers that got this node's epoch registered it as the resident's host (its deposit), and the old host's
epochs are destroyed everywhere, the old host, should it come back, can have nothing released for a run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from ftm.keeper.protocol import PROTOCOL_VERSION, DestroyOrder, DestroyReason, DestroyReceipt
from ftm.node.keeperclient import KeeperAddress, KeeperCallError, KeeperClient, Signed
from ftm.node.restorefetch import EpochCopy
from ftm.node.store.custody import CustodyStore
from ftm.node.store.restores import DisplacedReceipt

log = logging.getLogger(__name__)


@dataclass
class Retirement:
    """What became of one resident's old copies: `receipts` (the keepers' signed receipts, as received), the
    keepers that refused (url and epoch → code), or `waiting` when its epoch here is not committed yet."""

    resident_id: str
    waiting: bool = False
    receipts: list[Signed[DestroyReceipt]] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def displaced_receipts(done: Retirement, now: int) -> list[DisplacedReceipt]:
    """The receipts of a retirement, as the node keeps them (`RestoreStore.keep_displaced_receipts`)."""
    return [
        DisplacedReceipt(done.resident_id, r.message.epoch, r.message.keeper_key, r.raw, now) for r in done.receipts
    ]


async def committed_here(custody: CustodyStore, resident_id: str, key_epoch: int) -> bool:
    """Whether the resident's current epoch here is committed at this node's keepers."""
    return any(e.epoch == key_epoch and e.state == "committed" for e in await custody.epochs_of(resident_id))


async def retire_displaced(client: KeeperClient, resident_id: str, copies: Sequence[EpochCopy], now: int) -> Retirement:
    """Order every holder of the old host's epochs of the resident (`copies`, from `survey`) to destroy them,
    signed as this node (`client`), the claim's new host."""
    done = Retirement(resident_id)
    orders = [
        (keeper, DestroyOrder(PROTOCOL_VERSION, resident_id, copy.epoch, DestroyReason.MOVED, client.host_key, now))
        for copy in copies
        for keeper in copy.holders
    ]
    answers = await asyncio.gather(*(client.destroy(k, order) for k, order in orders), return_exceptions=True)
    for (keeper, order), answer in zip(orders, answers, strict=True):
        if isinstance(answer, KeeperCallError):
            done.refused[_place(keeper, order.epoch)] = answer.code
        elif isinstance(answer, BaseException):
            raise answer
        else:
            done.receipts.append(answer)
    log.info(
        "old host's copies destroyed",
        extra={"resident_id": resident_id, "receipts": len(done.receipts), "refused": len(done.refused)},
    )
    return done


def _place(keeper: KeeperAddress, epoch: int) -> str:
    return f"{keeper.url} epoch {epoch}"
