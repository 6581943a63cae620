"""SQL for the public custody report (`ftm.node.transparency.CustodyReporter`): each enrolled keeper node with its
Keeper's public name, the backups it holds, and its proof history. Reads only; ids, states and numbers only.

The page and the API make the report again every few seconds on a busy node, so each query reads through an index
that holds what it needs (migration 0016; tests/node/test_transparency.py pins the plans): the week's proof counts
step over index entries, not rows, and a keeper's newest holdings are read from the end of their index.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftm.federation.database import Database

HELD_STATES = ("deposited", "held", "committed")  # a delivery whose keeper holds (some of) the epoch
# HELD_STATES in SQL, spelt as the WHERE of the partial index custody_deliveries_held (migration 0016), which
# SQLite uses only for terms that match it word for word (so not for bound parameters).
_HELD = "d.state IN (" + ", ".join(f"'{state}'" for state in HELD_STATES) + ")"

# A keeper's newest holdings. Deliveries are written with their epoch (`CustodyStore.add_epoch`) and never
# deleted, so their rowids run in the order the epochs were made (a new rowid is one more than the largest); the
# partial index of held deliveries by keeper is in rowid order, so the newest are read from its end, and no more.
_HOLDINGS = (
    "SELECT d.keeper_key, d.resident_id, r.display_name, r.status, d.epoch, d.state, e.state, e.length"
    f" FROM (SELECT d.rowid AS n FROM custody_deliveries AS d WHERE d.keeper_key = ? AND {_HELD}"
    " ORDER BY d.rowid DESC LIMIT ?) AS newest"
    " JOIN custody_deliveries AS d ON d.rowid = newest.n JOIN custody_epochs AS e USING (resident_id, epoch)"
    " LEFT JOIN residents AS r ON r.id = d.resident_id ORDER BY newest.n DESC"
)
_HOLDING_TOTALS = (
    "SELECT count(*), coalesce(sum(e.length), 0)"
    " FROM custody_deliveries AS d JOIN custody_epochs AS e USING (resident_id, epoch)"
    f" WHERE d.keeper_key = ? AND {_HELD}"
)
# Every challenge since `since`, counted over the (keeper, time) index without reading rows, and the failures from
# their partial index, whose WHERE this repeats word for word: passed = all - failures (outcome is never NULL).
_PROOF_COUNTS = (
    "SELECT (SELECT count(*) FROM custody_proofs WHERE keeper_key = ? AND at >= ?),"
    " coalesce(sum(counted = 0), 0), coalesce(sum(counted = 1), 0)"
    " FROM custody_proofs WHERE keeper_key = ? AND at >= ? AND outcome != 'ok'"
)


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
        rows = await self._db.fetch_all(_HOLDINGS, (keeper_key, limit))
        return [
            HoldingRow(bytes(row[0]), row[1], row[2], row[3], int(row[4]), row[5], row[6], int(row[7])) for row in rows
        ]

    async def holding_totals(self, keeper_key: bytes) -> tuple[int, int]:
        """How many epochs one keeper holds, and their replicas' bytes."""
        row = await self._db.fetch_one(_HOLDING_TOTALS, (keeper_key,))
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
        row = await self._db.fetch_one(_PROOF_COUNTS, (keeper_key, since, keeper_key, since))
        if row is None:
            return ProofCounts(0, 0, 0)
        every, contained, failed = int(row[0]), int(row[1]), int(row[2])
        return ProofCounts(every - contained - failed, contained, failed)
