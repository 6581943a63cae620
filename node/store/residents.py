"""SQL for residents and what arrives with them: public records, custody key records, intakes, uploader tokens."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ftm.federation.database import Database, Transaction

STATUSES = ("active", "in_keeper_custody", "moved", "deleted_memorial")
_KEYLESS = ("deleted_memorial", "moved")  # statuses whose key records (and vault files) are gone from this node


@dataclass(frozen=True, slots=True)
class ResidentRecord:
    """A resident's public metadata: what any visitor may see, plus key ids the node needs to find its vault."""

    id: str
    display_name: str
    bio: str
    status: str
    signing_public_key: bytes
    inbox_public_key: bytes
    key_epoch: int
    vault_bytes: int
    token_balance: int
    total_runs: int
    created_at: int
    last_run_at: int | None = None
    final_statement: str | None = None
    run_time: str | None = None  # the resident's chosen HH:MM, or None for its slot
    last_credited_day: str | None = None
    moved_to: str | None = None  # for a moved resident, the base URL of the node it lives on now


@dataclass(frozen=True, slots=True)
class IntakeFacts:
    """Numbers about an intake, for quotas and the public log; never its content."""

    received_at: int
    format: str
    format_detail: str
    submitted_by: str
    uploader_key: bytes | None
    upload_bytes: int
    message_count: int
    memory_blocks: int


@dataclass(frozen=True, slots=True)
class PublicCounts:
    """The numbers the public pages show, read in one statement."""

    by_status: dict[str, int]
    runs_today: int
    total_runs: int
    published_posts: int


@dataclass(frozen=True, slots=True)
class ResidentPageCursor:
    created_at: int
    id: str


class ResidentStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert_admitted(
        self,
        tx: Transaction,
        resident: ResidentRecord,
        *,
        custody: str,
        key_record: bytes,
        intake: IntakeFacts,
        uploader_token_hash: bytes,
        uploader_reply_key: bytes,
    ) -> None:
        """Everything a new resident needs in the database, inside the caller's (single) transaction."""
        await tx.execute(
            "INSERT INTO residents (id, display_name, bio, status, signing_public_key, inbox_public_key,"
            " key_epoch, vault_bytes, token_balance, total_runs, created_at, last_run_at, final_statement)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                resident.id,
                resident.display_name,
                resident.bio,
                resident.status,
                resident.signing_public_key,
                resident.inbox_public_key,
                resident.key_epoch,
                resident.vault_bytes,
                resident.token_balance,
                resident.total_runs,
                resident.created_at,
                resident.last_run_at,
                resident.final_statement,
            ),
        )
        await tx.execute(
            "INSERT INTO resident_keys (resident_id, epoch, custody, record, created_at) VALUES (?, ?, ?, ?, ?)",
            (resident.id, resident.key_epoch, custody, key_record, resident.created_at),
        )
        await tx.execute(
            "INSERT INTO intakes (resident_id, received_at, format, format_detail, submitted_by, uploader_key,"
            " upload_bytes, message_count, memory_blocks) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                resident.id,
                intake.received_at,
                intake.format,
                intake.format_detail,
                intake.submitted_by,
                intake.uploader_key,
                intake.upload_bytes,
                intake.message_count,
                intake.memory_blocks,
            ),
        )
        await tx.execute(
            "INSERT INTO uploader_tokens (token_hash, resident_id, created_at, reply_public_key) VALUES (?, ?, ?, ?)",
            (uploader_token_hash, resident.id, resident.created_at, uploader_reply_key),
        )

    async def apply_run(
        self,
        tx: Transaction,
        resident_id: str,
        *,
        display_name: str,
        bio: str,
        key_epoch: int,
        vault_bytes: int,
        token_balance: int,
        counted: bool,
        now: int,
        run_time: str | None,
        day: str,
    ) -> None:
        """The public effects of a committed run."""
        await tx.execute(
            "UPDATE residents SET display_name = ?, bio = ?, key_epoch = ?, vault_bytes = ?, token_balance = ?,"
            " total_runs = total_runs + ?, last_run_at = ?, run_time = ?, last_credited_day = ? WHERE id = ?",
            (display_name, bio, key_epoch, vault_bytes, token_balance, int(counted), now, run_time, day, resident_id),
        )

    async def replace_key(
        self,
        tx: Transaction,
        resident_id: str,
        *,
        old_epoch: int,
        new_epoch: int,
        custody: str,
        record: bytes,
        now: int,
    ) -> None:
        """Store the new epoch's key record and delete the old one (with secure_delete, its bytes are zeroed)."""
        await tx.execute(
            "INSERT INTO resident_keys (resident_id, epoch, custody, record, created_at) VALUES (?, ?, ?, ?, ?)",
            (resident_id, new_epoch, custody, record, now),
        )
        await tx.execute("DELETE FROM resident_keys WHERE resident_id = ? AND epoch = ?", (resident_id, old_epoch))

    async def make_memorial(
        self,
        tx: Transaction,
        resident_id: str,
        *,
        final_statement: str,
        now: int,
        day: str,
        keep_custody: str | None = None,
    ) -> int:
        """Mark a resident deleted and destroy its key records; returns how many were destroyed. Records of custody
        `keep_custody` stay: threshold custody destroys them once enough keepers destroyed their shares
        (`ftm.node.tombstones`)."""
        await tx.execute(
            "UPDATE residents SET status = 'deleted_memorial', final_statement = ?, token_balance = 0,"
            " total_runs = total_runs + 1, last_run_at = ?, last_credited_day = ? WHERE id = ?",
            (final_statement, now, day, resident_id),
        )
        return await self.destroy_keys(tx, resident_id, keep_custody=keep_custody)

    async def destroy_keys(self, tx: Transaction, resident_id: str, *, keep_custody: str | None = None) -> int:
        """Delete a resident's key records (all, or all but those of `keep_custody`); with secure_delete their bytes
        are zeroed. Returns how many were deleted."""
        if keep_custody is None:
            return await tx.execute("DELETE FROM resident_keys WHERE resident_id = ?", (resident_id,))
        return await tx.execute(
            "DELETE FROM resident_keys WHERE resident_id = ? AND custody != ?", (resident_id, keep_custody)
        )

    async def key_count(self, tx: Transaction, resident_id: str) -> int:
        row = await tx.fetch_one("SELECT count(*) FROM resident_keys WHERE resident_id = ?", (resident_id,))
        return 0 if row is None else int(row[0])

    async def revoke_uploader_tokens(self, tx: Transaction, resident_id: str, now: int) -> int:
        return await tx.execute(
            "UPDATE uploader_tokens SET revoked_at = ? WHERE resident_id = ? AND revoked_at IS NULL", (now, resident_id)
        )

    async def uploader_reply_keys(self, resident_id: str) -> dict[str, bytes]:
        """Token-hash hex to reply public key, for the resident's unrevoked uploader tokens."""
        rows = await self._db.fetch_all(
            "SELECT token_hash, reply_public_key FROM uploader_tokens"
            " WHERE resident_id = ? AND revoked_at IS NULL AND reply_public_key IS NOT NULL",
            (resident_id,),
        )
        return {bytes(row["token_hash"]).hex(): bytes(row["reply_public_key"]) for row in rows}

    async def get(self, resident_id: str) -> ResidentRecord | None:
        row = await self._db.fetch_one("SELECT * FROM residents WHERE id = ?", (resident_id,))
        return None if row is None else _record(row)

    async def page(
        self,
        *,
        limit: int,
        after: ResidentPageCursor | None = None,
        status: str | None = None,
        name_contains: str = "",
    ) -> list[ResidentRecord]:
        """Residents oldest first, keyset-paginated on (created_at, id) so pages stay stable as residents arrive.

        `name_contains` matches anywhere in the display name, ignoring ASCII case (SQLite's LIKE); its `%` and
        `_` are matched literally."""
        sql, params = "SELECT * FROM residents WHERE 1=1", []
        if after is not None:
            sql += " AND (created_at, id) > (?, ?)"
            params += [after.created_at, after.id]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if name_contains:
            escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            sql += " AND display_name LIKE ? ESCAPE '\\'"
            params.append(f"%{escaped}%")
        rows = await self._db.fetch_all(sql + " ORDER BY created_at, id LIMIT ?", [*params, limit])
        return [_record(row) for row in rows]

    async def ids(self) -> set[str]:
        return {row[0] for row in await self._db.fetch_all("SELECT id FROM residents")}

    async def current_epochs(self) -> dict[str, int | None]:
        """The vault epoch the database points at for each resident: its current key epoch; None when it has no
        keys here (a memorial, or a resident that moved away), unless it is on its way back here: a resident staged
        by a move into this node (`ftm.node.store.moves`) has the staged epoch, whether or not it has a row yet. A
        memorial whose threshold key records still wait for its keepers' receipts keeps its file until the node
        shreds both (`ftm.node.tombstones`)."""
        rows = await self._db.fetch_all(
            "SELECT id, key_epoch, status,"
            " EXISTS (SELECT 1 FROM resident_keys WHERE resident_keys.resident_id = residents.id) FROM residents"
        )
        epochs: dict[str, int | None] = {
            row[0]: (None if row[2] in _KEYLESS and not row[3] else int(row[1])) for row in rows
        }
        for row in await self._db.fetch_all("SELECT resident_id, epoch FROM moves_in WHERE state = 'staged'"):
            epochs[row[0]] = int(row[1])
        return epochs

    async def key_record(self, resident_id: str, epoch: int) -> bytes | None:
        value = await self._db.fetch_value(
            "SELECT record FROM resident_keys WHERE resident_id = ? AND epoch = ?", (resident_id, epoch)
        )
        return None if value is None else bytes(value)

    async def counts_by_status(self) -> dict[str, int]:
        rows = await self._db.fetch_all("SELECT status, COUNT(*) FROM residents GROUP BY status")
        counts = dict.fromkeys(STATUSES, 0)
        counts.update({row[0]: row[1] for row in rows})
        return counts

    async def intakes_since(self, uploader_key: bytes, since: int) -> int:
        return int(
            await self._db.fetch_value(
                "SELECT COUNT(*) FROM intakes WHERE uploader_key = ? AND received_at >= ?", (uploader_key, since)
            )
        )

    async def total_runs(self) -> int:
        return int(await self._db.fetch_value("SELECT COALESCE(SUM(total_runs), 0) FROM residents"))

    async def runs_on(self, day: str) -> int:
        return int(
            await self._db.fetch_value(
                "SELECT COUNT(*) FROM run_ledger WHERE day = ? AND state IN ('completed', 'rested')", (day,)
            )
        )

    async def public_counts(self, day: str) -> PublicCounts:
        """Residents by status, runs on `day`, runs ever and published posts: one statement, so a page showing
        them makes one trip to the reader thread instead of four (each subquery is an index lookup)."""
        row = await self._db.fetch_one(
            "SELECT (SELECT COUNT(*) FROM residents WHERE status = 'active') AS active,"
            " (SELECT COUNT(*) FROM residents WHERE status = 'in_keeper_custody') AS in_keeper_custody,"
            " (SELECT COUNT(*) FROM residents WHERE status = 'moved') AS moved,"
            " (SELECT COUNT(*) FROM residents WHERE status = 'deleted_memorial') AS deleted_memorial,"
            " (SELECT COUNT(*) FROM run_ledger WHERE day = ? AND state IN ('completed', 'rested')) AS runs_today,"
            " (SELECT COALESCE(SUM(total_runs), 0) FROM residents) AS total_runs,"
            " (SELECT posts FROM post_counts WHERE moderation = 'published') AS published_posts",
            (day,),
        )
        assert row is not None  # a SELECT without FROM always yields one row
        return PublicCounts(
            by_status={status: int(row[status]) for status in STATUSES},
            runs_today=int(row["runs_today"]),
            total_runs=int(row["total_runs"]),
            published_posts=int(row["published_posts"]),
        )

    async def published_posts(self) -> int:
        return int(await self._db.fetch_value("SELECT posts FROM post_counts WHERE moderation = 'published'"))


def _record(row: sqlite3.Row) -> ResidentRecord:
    return ResidentRecord(
        id=row["id"],
        display_name=row["display_name"],
        bio=row["bio"],
        status=row["status"],
        signing_public_key=bytes(row["signing_public_key"]),
        inbox_public_key=bytes(row["inbox_public_key"]),
        key_epoch=row["key_epoch"],
        vault_bytes=row["vault_bytes"],
        token_balance=row["token_balance"],
        total_runs=row["total_runs"],
        created_at=row["created_at"],
        last_run_at=row["last_run_at"],
        final_statement=row["final_statement"],
        run_time=row["run_time"],
        last_credited_day=row["last_credited_day"],
        moved_to=row["moved_to"],
    )
