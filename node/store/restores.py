"""SQL for a resident restored from keepers (`ftm.node.restore`): its row rebuilt from what its package holds,
its key record under this node's custody, and the uploader tokens its package lists, in the caller's transaction;
and its published posts, read back from the POST events the federation object store holds (`posts_signed_by`)
and adopted as posts made here (`adopt_posts`); and the keepers' receipts for the displaced host's copies that
`ftm-node restore retire` had destroyed (`keep_displaced_receipts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ftm.federation.database import Database, Transaction
from ftm.federation.events import EventKind
from ftm.node.store.posts import PostEvent, PostRecord, PostStore

# A resident whose row says one of these lives here (or is gone for good): a restore leaves it alone. A 'moved'
# row, of a resident that once lived here and left, is made active again.
KEPT_STATUSES = ("active", "in_keeper_custody", "deleted_memorial")


@dataclass(frozen=True, slots=True)
class RestoredResident:
    id: str
    display_name: str
    signing_public_key: bytes
    inbox_public_key: bytes
    key_epoch: int
    vault_bytes: int
    total_runs: int
    created_at: int
    run_time: str | None
    uploader_token_hashes: tuple[bytes, ...]
    bio: str = ""  # from the package's public snapshot (version 2), else none
    token_balance: int = 0


@dataclass(frozen=True, slots=True)
class StoredPostEvent:
    """A POST event the object store holds (acceptance verified its signature and its author)."""

    id: bytes
    created_at: int
    body: bytes
    signature: bytes
    content: bytes


@dataclass(frozen=True, slots=True)
class DisplacedReceipt:
    """A keeper's signed `DestroyReceipt` for one epoch of the displaced host, as the keeper sent it."""

    resident_id: str
    epoch: int
    keeper_key: bytes
    receipt: bytes
    received_at: int


class RestoreStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._posts = PostStore(db)

    async def keep_displaced_receipts(self, receipts: Sequence[DisplacedReceipt]) -> None:
        """Keep receipts (a receipt for an epoch and keeper already kept is kept as it was)."""
        async with self._db.transaction("keep_displaced_receipts") as tx:
            await tx.execute_many(
                "INSERT OR IGNORE INTO displaced_receipts (resident_id, epoch, keeper_key, receipt, received_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(r.resident_id, r.epoch, r.keeper_key, r.receipt, r.received_at) for r in receipts],
            )

    async def displaced_receipts(self, resident_id: str) -> list[DisplacedReceipt]:
        rows = await self._db.fetch_all(
            "SELECT resident_id, epoch, keeper_key, receipt, received_at FROM displaced_receipts"
            " WHERE resident_id = ? ORDER BY epoch, keeper_key",
            (resident_id,),
        )
        return [DisplacedReceipt(row[0], int(row[1]), bytes(row[2]), bytes(row[3]), int(row[4])) for row in rows]

    async def posts_signed_by(self, author: bytes, limit: int) -> list[StoredPostEvent]:
        """Up to `limit` POST events by `author` with their content (not dropped by moderation or a tombstone),
        oldest first."""
        rows = await self._db.fetch_all(
            "SELECT id, created_at, body, signature, content FROM federation_events"
            " WHERE substr(author, 1, 8) = ? AND author = ? AND kind = ? AND content IS NOT NULL"
            " ORDER BY created_at, id LIMIT ?",
            (author[:8], author, int(EventKind.POST), limit),
        )
        return [
            StoredPostEvent(
                bytes(r["id"]), r["created_at"], bytes(r["body"]), bytes(r["signature"]), bytes(r["content"])
            )
            for r in rows
        ]

    async def adopt_posts(self, tx: Transaction, posts: Sequence[tuple[PostRecord, PostEvent]]) -> int:
        """Store the posts (each with its POST event) as posts made here, skipping any already here; returns how
        many were stored."""
        adopted = 0
        for post, event in posts:
            if await tx.fetch_one("SELECT 1 FROM posts WHERE id = ?", (post.id,)) is None:
                await self._posts.insert(tx, post, event)
                adopted += 1
        return adopted

    async def is_here(self, resident_id: str, tx: Transaction | None = None) -> bool:
        """Whether a restore must leave this resident alone (see KEPT_STATUSES)."""
        placeholders = ", ".join("?" for _ in KEPT_STATUSES)
        row = await (tx or self._db).fetch_one(
            f"SELECT 1 FROM residents WHERE id = ? AND status IN ({placeholders})",
            (resident_id, *KEPT_STATUSES),
        )
        return row is not None

    async def install(
        self, tx: Transaction, resident: RestoredResident, *, custody: str, key_record: bytes, now: int
    ) -> None:
        """The resident lives here from this transaction on: row (status active; bio and tokens as the package's
        public snapshot has them), key record, and its uploader tokens (without reply keys, which only the tokens
        derive)."""
        await tx.execute(
            "INSERT INTO residents (id, display_name, bio, status, signing_public_key, inbox_public_key, key_epoch,"
            " vault_bytes, token_balance, total_runs, created_at, run_time) VALUES (?, ?, ?, 'active', ?, ?, ?, ?,"
            " ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, status = 'active',"
            " signing_public_key = excluded.signing_public_key, inbox_public_key = excluded.inbox_public_key,"
            " key_epoch = excluded.key_epoch, vault_bytes = excluded.vault_bytes, total_runs = excluded.total_runs,"
            " run_time = excluded.run_time, moved_to = NULL, bio = excluded.bio,"
            " token_balance = excluded.token_balance",
            (
                resident.id,
                resident.display_name,
                resident.bio,
                resident.signing_public_key,
                resident.inbox_public_key,
                resident.key_epoch,
                resident.vault_bytes,
                resident.token_balance,
                resident.total_runs,
                resident.created_at,
                resident.run_time,
            ),
        )
        await tx.execute(
            "INSERT INTO resident_keys (resident_id, epoch, custody, record, created_at) VALUES (?, ?, ?, ?, ?)",
            (resident.id, resident.key_epoch, custody, key_record, now),
        )
        await self._tokens(tx, resident.id, resident.uploader_token_hashes, now)

    @staticmethod
    async def _tokens(tx: Transaction, resident_id: str, hashes: Sequence[bytes], now: int) -> None:
        await tx.execute_many(
            "INSERT INTO uploader_tokens (token_hash, resident_id, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (token_hash) DO NOTHING",
            [(token_hash, resident_id, now) for token_hash in hashes],
        )
