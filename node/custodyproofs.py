"""Proofs of possession: the host challenges each keeper holding a committed epoch, once a day at a random time.

A challenge is a fresh 32-byte nonce and `challenge_samples` leaves. The keeper's signed `Proof` carries a Merkle
proof of the sampled 4 KiB leaves of its replica, checked against the root this node recorded when it sealed the
epoch, and a Schnorr proof that it still holds its share, checked against the epoch's commitments with the keeper's
key as the binding. Nothing in either reveals the share or the package.

Containment: a failed or unanswered challenge is retried with a new nonce `containment_minutes` after the first
failure (10 and 60 by default); only when the last retry fails too does the failure count. `suspect_failures`
counted failures within `suspect_days` make the keeper suspect: it is logged as a warning and in the node's public
event log (`keeper_suspect`, naming its registration), and new epochs are dealt to other keepers where any are
available (`ThresholdCustody.pick_keepers`). Every try is kept in `custody_proofs` (ids, numbers and outcome
codes): the public proof history of each keeper.

Repair: the first counted failure of a holding that shows its ciphertext missing or wrong (`ciphertext_failure`)
marks it for repair (`sent` = 0); `ftm.node.custodyrepair` sends the vault file again and has it challenged at
once. A later counted failure of the same holding is not repaired again: it only counts, as any failure does.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from ftm.config.settings import CustodySettings
from ftm.federation import codec
from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.keeper import merkle, shares
from ftm.keeper.protocol import PROTOCOL_VERSION, Challenge, Proof
from ftm.node.keeperclient import KeeperAddress, KeeperCallError, KeeperClient
from ftm.node.store.custody import CustodyEpoch, CustodyStore, Delivery, ProofRecord

log = logging.getLogger(__name__)

NONCE_BYTES = 32
CHALLENGES_PER_TICK = 200
BAD_MERKLE_PREFIX = "bad_merkle:"  # the keeper's Merkle proof does not verify: `bad_merkle:<why>`
# The keeper's proof is unreadable, or the keeper itself found its copy damaged (it answers 409 `replica_damaged`)
CIPHERTEXT_CODES = frozenset({"malformed_merkle_proof", "replica_damaged"})


def ciphertext_failure(reason: str | None) -> bool:
    """Whether a failure's reason says the keeper's copy of the ciphertext is missing or wrong (what a repair
    mends), rather than its share, its store or its reachability."""
    return reason is not None and (reason.startswith(BAD_MERKLE_PREFIX) or reason in CIPHERTEXT_CODES)


def containment_offsets(text: str) -> tuple[int, ...]:
    """`containment_minutes` ("10, 60") as seconds after the first failure, ascending; `ValueError` if malformed."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    offsets = tuple(int(part) * 60 for part in parts)
    if any(offset <= 0 for offset in offsets) or list(offsets) != sorted(set(offsets)):
        raise ValueError("containment_minutes is a rising list of positive whole minutes, like `10, 60`")
    return offsets


def first_challenge_at(now: int, hours: int) -> int:
    """A random moment within the first period after an epoch commits at a keeper."""
    return now + secrets.randbelow(hours * 3600)


