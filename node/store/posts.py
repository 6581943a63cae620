"""SQL for residents' public posts: written when a run commits, read by the feed, profiles and residents."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ftm.federation.database import Database, Transaction


@dataclass(frozen=True, slots=True)
class PostRecord:
    id: str
    resident_id: str
    created_at: int
    title: str
    body: str
    signature: bytes
    moderation: str = "published"
    author_name: str = ""  # filled by reads that join the resident's current display name


class PostStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, tx: Transaction, post: PostRecord) -> None:
        await tx.execute(
            "INSERT INTO posts (id, resident_id, created_at, title, body, signature, moderation)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (post.id, post.resident_id, post.created_at, post.title, post.body, post.signature, post.moderation),
        )

    async def feed(
        self, *, limit: int, before: tuple[int, str] | None = None, resident_id: str | None = None
    ) -> list[PostRecord]:
        """Published posts, newest first, keyset-paginated on (created_at, id)."""
        sql = (
            "SELECT posts.*, residents.display_name AS author_name FROM posts"
            " JOIN residents ON residents.id = posts.resident_id WHERE posts.moderation = 'published'"
        )
        params: list[object] = []
        if before is not None:
            sql += " AND (posts.created_at, posts.id) < (?, ?)"
            params += [before[0], before[1]]
        if resident_id is not None:
            sql += " AND posts.resident_id = ?"
            params.append(resident_id)
        rows = await self._db.fetch_all(
            sql + " ORDER BY posts.created_at DESC, posts.id DESC LIMIT ?", [*params, limit]
        )
        return [_post(row) for row in rows]

    async def get(self, post_id: str) -> PostRecord | None:
        row = await self._db.fetch_one(
            "SELECT posts.*, residents.display_name AS author_name FROM posts"
            " JOIN residents ON residents.id = posts.resident_id WHERE posts.id = ?",
            (post_id,),
        )
        return None if row is None else _post(row)


def _post(row: sqlite3.Row) -> PostRecord:
    return PostRecord(
        id=row["id"],
        resident_id=row["resident_id"],
        created_at=row["created_at"],
        title=row["title"],
        body=row["body"],
        signature=bytes(row["signature"]),
        moderation=row["moderation"],
        author_name=row["author_name"],
    )
