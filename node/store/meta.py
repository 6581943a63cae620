"""SQL for `node_meta`: small facts and secrets about the node itself (creation time, the quota hashing key)."""

from __future__ import annotations

from collections.abc import Callable

from ftm.federation.database import Database


class NodeMetaStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, key: str) -> str | None:
        value = await self._db.fetch_value("SELECT value FROM node_meta WHERE key = ?", (key,))
        return None if value is None else str(value)

    async def get_or_create(self, key: str, make: Callable[[], str]) -> str:
        """The stored value, or a new one made and stored atomically (the first writer wins)."""
        async with self._db.transaction("node_meta_get_or_create") as tx:
            await tx.execute("INSERT OR IGNORE INTO node_meta (key, value) VALUES (?, ?)", (key, make()))
            row = await tx.fetch_one("SELECT value FROM node_meta WHERE key = ?", (key,))
        assert row is not None
        return str(row["value"])
