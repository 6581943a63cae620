"""SQL for the node's own side of federation: the queue of signed events this node made that have not yet entered
the object store (`federation_outgoing`, migration 0010), and the facts the node states about itself in events
(how many residents it hosts, which of them lack its current hosting attestation, how many keepers it vetted).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ftm.federation.database import Database, Transaction
from ftm.federation.events import SignedEvent, event_id

# Residents who live on this node: their keys are here (or with a keeper of this node) and they run here.
HOSTED_STATUSES = ("active", "in_keeper_custody")
_HOSTED = "status IN ('active', 'in_keeper_custody')"


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    seq: int
    event: SignedEvent


class LocalEventStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, tx: Transaction, events: Sequence[SignedEvent], now: int) -> None:
        """Queue events inside the transaction that makes them (an event already queued stays queued once)."""
        await tx.execute_many(
            "INSERT INTO federation_outgoing (id, body, signature, content, queued_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO NOTHING",
            [(event_id(e.body), e.body, e.signature, e.content, now) for e in events],
        )

    async def unqueue(self, tx: Transaction, ids: Iterable[bytes]) -> None:
        """Take events off the queue inside the caller's transaction (a post removed before it was released)."""
        await tx.execute_many("DELETE FROM federation_outgoing WHERE id = ?", [(i,) for i in ids])

    async def remove(self, ids: Iterable[bytes]) -> None:
        """Take events off the queue once acceptance has answered them for good."""
        rows = [(i,) for i in ids]
        if rows:
            async with self._db.transaction("federation_outgoing_done") as tx:
                await tx.execute_many("DELETE FROM federation_outgoing WHERE id = ?", rows)

    async def queued(self, *, after: int = 0, limit: int) -> list[QueuedEvent]:
        """Up to `limit` queued events after sequence number `after`, oldest first."""
        rows = await self._db.fetch_all(
            "SELECT seq, body, signature, content FROM federation_outgoing WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        )
        return [
            QueuedEvent(
                row["seq"],
                SignedEvent(
                    bytes(row["body"]),
                    bytes(row["signature"]),
                    None if row["content"] is None else bytes(row["content"]),
                ),
            )
            for row in rows
        ]

    async def queued_count(self) -> int:
        return int(await self._db.fetch_value("SELECT COUNT(*) FROM federation_outgoing"))

    async def hosted_count(self, tx: Transaction | None = None) -> int:
        """Residents living here; read inside `tx` when given (intake's capacity check races no other admission)."""
        sql = f"SELECT COUNT(*) FROM residents WHERE {_HOSTED}"
        row = await (tx.fetch_one(sql) if tx is not None else self._db.fetch_one(sql))
        assert row is not None
        return int(row[0])

    async def unattested_keys(self, node_key: bytes, node_url: str) -> list[bytes]:
        """Signing keys of hosted residents for which the object store holds no attestation by `node_key` naming
        `node_url` (never attested, or attested under an earlier URL), oldest resident first."""
        rows = await self._db.fetch_all(
            "SELECT residents.signing_public_key FROM residents LEFT JOIN federation_attestations AS a"
            " ON a.resident_key = residents.signing_public_key AND a.node_key = ?"
            f" WHERE residents.{_HOSTED} AND (a.node_url IS NULL OR a.node_url != ?)"
            " ORDER BY residents.created_at, residents.id",
            (node_key, node_url),
        )
        return [bytes(row[0]) for row in rows]

    async def vetted_keepers(self) -> int:
        return int(await self._db.fetch_value("SELECT COUNT(*) FROM keepers WHERE status = 'vetted'"))
