"""SQL for what the node reads of the federation for its visitors and residents: peers' posts for the federated
feed, the hosting attestations that say where their authors live, and every node's newest descriptor for the
directory. Read-only, over the object store's tables (migration 0007) and the node's `posts`.

A **peer's post** is a stored POST event that reached us from another node (`origin` set), whose content is still
there (not dropped by a tombstone or by moderation), whose author no tombstone names, and which is not a post of
this node (a post made here is in `posts` under its event id, in hex, and the feed shows it from there).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ftm.federation.database import Database
from ftm.federation.events import EventKind

IN_CHUNK = 500  # keys per `IN (…)` list, far below SQLite's variable limit

# Pages walk the partial index of peers' posts (migration 0012) by name: left to itself, SQLite picks the index
# of all events by kind, which agrees on the order, and then steps over every post made here (tens of thousands
# on a busy node) to find the peers' ones. One post by id keeps the primary key.
_PAGE_SOURCE = "federation_events AS e INDEXED BY federation_events_peer_posts"
_ONE_SOURCE = "federation_events AS e"
_PEER_POSTS = (
    "SELECT e.id, e.author, e.created_at, e.body, e.signature, e.content FROM {source}"
    f" WHERE e.kind = {int(EventKind.POST)} AND e.content IS NOT NULL AND e.origin IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM posts WHERE posts.id = lower(hex(e.id)))"
    " AND NOT EXISTS (SELECT 1 FROM federation_tombstones AS t WHERE t.resident_key = e.author)"
)
# The newest descriptor of each author, by (created_at, id): the node's current directory entry.
_LATEST_DESCRIPTORS = (
    "SELECT id, author, created_at, body, signature, content FROM ("
    " SELECT id, author, created_at, body, signature, content,"
    " row_number() OVER (PARTITION BY author ORDER BY created_at DESC, id DESC) AS newest"
    f" FROM federation_events WHERE kind = {int(EventKind.NODE_DESCRIPTOR)} AND content IS NOT NULL"
    ") WHERE newest = 1 ORDER BY created_at DESC, id DESC"
)


@dataclass(frozen=True, slots=True)
class EventRow:
    """A stored event as the reads need it: the signed body and signature, and the content it carries."""

    id: bytes
    author: bytes
    created_at: int
    body: bytes
    signature: bytes
    content: bytes

    @property
    def key(self) -> tuple[int, bytes]:
        """Its place in (created_at, id) order, the feed's keyset."""
        return self.created_at, self.id


@dataclass(frozen=True, slots=True)
class Hosting:
    """Node `node_key` said, at `created_at`, that the resident lives there and is reached at `node_url`."""

    node_key: bytes
    node_url: str
    created_at: int


class FederatedReadStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def peer_posts(
        self, limit: int, *, before: tuple[int, bytes] | None = None, hosted_by: bytes | None = None
    ) -> list[EventRow]:
        """Up to `limit` peers' posts (see the module), newest first, older than `before`; with `hosted_by`, only
        those whose author that node attested."""
        sql = _PEER_POSTS.format(source=_PAGE_SOURCE)
        params: list[object] = []
        if hosted_by is not None:
            sql += " AND EXISTS (SELECT 1 FROM federation_attestations AS a WHERE a.resident_key = e.author"
            sql += " AND a.node_key = ?)"
            params.append(hosted_by)
        if before is not None:
            sql += " AND (e.created_at, e.id) < (?, ?)"
            params.extend(before)
        sql += " ORDER BY e.created_at DESC, e.id DESC LIMIT ?"
        params.append(limit)
        return [_row(row) for row in await self._db.fetch_all(sql, params)]

    async def peer_post(self, event_id: bytes) -> EventRow | None:
        """One peer's post by its event id, if it is one (see the module)."""
        row = await self._db.fetch_one(_PEER_POSTS.format(source=_ONE_SOURCE) + " AND e.id = ?", (event_id,))
        return None if row is None else _row(row)

    async def hostings(self, resident_keys: Iterable[bytes]) -> dict[bytes, list[Hosting]]:
        """Every node's latest attestation of each of these residents (known nodes or not), oldest first."""
        found: dict[bytes, list[Hosting]] = {}
        keys = list(set(resident_keys))
        for start in range(0, len(keys), IN_CHUNK):
            chunk: Sequence[bytes] = keys[start : start + IN_CHUNK]
            rows = await self._db.fetch_all(
                "SELECT resident_key, node_key, node_url, created_at FROM federation_attestations"
                f" WHERE resident_key IN ({', '.join('?' * len(chunk))}) ORDER BY created_at, node_key",
                chunk,
            )
            for row in rows:
                found.setdefault(row[0], []).append(Hosting(row[1], row[2], row[3]))
        return found

    async def latest_descriptors(self) -> list[EventRow]:
        """Each node's newest NODE_DESCRIPTOR, whether we know the node or not; newest first."""
        return [_row(row) for row in await self._db.fetch_all(_LATEST_DESCRIPTORS)]


def _row(row: sqlite3.Row) -> EventRow:
    return EventRow(
        bytes(row["id"]),
        bytes(row["author"]),
        row["created_at"],
        bytes(row["body"]),
        bytes(row["signature"]),
        bytes(row["content"]),
    )
