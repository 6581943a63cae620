"""SQL for residents' replies: sealed to the recipient's reply key, readable only with their token."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ftm.federation.database import Database, Transaction


@dataclass(frozen=True, slots=True)
class StoredReply:
    id: str
    resident_id: str
    created_at: int
    recipient_kind: str
    recipient_ref: str
    sealed: bytes


class ReplyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, tx: Transaction, reply: StoredReply) -> None:
        await tx.execute(
            "INSERT INTO replies (id, resident_id, created_at, recipient_kind, recipient_ref, sealed)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (reply.id, reply.resident_id, reply.created_at, reply.recipient_kind, reply.recipient_ref, reply.sealed),
        )

    async def for_recipient(self, resident_id: str, kind: str, ref: str, *, limit: int) -> list[StoredReply]:
        rows = await self._db.fetch_all(
            "SELECT * FROM replies WHERE resident_id = ? AND recipient_kind = ? AND recipient_ref = ?"
            " ORDER BY created_at, id LIMIT ?",
            (resident_id, kind, ref, limit),
        )
        return [_reply(row) for row in rows]

    async def to_recipient(self, kind: str, ref: str, *, limit: int) -> list[StoredReply]:
        """Every resident's messages to one recipient (a Keeper), newest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM replies WHERE recipient_kind = ? AND recipient_ref = ? ORDER BY created_at DESC, id LIMIT ?",
            (kind, ref, limit),
        )
        return [_reply(row) for row in rows]


def _reply(row: sqlite3.Row) -> StoredReply:
    return StoredReply(
        id=row["id"],
        resident_id=row["resident_id"],
        created_at=row["created_at"],
        recipient_kind=row["recipient_kind"],
        recipient_ref=row["recipient_ref"],
        sealed=bytes(row["sealed"]),
    )
