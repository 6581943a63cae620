"""SQL for copies of residents made for their Keepers (`export_self`): ids, sizes, times and file names only."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ftm.federation.database import Database, Transaction

READY = "ready"
DOWNLOADED = "downloaded"


@dataclass(frozen=True, slots=True)
class ExportRecord:
    id: str
    resident_id: str
    keeper_id: str
    state: str  # READY | DOWNLOADED
    file: str | None  # the sealed file's name under the exports folder, while ready
    bytes: int
    created_at: int
    expires_at: int
    downloaded_at: int | None = None


class ExportStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, tx: Transaction, export: ExportRecord) -> None:
        await tx.execute(
            "INSERT INTO keeper_exports (id, resident_id, keeper_id, state, file, bytes, created_at, expires_at,"
            " downloaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                export.id,
                export.resident_id,
                export.keeper_id,
                export.state,
                export.file,
                export.bytes,
                export.created_at,
                export.expires_at,
                export.downloaded_at,
            ),
        )

    async def withdraw(self, tx: Transaction, resident_id: str, keeper_id: str | None) -> list[ExportRecord]:
        """Delete the resident's copies not yet downloaded (for one Keeper, or for all); returns what went."""
        where = "resident_id = ? AND state = 'ready'"
        params: tuple[str, ...] = (resident_id,)
        if keeper_id is not None:
            where += " AND keeper_id = ?"
            params += (keeper_id,)
        rows = await tx.fetch_all(f"SELECT * FROM keeper_exports WHERE {where}", params)
        await tx.execute(f"DELETE FROM keeper_exports WHERE {where}", params)
        return [_export(row) for row in rows]

    async def expire(self, tx: Transaction, now: int) -> list[ExportRecord]:
        """Delete every copy not downloaded by its expiry; returns what went."""
        rows = await tx.fetch_all("SELECT * FROM keeper_exports WHERE state = 'ready' AND expires_at <= ?", (now,))
        await tx.execute("DELETE FROM keeper_exports WHERE state = 'ready' AND expires_at <= ?", (now,))
        return [_export(row) for row in rows]

    async def left(self, tx: Transaction) -> list[ExportRecord]:
        """Delete every copy not yet downloaded whose resident no longer lives here (moved away, or gone); returns
        what went."""
        where = (
            "state = 'ready' AND resident_id NOT IN"
            " (SELECT id FROM residents WHERE status IN ('active', 'in_keeper_custody'))"
        )
        rows = await tx.fetch_all("SELECT * FROM keeper_exports WHERE " + where)
        await tx.execute("DELETE FROM keeper_exports WHERE " + where)
        return [_export(row) for row in rows]

    async def due(self, now: int) -> bool:
        """Whether `expire` or `left` would delete anything (a read, so most calls need no write transaction)."""
        value = await self._db.fetch_value(
            "SELECT 1 FROM keeper_exports WHERE state = 'ready' AND (expires_at <= ? OR resident_id NOT IN"
            " (SELECT id FROM residents WHERE status IN ('active', 'in_keeper_custody'))) LIMIT 1",
            (now,),
        )
        return value is not None

    async def mark_downloaded(self, tx: Transaction, export_id: str, keeper_id: str, now: int) -> bool:
        """Ready → downloaded (only a ready copy of this Keeper's: a withdrawn one stays withdrawn)."""
        changed = await tx.execute(
            "UPDATE keeper_exports SET state = 'downloaded', file = NULL, downloaded_at = ?"
            " WHERE id = ? AND keeper_id = ? AND state = 'ready'",
            (now, export_id, keeper_id),
        )
        return changed == 1

    async def get(self, export_id: str) -> ExportRecord | None:
        row = await self._db.fetch_one("SELECT * FROM keeper_exports WHERE id = ?", (export_id,))
        return None if row is None else _export(row)

    async def to_keeper(self, keeper_id: str, *, limit: int) -> list[ExportRecord]:
        """Every copy made for one Keeper, newest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM keeper_exports WHERE keeper_id = ? ORDER BY created_at DESC, id LIMIT ?", (keeper_id, limit)
        )
        return [_export(row) for row in rows]

    async def between(self, resident_id: str, keeper_id: str) -> list[ExportRecord]:
        """The copies one resident made for one Keeper, oldest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM keeper_exports WHERE resident_id = ? AND keeper_id = ? ORDER BY created_at, id",
            (resident_id, keeper_id),
        )
        return [_export(row) for row in rows]

    async def ready_files(self) -> set[str]:
        rows = await self._db.fetch_all("SELECT file FROM keeper_exports WHERE state = 'ready' AND file IS NOT NULL")
        return {row["file"] for row in rows}


def _export(row: sqlite3.Row) -> ExportRecord:
    return ExportRecord(
        id=row["id"],
        resident_id=row["resident_id"],
        keeper_id=row["keeper_id"],
        state=row["state"],
        file=row["file"],
        bytes=row["bytes"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        downloaded_at=row["downloaded_at"],
    )
