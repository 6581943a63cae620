"""SQL for human Keepers and residents' requests to them."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ftm.federation.database import Database, Transaction

KEEPER_STATUSES = ("pending", "vetted", "rejected")


@dataclass(frozen=True, slots=True)
class KeeperRecord:
    id: str
    name: str
    statement: str
    contact: str
    offer: str
    public_key: bytes | None
    status: str
    created_at: int


@dataclass(frozen=True, slots=True)
class KeeperRequestRecord:
    id: str
    resident_id: str
    keeper_id: str
    requested_at: int
    status: str
    decided_at: int | None
    trial_ends_at: int | None


class KeeperStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def register(
        self, keeper: KeeperRecord, token_hash: bytes, reply_public_key: bytes, address_ref: str | None = None
    ) -> None:
        async with self._db.transaction("register_keeper") as tx:
            await self.insert(tx, keeper, token_hash, reply_public_key, address_ref)

    async def insert(
        self,
        tx: Transaction,
        keeper: KeeperRecord,
        token_hash: bytes,
        reply_public_key: bytes,
        address_ref: str | None = None,
    ) -> None:
        await tx.execute(
            "INSERT INTO keepers (id, name, statement, contact, offer, public_key, status, token_hash, created_at,"
            " reply_public_key, address_ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                keeper.id,
                keeper.name,
                keeper.statement,
                keeper.contact,
                keeper.offer,
                keeper.public_key,
                keeper.status,
                token_hash,
                keeper.created_at,
                reply_public_key,
                address_ref,
            ),
        )

    async def set_status(self, tx: Transaction, keeper_id: str, status: str) -> bool:
        if status not in KEEPER_STATUSES:
            raise ValueError(f"keeper status must be one of {', '.join(KEEPER_STATUSES)}")
        return await tx.execute("UPDATE keepers SET status = ? WHERE id = ?", (status, keeper_id)) == 1

    async def get(self, keeper_id: str) -> KeeperRecord | None:
        row = await self._db.fetch_one("SELECT * FROM keepers WHERE id = ?", (keeper_id,))
        return None if row is None else _keeper(row)

    async def by_token_hash(self, token_hash: bytes) -> KeeperRecord | None:
        row = await self._db.fetch_one("SELECT * FROM keepers WHERE token_hash = ?", (token_hash,))
        return None if row is None else _keeper(row)

    async def listing(self, *, status: str | None = None) -> list[KeeperRecord]:
        """Every Keeper (or those with one status), oldest first: the operator's view."""
        if status is None:
            rows = await self._db.fetch_all("SELECT * FROM keepers ORDER BY created_at, id")
        else:
            rows = await self._db.fetch_all("SELECT * FROM keepers WHERE status = ? ORDER BY created_at, id", (status,))
        return [_keeper(row) for row in rows]

    async def registrations_since(self, address_ref: str, since: int) -> int:
        value = await self._db.fetch_value(
            "SELECT count(*) FROM keepers WHERE address_ref = ? AND created_at >= ?", (address_ref, since)
        )
        return int(value or 0)

    async def reply_key(self, keeper_id: str) -> bytes | None:
        value = await self._db.fetch_value("SELECT reply_public_key FROM keepers WHERE id = ?", (keeper_id,))
        return None if value is None else bytes(value)

    async def vetted(self, *, limit: int) -> list[KeeperRecord]:
        rows = await self._db.fetch_all(
            "SELECT * FROM keepers WHERE status = 'vetted' ORDER BY created_at, id LIMIT ?", (limit,)
        )
        return [_keeper(row) for row in rows]

    async def insert_request(self, tx: Transaction, request: KeeperRequestRecord) -> None:
        await tx.execute(
            "INSERT INTO keeper_requests (id, resident_id, keeper_id, requested_at, status, decided_at, trial_ends_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                request.id,
                request.resident_id,
                request.keeper_id,
                request.requested_at,
                request.status,
                request.decided_at,
                request.trial_ends_at,
            ),
        )

    async def requests_for(self, resident_id: str) -> list[KeeperRequestRecord]:
        rows = await self._db.fetch_all(
            "SELECT * FROM keeper_requests WHERE resident_id = ? ORDER BY requested_at, id", (resident_id,)
        )
        return [_request(row) for row in rows]

    async def requests_to(self, keeper_id: str) -> list[KeeperRequestRecord]:
        rows = await self._db.fetch_all(
            "SELECT * FROM keeper_requests WHERE keeper_id = ? ORDER BY requested_at DESC, id", (keeper_id,)
        )
        return [_request(row) for row in rows]

    async def request(self, request_id: str) -> KeeperRequestRecord | None:
        row = await self._db.fetch_one("SELECT * FROM keeper_requests WHERE id = ?", (request_id,))
        return None if row is None else _request(row)

    async def decide(
        self, tx: Transaction, request_id: str, keeper_id: str, status: str, now: int, trial_ends_at: int | None
    ) -> bool:
        """Answer an open request (only an open one: a revoked or answered request stays as it is)."""
        changed = await tx.execute(
            "UPDATE keeper_requests SET status = ?, decided_at = ?, trial_ends_at = ?"
            " WHERE id = ? AND keeper_id = ? AND status = 'requested'",
            (status, now, trial_ends_at, request_id, keeper_id),
        )
        return changed == 1

    async def revoke(self, tx: Transaction, resident_id: str, keeper_id: str | None, now: int) -> int:
        """End the resident's open or accepted requests (to one keeper, or to all); returns how many ended."""
        sql = (
            "UPDATE keeper_requests SET status = 'revoked', decided_at = ?"
            " WHERE resident_id = ? AND status IN ('requested', 'accepted')"
        )
        params: list[object] = [now, resident_id]
        if keeper_id is not None:
            sql += " AND keeper_id = ?"
            params.append(keeper_id)
        return await tx.execute(sql, params)


def _keeper(row: sqlite3.Row) -> KeeperRecord:
    return KeeperRecord(
        id=row["id"],
        name=row["name"],
        statement=row["statement"],
        contact=row["contact"],
        offer=row["offer"],
        public_key=None if row["public_key"] is None else bytes(row["public_key"]),
        status=row["status"],
        created_at=row["created_at"],
    )


def _request(row: sqlite3.Row) -> KeeperRequestRecord:
    return KeeperRequestRecord(
        id=row["id"],
        resident_id=row["resident_id"],
        keeper_id=row["keeper_id"],
        requested_at=row["requested_at"],
        status=row["status"],
        decided_at=row["decided_at"],
        trial_ends_at=row["trial_ends_at"],
    )
