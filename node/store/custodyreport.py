"""SQL for the public custody report (`ftm.node.transparency.CustodyReporter`): each enrolled keeper node with its
Keeper's public name, the backups it holds, and its proof history. Reads only; ids, states and numbers only.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftm.federation.database import Database

HELD_STATES = ("deposited", "held", "committed")  # a delivery whose keeper holds (some of) the epoch


@dataclass(frozen=True, slots=True)
class KeeperRow:
    keeper_key: bytes
    url: str
    registration_id: str
    state: str
    enrolled_at: int
    last_seen_at: int | None
    name: str | None  # the Keeper's name while the registration is vetted (shown on /keepers then too)


@dataclass(frozen=True, slots=True)
class HoldingRow:
    keeper_key: bytes
    resident_id: str
    resident_name: str | None  # None: the resident is not (or no longer) in this node's table
    resident_status: str | None
    epoch: int
    delivery_state: str
    epoch_state: str
    length: int


@dataclass(frozen=True, slots=True)
class ProofRow:
    keeper_key: bytes
    resident_id: str
    resident_name: str | None
    epoch: int
    at: int
    outcome: str  # ok | failed | unanswered
    reason: str | None
    try_number: int
    counted: bool


@dataclass(frozen=True, slots=True)
class ProofCounts:
    passed: int
    contained: int  # failures retried under containment (not counted)
    failed: int  # counted failures


class CustodyReportStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def keepers(self) -> list[KeeperRow]:
        """Every enrolled keeper node: active, then suspect, then retired; oldest enrolment first in each."""
        rows = await self._db.fetch_all(
            "SELECT r.keeper_key, r.url, r.registration_id, r.state, r.enrolled_at, r.last_seen_at,"
            " CASE WHEN k.status = 'vetted' THEN k.name END"
            " FROM replica_keepers AS r LEFT JOIN keepers AS k ON k.id = r.registration_id"
            " ORDER BY CASE r.state WHEN 'active' THEN 0 WHEN 'suspect' THEN 1 ELSE 2 END, r.enrolled_at, r.keeper_key"
        )
        return [KeeperRow(bytes(row[0]), row[1], row[2], row[3], row[4], row[5], row[6]) for row in rows]

    async def holdings(self, keeper_key: bytes, limit: int) -> list[HoldingRow]:
        """What one keeper holds, newest epochs first."""
        marks = ", ".join("?" for _ in HELD_STATES)
        rows = await self._db.fetch_all(
            "SELECT d.keeper_key, d.resident_id, r.display_name, r.status, d.epoch, d.state, e.state, e.length"
            " FROM custody_deliveries AS d JOIN custody_epochs AS e USING (resident_id, epoch)"
            " LEFT JOIN residents AS r ON r.id = d.resident_id"
            f" WHERE d.keeper_key = ? AND d.state IN ({marks})"
            " ORDER BY e.created_at DESC, d.resident_id, d.epoch DESC LIMIT ?",
            (keeper_key, *HELD_STATES, limit),
        )
        return [
            HoldingRow(bytes(row[0]), row[1], row[2], row[3], int(row[4]), row[5], row[6], int(row[7])) for row in rows
        ]

    async def holding_totals(self, keeper_key: bytes) -> tuple[int, int]:
        """How many epochs one keeper holds, and their replicas' bytes."""
        marks = ", ".join("?" for _ in HELD_STATES)
        row = await self._db.fetch_one(
            "SELECT count(*), coalesce(sum(e.length), 0)"
            " FROM custody_deliveries AS d JOIN custody_epochs AS e USING (resident_id, epoch)"
            f" WHERE d.keeper_key = ? AND d.state IN ({marks})",
            (keeper_key, *HELD_STATES),
        )
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    async def recent_proofs(self, keeper_key: bytes, limit: int) -> list[ProofRow]:
        """One keeper's latest challenges and retries, newest first."""
        rows = await self._db.fetch_all(
            "SELECT p.keeper_key, p.resident_id, r.display_name, p.epoch, p.at, p.outcome, p.reason, p.try_number,"
            " p.counted FROM custody_proofs AS p LEFT JOIN residents AS r ON r.id = p.resident_id"
            " WHERE p.keeper_key = ? ORDER BY p.at DESC, p.id DESC LIMIT ?",
            (keeper_key, limit),
        )
        return [
            ProofRow(bytes(row[0]), row[1], row[2], int(row[3]), int(row[4]), row[5], row[6], int(row[7]), bool(row[8]))
            for row in rows
        ]

    async def proof_counts(self, keeper_key: bytes, since: int) -> ProofCounts:
        """One keeper's challenges since `since`: passed, contained (failed, to be retried), counted failures."""
        row = await self._db.fetch_one(
            "SELECT coalesce(sum(outcome = 'ok'), 0), coalesce(sum(outcome != 'ok' AND counted = 0), 0),"
            " coalesce(sum(outcome != 'ok' AND counted = 1), 0) FROM custody_proofs WHERE keeper_key = ? AND at >= ?",
            (keeper_key, since),
        )
        return ProofCounts(0, 0, 0) if row is None else ProofCounts(int(row[0]), int(row[1]), int(row[2]))