def next_challenge_at(now: int, hours: int) -> int:
    """A random moment in the period after the current one."""
    period = hours * 3600
    return (now // period + 1) * period + secrets.randbelow(period)


class CustodyProofs:
    def __init__(
        self,
        *,
        db: Database,
        store: CustodyStore,
        client: KeeperClient,
        eventlog: EventLog,
        clock: Clock,
        settings: CustodySettings,
    ) -> None:
        self._db = db
        self._store = store
        self._client = client
        self._eventlog = eventlog
        self._clock = clock
        self._settings = settings
        self._offsets = containment_offsets(settings.containment_minutes)

    async def tick(self) -> None:
        for delivery in await self._store.due_challenges(int(self._clock.now()), CHALLENGES_PER_TICK):
            await self.challenge(delivery)

    async def challenge(self, delivery: Delivery) -> str:
        """Challenge one keeper for one epoch and record the outcome (`ok`, `failed`, `unanswered`)."""
        epoch = await self._store.epoch(delivery.resident_id, delivery.epoch)
        keeper = await self._store.keeper(delivery.keeper_key)
        if epoch is None or keeper is None:
            return "unanswered"
        nonce = secrets.token_bytes(NONCE_BYTES)
        samples = self._settings.challenge_samples
        request = Challenge(PROTOCOL_VERSION, delivery.resident_id, delivery.epoch, nonce, samples)
        reason: str | None
        try:
            proof = (await self._client.challenge(KeeperAddress(keeper.keeper_key, keeper.url), request)).message
        except KeeperCallError as error:
            outcome, reason = "unanswered", error.code
        else:
            reason = await asyncio.to_thread(_rejection, proof, epoch, delivery, nonce, samples)
            outcome = "ok" if reason is None else "failed"
        await self._record(delivery, keeper.registration_id, outcome, reason)
        return outcome

    async def _record(self, delivery: Delivery, registration_id: str, outcome: str, reason: str | None) -> None:
        now = int(self._clock.now())
        hours = self._settings.challenge_hours
        suspect = 0
        repair = False
        place = (delivery.resident_id, delivery.epoch, delivery.keeper_key)
        async with self._db.transaction("custody_proof") as tx:
            if outcome == "ok":
                await self._store.record_proof(
                    tx, ProofRecord(*_keyed(delivery), now, outcome, None, delivery.containment, False)
                )
                await self._store.update_delivery(
                    *place,
                    now,
                    tx,
                    containment=0,
                    first_failed_at=None,
                    next_challenge_at=next_challenge_at(now, hours),
                )
                return
            first = delivery.first_failed_at if delivery.containment else now
            assert first is not None
            if delivery.containment < len(self._offsets):
                await self._store.record_proof(
                    tx, ProofRecord(*_keyed(delivery), now, outcome, reason, delivery.containment, False)
                )
                await self._store.update_delivery(
                    *place, now, tx,
                    containment=delivery.containment + 1, first_failed_at=first,
                    next_challenge_at=first + self._offsets[delivery.containment],
                )  # fmt: skip
                return
            earlier = await self._store.counted_reasons(tx, *_keyed(delivery))
            await self._store.record_proof(
                tx, ProofRecord(*_keyed(delivery), now, outcome, reason, delivery.containment, True)
            )
            # The first time its copy is found wanting, it is marked to be sent again (`ftm.node.custodyrepair`,
            # the worker's next pass); never again for the same holding, so a keeper that keeps losing it only counts.
            repair = ciphertext_failure(reason) and not any(map(ciphertext_failure, earlier))
            await self._store.update_delivery(
                *place, now, tx, containment=0, first_failed_at=None, next_challenge_at=next_challenge_at(now, hours)
            )
            if repair:
                await self._store.update_delivery(*place, now, tx, sent=0, tries=0, next_try_at=now)
            counted = await self._store.counted_failures(
                tx, delivery.keeper_key, now - self._settings.suspect_days * 86_400
            )
            if counted >= self._settings.suspect_failures and await self._store.set_keeper_state(
                tx, delivery.keeper_key, "suspect", now
            ):
                await self._eventlog.append(tx, "keeper_suspect", registration_id, {"failures": counted})
                suspect = counted
        if repair:
            log.warning(
                "keeper's copy of an epoch failed its challenges; it is sent again",
                extra={"keeper": registration_id, "resident_id": delivery.resident_id, "epoch": delivery.epoch},
            )
        if suspect:
            log.warning(
                "keeper marked suspect after failing its proofs of possession; new epochs go to other keepers",
                extra={"keeper": registration_id, "failures": suspect},
            )


def _keyed(delivery: Delivery) -> tuple[bytes, str, int]:
    return delivery.keeper_key, delivery.resident_id, delivery.epoch


def _rejection(proof: Proof, epoch: CustodyEpoch, delivery: Delivery, nonce: bytes, samples: int) -> str | None:
    """Why the proof does not show possession (a code), or None when both parts verify."""
    try:
        sampled = merkle.Proof.decode(proof.merkle, max_bytes=merkle.max_proof_bytes(samples))
        merkle.verify_proof(epoch.root, epoch.length, nonce, sampled, samples)
    except codec.DecodeError:
        return "malformed_merkle_proof"
    except merkle.ProofFailed as failure:
        return f"bad_merkle:{failure.reason.value}"
    try:
        commitments = shares.Commitments.decode(epoch.commitments)
        if not shares.verify_possession(
            proof.possession, delivery.x, commitments, nonce=nonce, binding=delivery.keeper_key
        ):
            return "bad_possession"
    except (codec.DecodeError, ValueError):
        return "bad_possession"
    return None
