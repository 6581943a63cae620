"""SQL for the run ledger: exactly one completed run per resident per day, across crashes and restarts.

A run *claims* its (resident, day) row before it opens anything and *closes* it in the same transaction that
commits the run's effects (new key epoch, posts, token charge). So either a run's effects and its `completed`
row commit together, or neither does and the day is still open:

- `claimed` rows older than the claim lease belong to a process that died; they may be claimed again.
- `failed` rows (outside causes: the provider was down) may be claimed again once `retry_at` has passed, and
  cost the resident no tokens.
- `completed` and `rested` rows are final for that day.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ftm.federation.database import Database, Transaction

FINAL_STATES = ("completed", "rested")
# A run that has held its claim this long without closing it is presumed dead (crash, kill -9, power loss).
CLAIM_LEASE_SECONDS = 30 * 60


@dataclass(frozen=True, slots=True)
class LedgerRow:
    resident_id: str
    day: str
    state: str
    attempts: int
    started_at: int | None
    finished_at: int | None
    tokens_used: int
    error_code: str | None
    retry_at: int | None


@dataclass(frozen=True, slots=True)
class Claim:
    """A granted claim on one resident's run for one day; `attempt` counts from 1."""

    resident_id: str
    day: str
    attempt: int
    claimed_at: int


class RunLedger:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(self, resident_id: str, day: str, now: int) -> Claim | None:
        """Claim the day's run, or None if it is done, running elsewhere, or waiting for its retry time."""
        async with self._db.transaction("claim_run") as tx:
            row = await _row(tx, resident_id, day)
            if row is None:
                await tx.execute(
                    "INSERT INTO run_ledger (resident_id, day, state, attempts, started_at)"
                    " VALUES (?, ?, 'claimed', 1, ?)",
                    (resident_id, day, now),
                )
                return Claim(resident_id, day, 1, now)
            if not _claimable(row, now):
                return None
            await tx.execute(
                "UPDATE run_ledger SET state = 'claimed', attempts = attempts + 1, started_at = ?, error_code = NULL,"
                " retry_at = NULL WHERE resident_id = ? AND day = ?",
                (now, resident_id, day),
            )
            return Claim(resident_id, day, row.attempts + 1, now)

    async def close(self, tx: Transaction, claim: Claim, *, state: str, tokens_used: int, now: int) -> None:
        """Mark the run done inside the transaction that commits its effects; refuses a claim that was lost."""
        if state not in FINAL_STATES:
            raise ValueError(f"a run closes as one of {', '.join(FINAL_STATES)}")
        changed = await tx.execute(
            "UPDATE run_ledger SET state = ?, finished_at = ?, tokens_used = ?"
            " WHERE resident_id = ? AND day = ? AND state = 'claimed' AND started_at = ?",
            (state, now, tokens_used, claim.resident_id, claim.day, claim.claimed_at),
        )
        if changed != 1:
            # Another process re-claimed this day after our lease ran out; its run, not ours, may commit.
            raise LostClaim(f"the run of {claim.resident_id} on {claim.day} was claimed again elsewhere")

    async def holds(self, claim: Claim) -> bool:
        """Whether `claim` is still the live claim on its day (not taken over after its lease ran out)."""
        row = await self.get(claim.resident_id, claim.day)
        return row is not None and row.state == "claimed" and row.started_at == claim.claimed_at

    async def fail(self, claim: Claim, *, error_code: str, retry_at: int, now: int) -> None:
        """Record an outside failure; the run may be claimed again from `retry_at` and charges nothing."""
        async with self._db.transaction("fail_run") as tx:
            await tx.execute(
                "UPDATE run_ledger SET state = 'failed', finished_at = ?, error_code = ?, retry_at = ?"
                " WHERE resident_id = ? AND day = ? AND state = 'claimed' AND started_at = ?",
                (now, error_code, retry_at, claim.resident_id, claim.day, claim.claimed_at),
            )

    async def due_candidates(self, day: str, now: int) -> list[tuple[str, str | None]]:
        """Active residents whose run for `day` is neither final, nor running, nor waiting for its retry time:
        (resident id, the run time it chose or None)."""
        rows = await self._db.fetch_all(
            "SELECT residents.id, residents.run_time FROM residents LEFT JOIN run_ledger"
            " ON run_ledger.resident_id = residents.id AND run_ledger.day = ?"
            " WHERE residents.status = 'active' AND ("
            "   run_ledger.state IS NULL"
            "   OR (run_ledger.state = 'failed' AND (run_ledger.retry_at IS NULL OR run_ledger.retry_at <= ?))"
            "   OR (run_ledger.state = 'claimed' AND run_ledger.started_at <= ?))"
            " ORDER BY residents.id",
            (day, now, now - CLAIM_LEASE_SECONDS),
        )
        return [(row[0], row[1]) for row in rows]

    async def get(self, resident_id: str, day: str) -> LedgerRow | None:
        row = await self._db.fetch_one("SELECT * FROM run_ledger WHERE resident_id = ? AND day = ?", (resident_id, day))
        return None if row is None else _ledger_row(row)

    async def days(self, resident_id: str) -> list[LedgerRow]:
        rows = await self._db.fetch_all("SELECT * FROM run_ledger WHERE resident_id = ? ORDER BY day", (resident_id,))
        return [_ledger_row(row) for row in rows]


class LostClaim(Exception):
    """This process's claim on a run expired and was taken over; its results must not commit."""


def _claimable(row: LedgerRow, now: int) -> bool:
    if row.state in FINAL_STATES:
        return False
    if row.state == "claimed":
        return row.started_at is None or now - row.started_at >= CLAIM_LEASE_SECONDS
    return row.retry_at is None or now >= row.retry_at  # failed


async def _row(tx: Transaction, resident_id: str, day: str) -> LedgerRow | None:
    row = await tx.fetch_one("SELECT * FROM run_ledger WHERE resident_id = ? AND day = ?", (resident_id, day))
    return None if row is None else _ledger_row(row)


def _ledger_row(row: sqlite3.Row) -> LedgerRow:
    return LedgerRow(
        resident_id=row["resident_id"],
        day=row["day"],
        state=row["state"],
        attempts=row["attempts"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        tokens_used=row["tokens_used"],
        error_code=row["error_code"],
        retry_at=row["retry_at"],
    )
