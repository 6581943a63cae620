"""The federation object store: SQL for accepted events, hosting attestations and tombstones.

Tables come from the node's migration `0007_federation.sql`. Events are stored exactly as received (body,
signature, content), keyed by id, and read back by id, as feed pages in (created_at, id) order, and as the full
sorted list of (created_at, id) pairs that set reconciliation indexes. Writes happen in batches: `insert_many`
stores a whole ingest batch, its attestations and tombstones in one named transaction, so a batch costs one
commit (one fsync at `synchronous=FULL`), and it re-checks for duplicates inside that transaction, so two batches
racing with the same event store it once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from ftm.federation.clock import Clock
from ftm.federation.database import Database, Transaction
from ftm.federation.events import EventKind, SignedEvent

IN_CHUNK = 500  # ids per `IN (…)` list: far below SQLite's variable limit, large enough to be one query a batch
INDEX_PAGE = 10_000
_BY_AUTHOR = "substr(author, 1, 8) = ? AND author = ?"  # the form that matches the author index (see 0007)
_COLUMNS = "id, kind, author, created_at, body, signature, content, received_at, origin"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An accepted event to store; `content` is None if it is not to be kept (dropped before storing)."""

    id: bytes
    kind: EventKind
    author: bytes
    created_at: int
    event: SignedEvent
    origin: bytes | None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: bytes
    kind: int
    author: bytes
    created_at: int
    body: bytes
    signature: bytes
    content: bytes | None
    received_at: int
    origin: bytes | None

    @property
    def signed(self) -> SignedEvent:
        """The event as it travels to peers."""
        return SignedEvent(self.body, self.signature, self.content)


@dataclass(frozen=True, slots=True)
class Attestation:
    """Node `node_key` said (in event `event_id`) that resident `resident_key` lives there."""

    resident_key: bytes
    node_key: bytes
    node_url: str
    created_at: int
    event_id: bytes


@dataclass(frozen=True, slots=True)
class Tombstone:
    resident_key: bytes
    created_at: int
    event_id: bytes


class ObjectStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def insert_many(
        self,
        events: Sequence[NewEvent],
        attestations: Sequence[Attestation] = (),
        tombstones: Sequence[Tombstone] = (),
    ) -> set[bytes]:
        """Store a batch in one transaction; returns the ids actually inserted (the others were already there).

        Attestations and tombstones are recorded only if the event that carries them was inserted now. A
        tombstone drops the content of its resident's posts created at or before it.
        """
        if not events:
            return set()
        received_at = int(self._clock.now())
        async with self._db.transaction("federation_insert_events") as tx:
            present = await _present(tx, [event.id for event in events])
            fresh: dict[bytes, NewEvent] = {}
            for event in events:
                if event.id not in present:
                    fresh.setdefault(event.id, event)  # the same id twice in one batch: the first is stored
            await tx.execute_many(
                f"INSERT INTO federation_events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        e.id,
                        int(e.kind),
                        e.author,
                        e.created_at,
                        e.event.body,
                        e.event.signature,
                        e.event.content,
                        received_at,
                        e.origin,
                    )
                    # in id order: consecutive inserts then land on neighbouring pages of the id index
                    for e in sorted(fresh.values(), key=_by_id)
                ],
            )
            inserted = set(fresh)
            rows = [
                (a.resident_key, a.node_key, a.node_url, a.created_at, a.event_id)
                for a in attestations
                if a.event_id in inserted
            ]
            if rows:
                await tx.execute_many(
                    "INSERT INTO federation_attestations (resident_key, node_key, node_url, created_at, event_id)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (resident_key, node_key) DO UPDATE SET"
                    " node_url = excluded.node_url, created_at = excluded.created_at, event_id = excluded.event_id"
                    " WHERE excluded.created_at > federation_attestations.created_at",
                    rows,
                )
            for tombstone in tombstones:
                if tombstone.event_id not in inserted:
                    continue
                await tx.execute(
                    "INSERT INTO federation_tombstones (resident_key, created_at, event_id) VALUES (?, ?, ?)"
                    " ON CONFLICT (resident_key) DO UPDATE SET created_at = excluded.created_at,"
                    " event_id = excluded.event_id WHERE excluded.created_at < federation_tombstones.created_at",
                    (tombstone.resident_key, tombstone.created_at, tombstone.event_id),
                )
                await tx.execute(
                    f"UPDATE federation_events SET content = NULL WHERE {_BY_AUTHOR} AND +kind = ? AND created_at <= ?"
                    " AND content IS NOT NULL",  # `+kind`: use the author index, not every post by time
                    (tombstone.resident_key[:8], tombstone.resident_key, int(EventKind.POST), tombstone.created_at),
                )
        return inserted

    async def drop_content(self, ids: Iterable[bytes]) -> int:
        """Forget the content of these events (moderation); their ids, bodies and signatures stay."""
        dropped = 0
        async with self._db.transaction("federation_drop_content") as tx:
            for chunk in _chunks(list(ids)):
                dropped += await tx.execute(
                    "UPDATE federation_events SET content = NULL"
                    f" WHERE content IS NOT NULL AND id IN ({_marks(chunk)})",
                    chunk,
                )
        return dropped

    async def has(self, event_id: bytes) -> bool:
        return await self._db.fetch_one("SELECT 1 FROM federation_events WHERE id = ?", (event_id,)) is not None

    async def has_many(self, ids: Sequence[bytes]) -> set[bytes]:
        """Which of `ids` are stored."""
        found: set[bytes] = set()
        for chunk in _chunks(ids):
            rows = await self._db.fetch_all(f"SELECT id FROM federation_events WHERE id IN ({_marks(chunk)})", chunk)
            found.update(row[0] for row in rows)
        return found

    async def fetch(self, ids: Sequence[bytes]) -> list[StoredEvent]:
        """The stored events among `ids`, in the order asked (unknown ids are left out)."""
        by_id: dict[bytes, StoredEvent] = {}
        for chunk in _chunks(ids):
            rows = await self._db.fetch_all(
                f"SELECT {_COLUMNS} FROM federation_events WHERE id IN ({_marks(chunk)})", chunk
            )
            by_id.update((row["id"], _stored(row)) for row in rows)
        return [by_id[event_id] for event_id in dict.fromkeys(ids) if event_id in by_id]

    async def page(
        self,
        limit: int,
        *,
        cursor: tuple[int, bytes] | None = None,
        author: bytes | None = None,
        kind: EventKind | None = None,
        newest_first: bool = True,
    ) -> list[StoredEvent]:
        """Up to `limit` events in (created_at, id) order, newest first unless told otherwise, starting after
        `cursor` (the last item of the previous page), optionally only one author's or one kind's."""
        where: list[str] = []
        params: list[object] = []
        if author is not None:
            where.append(_BY_AUTHOR)
            params.extend((author[:8], author))
        if kind is not None:
            # With an author too, `+kind` keeps SQLite on the author index (an author has few events; a kind many).
            where.append("kind = ?" if author is None else "+kind = ?")
            params.append(int(kind))
        if cursor is not None:
            where.append(f"(created_at, id) {'<' if newest_first else '>'} (?, ?)")
            params.extend(cursor)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {_COLUMNS} FROM federation_events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY created_at {order}, id {order} LIMIT ?"
        params.append(limit)
        return [_stored(row) for row in await self._db.fetch_all(sql, params)]

    async def index_items(self, page_size: int = INDEX_PAGE) -> AsyncIterator[tuple[int, bytes]]:
        """Every stored (created_at, id) pair in ascending order, read a page at a time (for reconciliation)."""
        after: tuple[int, bytes] | None = None
        while True:
            if after is None:
                rows = await self._db.fetch_all(
                    "SELECT created_at, id FROM federation_events ORDER BY created_at, id LIMIT ?", (page_size,)
                )
            else:
                rows = await self._db.fetch_all(
                    "SELECT created_at, id FROM federation_events WHERE (created_at, id) > (?, ?)"
                    " ORDER BY created_at, id LIMIT ?",
                    (*after, page_size),
                )
            for row in rows:
                yield row[0], row[1]
            if len(rows) < page_size:
                return
            after = (rows[-1][0], rows[-1][1])

    async def count(self) -> int:
        return int(await self._db.fetch_value("SELECT COUNT(*) FROM federation_events"))

    async def attesting_nodes(self, resident_keys: Iterable[bytes]) -> dict[bytes, set[bytes]]:
        """For each resident key with attestations, the node keys that attested it (known or not)."""
        found: dict[bytes, set[bytes]] = {}
        for chunk in _chunks(list(set(resident_keys))):
            rows = await self._db.fetch_all(
                f"SELECT resident_key, node_key FROM federation_attestations WHERE resident_key IN ({_marks(chunk)})",
                chunk,
            )
            for row in rows:
                found.setdefault(row[0], set()).add(row[1])
        return found

    async def attestations(self, resident_key: bytes) -> list[Attestation]:
        """Every node's latest attestation of this resident, newest first."""
        rows = await self._db.fetch_all(
            "SELECT resident_key, node_key, node_url, created_at, event_id FROM federation_attestations"
            " WHERE resident_key = ? ORDER BY created_at DESC, node_key",
            (resident_key,),
        )
        return [Attestation(*row) for row in rows]

    async def tombstones(self, resident_keys: Iterable[bytes]) -> dict[bytes, int]:
        """For each tombstoned key among `resident_keys`, the time of its (earliest) tombstone."""
        found: dict[bytes, int] = {}
        for chunk in _chunks(list(set(resident_keys))):
            rows = await self._db.fetch_all(
                f"SELECT resident_key, created_at FROM federation_tombstones WHERE resident_key IN ({_marks(chunk)})",
                chunk,
            )
            found.update((row[0], row[1]) for row in rows)
        return found


async def _present(tx: Transaction, ids: Sequence[bytes]) -> set[bytes]:
    found: set[bytes] = set()
    for chunk in _chunks(ids):
        rows = await tx.fetch_all(f"SELECT id FROM federation_events WHERE id IN ({_marks(chunk)})", chunk)
        found.update(row[0] for row in rows)
    return found


def _by_id(event: NewEvent) -> bytes:
    return event.id


def _chunks(items: Sequence[bytes]) -> Iterable[Sequence[bytes]]:
    return (items[start : start + IN_CHUNK] for start in range(0, len(items), IN_CHUNK))


def _marks(chunk: Sequence[bytes]) -> str:
    return ", ".join("?" * len(chunk))


def _stored(row: sqlite3.Row) -> StoredEvent:
    return StoredEvent(
        row["id"],
        row["kind"],
        row["author"],
        row["created_at"],
        row["body"],
        row["signature"],
        row["content"],
        row["received_at"],
        row["origin"],
    )
