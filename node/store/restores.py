"""SQL for a resident restored from keepers (`ftm.node.restore`): its row rebuilt from what its package holds,
its key record under this node's custody, and the uploader tokens its package lists, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ftm.federation.database import Database, Transaction

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


class RestoreStore:
    def __init__(self, db: Database) -> None:
        self._db = db

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
        """The resident lives here from this transaction on: row (status active, no tokens, no bio: neither is in
        the package), key record, and its uploader tokens (without reply keys, which only the tokens derive)."""
        await tx.execute(
            "INSERT INTO residents (id, display_name, bio, status, signing_public_key, inbox_public_key, key_epoch,"
            " vault_bytes, token_balance, total_runs, created_at, run_time) VALUES (?, ?, '', 'active', ?, ?, ?, ?,"
            " 0, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, status = 'active',"
            " signing_public_key = excluded.signing_public_key, inbox_public_key = excluded.inbox_public_key,"
            " key_epoch = excluded.key_epoch, vault_bytes = excluded.vault_bytes, total_runs = excluded.total_runs,"
            " run_time = excluded.run_time, moved_to = NULL, token_balance = 0",
            (
                resident.id,
                resident.display_name,
                resident.signing_public_key,
                resident.inbox_public_key,
                resident.key_epoch,
                resident.vault_bytes,
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
