"""SQL for residents' public posts: written when a run commits, read by the feed, profiles and residents.

A post made since schema 10 is stored with its POST event (`PostEvent`); `event` reads it back as the signed
event, its content rebuilt from the row (migration 0010 says why).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ftm.federation.database import Database, Transaction
from ftm.federation.eventcontent import PostContent, encode_content
from ftm.federation.events import SignedEvent


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
    moderated_at: int | None = None  # when it was held or an operator decided; None if published unreviewed
    moderation_reason: str | None = None  # the check's or operator's reason code, never content


@dataclass(frozen=True, slots=True)
class PostEvent:
    """A post's POST event as its author signed it: body and signature, and the name its content carries."""

    body: bytes
    signature: bytes
    resident_name: str


@dataclass(frozen=True, slots=True)
class ModerationCounts:
    """A resident's posts moderated since a moment: still held, approved, removed."""

    held: int = 0
    approved: int = 0
    removed: int = 0


class PostStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, tx: Transaction, post: PostRecord, event: PostEvent | None = None) -> None:
        await tx.execute(
            "INSERT INTO posts (id, resident_id, created_at, title, body, signature, moderation, moderated_at,"
            " moderation_reason, event_body, event_signature, event_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                post.id,
                post.resident_id,
                post.created_at,
                post.title,
                post.body,
                post.signature,
                post.moderation,
                post.moderated_at,
                post.moderation_reason,
                None if event is None else event.body,
                None if event is None else event.signature,
                None if event is None else event.resident_name,
            ),
        )

    async def event(self, tx: Transaction, post_id: str) -> SignedEvent | None:
        """The post's POST event, read inside the caller's transaction; None for a post stored without one."""
        row = await tx.fetch_one(
            "SELECT resident_id, title, body, event_body, event_signature, event_name FROM posts"
            " WHERE id = ? AND event_body IS NOT NULL",
            (post_id,),
        )
        if row is None:
            return None
        content = PostContent(row["resident_id"], row["event_name"], row["title"], row["body"])
        return SignedEvent(bytes(row["event_body"]), bytes(row["event_signature"]), encode_content(content))

    async def delete_for(self, tx: Transaction, resident_id: str) -> int:
        """Remove every post of a resident that deleted itself (in its deletion's transaction); how many."""
        return await tx.execute("DELETE FROM posts WHERE resident_id = ?", (resident_id,))

    async def removed_event_ids(self) -> list[bytes]:
        """Event ids of removed posts that carry an event (their content must not stay in the object store)."""
        rows = await self._db.fetch_all(
            "SELECT id FROM posts WHERE moderation = 'removed' AND event_body IS NOT NULL ORDER BY created_at, id"
        )
        return [bytes.fromhex(row[0]) for row in rows]

    async def held(self, *, limit: int) -> list[PostRecord]:
        """Posts waiting for the operator's decision, oldest first."""
        rows = await self._db.fetch_all(
            "SELECT posts.*, residents.display_name AS author_name FROM posts"
            " JOIN residents ON residents.id = posts.resident_id WHERE posts.moderation = 'held'"
            " ORDER BY posts.created_at, posts.id LIMIT ?",
            (limit,),
        )
        return [_post(row) for row in rows]

    async def moderation_state(self, tx: Transaction, post_id: str) -> tuple[str, str] | None:
        """(resident id, moderation) of a post, read inside the deciding transaction."""
        row = await tx.fetch_one("SELECT resident_id, moderation FROM posts WHERE id = ?", (post_id,))
        return None if row is None else (row["resident_id"], row["moderation"])

    async def set_moderation(self, tx: Transaction, post_id: str, moderation: str, *, reason: str, now: int) -> None:
        await tx.execute(
            "UPDATE posts SET moderation = ?, moderated_at = ?, moderation_reason = ? WHERE id = ?",
            (moderation, now, reason, post_id),
        )

    async def moderation_since(self, resident_id: str, since: int) -> ModerationCounts:
        """This resident's posts held or decided at or after `since` (a held post counts until decided)."""
        rows = await self._db.fetch_all(
            "SELECT moderation, COUNT(*) AS n FROM posts WHERE resident_id = ? AND moderated_at >= ?"
            " GROUP BY moderation",
            (resident_id, since),
        )
        counts = {row["moderation"]: int(row["n"]) for row in rows}
        return ModerationCounts(
            held=counts.get("held", 0), approved=counts.get("published", 0), removed=counts.get("removed", 0)
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
        moderated_at=row["moderated_at"],
        moderation_reason=row["moderation_reason"],
    )
