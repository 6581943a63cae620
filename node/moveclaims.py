"""The source's dealings with keepers for a move under threshold custody (release rule R2): which keepers hold the
resident, the move claim's terms, submitting the claim both nodes signed to every holder, and vetoing it.

Keepers release an epoch to a move's destination only under a claim the host and the destination both signed,
after a delay (`move_delay_seconds`) that each keeper counts from when it accepted the claim, and never once the
host or a guardian vetoed it. The source submits the claim to the holders of every live epoch of the resident
(again before each attempt: a keeper that accepted it already answers the same `ready_at`, and keepers of epochs
dealt since learn of it), and its move waits until `threshold` holders of the epoch it will send have said they
are ready. The source itself never asks for a share for the move: the destination does. docs/federation-moves.md
§8 is the specification; docs/custody.md ("Release policy") the keepers' rules.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ftm.federation.clock import Clock
from ftm.federation.identity import NodeIdentity
from ftm.keeper.protocol import PROTOCOL_VERSION, MoveClaim, MoveTerms, Veto, claim_id, encode, sign_claim
from ftm.node.keeperclient import KeeperAddress, KeeperCallError, KeeperClient
from ftm.node.movewire import KeeperHolder
from ftm.node.store.custody import CustodyStore
from ftm.node.thresholdcustody import ThresholdRecord

log = logging.getLogger(__name__)

VETOED = "move_vetoed"  # the keepers' code for a claim vetoed for good


@dataclass(frozen=True, slots=True)
class Submitted:
    """What the holders answered to a claim: `ready_at` is when `threshold` holders of the epoch to send release
    under it (None while fewer than that accepted it), `vetoed` whether any holder says it was vetoed."""

    ready_at: int | None
    vetoed: bool
    accepted: int


class MoveClaims:
    def __init__(self, *, identity: NodeIdentity, clock: Clock, client: KeeperClient, store: CustodyStore) -> None:
        self._identity = identity
        self._clock = clock
        self._client = client
        self._store = store

    def terms(
        self, resident_id: str, epoch: int, destination_key: bytes, destination_url: str
    ) -> tuple[bytes, MoveClaim]:
        """The claim's body (`MoveTerms` encoded), and the claim signed by this node as host only."""
        terms = MoveTerms(
            PROTOCOL_VERSION, resident_id, epoch, self._identity.public_key, destination_key, destination_url,
            int(self._clock.now()),
        )  # fmt: skip
        body = encode(terms)
        return body, MoveClaim(body, (sign_claim(self._identity.key, body),))

    async def holders(self, record: ThresholdRecord) -> tuple[KeeperHolder, ...]:
        """The keepers an epoch was dealt to, with the URL each is reached at now."""
        found = []
        for holder in record.holders:
            keeper = await self._store.keeper(holder.keeper_key)
            if keeper is not None:
                found.append(KeeperHolder(keeper.keeper_key, keeper.url))
        return tuple(found)

    async def _live_keepers(self, resident_id: str) -> list[KeeperAddress]:
        """Every keeper that holds (or is being given) a live epoch of the resident."""
        keys: dict[bytes, None] = {}
        for epoch in await self._store.epochs_of(resident_id):
            if epoch.state != "destroyed":
                for delivery in await self._store.deliveries(resident_id, epoch.epoch):
                    keys.setdefault(delivery.keeper_key)
        addresses = []
        for key in keys:
            keeper = await self._store.keeper(key)
            if keeper is not None:
                addresses.append(KeeperAddress(keeper.keeper_key, keeper.url))
        return addresses

    async def submit(self, claim: MoveClaim, resident_id: str, record: ThresholdRecord) -> Submitted:
        """Submit the claim to every live holder; when `record.threshold` holders of `record`'s epoch are ready."""
        keepers = await self._live_keepers(resident_id)
        answers = await asyncio.gather(*(self._client.move(k, claim) for k in keepers), return_exceptions=True)
        ready: dict[bytes, int] = {}
        vetoed = False
        for keeper, answer in zip(keepers, answers, strict=True):
            if isinstance(answer, KeeperCallError):
                vetoed = vetoed or answer.code == VETOED
                log.info("keeper did not take the move claim", extra={"keeper": keeper.url, "code": answer.code})
            elif isinstance(answer, BaseException):
                raise answer
            elif answer.resident_id == resident_id:
                ready[keeper.key] = answer.at
        times = sorted(ready[h.keeper_key] for h in record.holders if h.keeper_key in ready)
        at = times[record.threshold - 1] if len(times) >= record.threshold else None
        return Submitted(at, vetoed, len(times))

    async def veto(self, claim: MoveClaim, resident_id: str) -> int:
        """Veto the claim at every live holder, as the resident's host; how many recorded it (or had already)."""
        veto = Veto(PROTOCOL_VERSION, claim_id(claim.body))
        keepers = await self._live_keepers(resident_id)
        answers = await asyncio.gather(*(self._client.veto(k, veto) for k in keepers), return_exceptions=True)
        recorded = 0
        for keeper, answer in zip(keepers, answers, strict=True):
            if isinstance(answer, KeeperCallError):
                recorded += answer.code == VETOED
                log.info("keeper did not record the veto", extra={"keeper": keeper.url, "code": answer.code})
            elif isinstance(answer, BaseException):
                raise answer
            else:
                recorded += 1
        return recorded
