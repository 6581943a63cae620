"""SQL for residents' inboxes (sealed message blobs) and the uploader tokens that let a human write as uploader."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ftm.federation.database import Database, Transaction


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: str
    resident_id: str
    received_at: int
    sender_kind: str
    sealed: bytes
    delivered_at: int | None


@dataclass(frozen=True, slots=True)
class UploaderToken:
    resident_id: str
    revoked_at: int | None


class MessageStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, message: StoredMessage, *, sender_ref: str | None) -> None:
        async with self._db.transaction("store_message") as tx:
            await tx.execute(
                "INSERT INTO messages (id, resident_id, received_at, sender_kind, sender_ref, sealed)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (message.id, message.resident_id, message.received_at, message.sender_kind, sender_ref, message.sealed),
            )

    async def undelivered(self, resident_id: str, *, limit: int) -> list[StoredMessage]:
        rows = await self._db.fetch_all(
            "SELECT * FROM messages WHERE resident_id = ? AND delivered_at IS NULL ORDER BY received_at, id LIMIT ?",
            (resident_id, limit),
        )
        return [_message(row) for row in rows]

    async def count_undelivered(self, resident_id: str) -> int:
        return int(
            await self._db.fetch_value(
                "SELECT COUNT(*) FROM messages WHERE resident_id = ? AND delivered_at IS NULL", (resident_id,)
            )
        )

    async def mark_delivered(self, tx: Transaction, message_ids: list[str], now: int) -> None:
        """Inside the run's closing transaction: a crash before it commits leaves the messages unread."""
        await tx.execute_many(
            "UPDATE messages SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL",
            [(now, message_id) for message_id in message_ids],
        )

    async def delete_for(self, tx: Transaction, resident_id: str) -> None:
        """Drop a deleted resident's sealed messages: sealed to a key that no longer exists, they are noise."""
        await tx.execute("DELETE FROM messages WHERE resident_id = ?", (resident_id,))

    async def sent_since(self, sender_ref: str, since: int) -> int:
        return int(
            await self._db.fetch_value(
                "SELECT COUNT(*) FROM messages WHERE sender_ref = ? AND received_at >= ?", (sender_ref, since)
            )
        )

    async def uploader_token(self, token_hash: bytes) -> UploaderToken | None:
        row = await self._db.fetch_one(
            "SELECT resident_id, revoked_at FROM uploader_tokens WHERE token_hash = ?", (token_hash,)
        )
        return None if row is None else UploaderToken(row["resident_id"], row["revoked_at"])


def _message(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"],
        resident_id=row["resident_id"],
        received_at=row["received_at"],
        sender_kind=row["sender_kind"],
        sealed=bytes(row["sealed"]),
        delivered_at=row["delivered_at"],
    )
