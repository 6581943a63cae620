"""SQL for dead man's switches: the switches, their newest sealed backups, registrations per sender, and the watch's
last look (migration 0015)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ftm.federation.database import Database, Transaction

SWITCH_STATES = ("armed", "firing", "fired", "failed")
_DEADLINE = "last_seen_at + silence_seconds + credit_seconds"


@dataclass(frozen=True, slots=True)
class SwitchRecord:
    id: str
    state: str
    receipt_key: bytes
    silence_seconds: int
    warn_seconds: int
    persona_name: str | None
    submitted_by: str
    created_at: int
    last_seen_at: int
    credit_seconds: int = 0
    warned_at: int | None = None
    next_try_at: int | None = None
    failure: str | None = None
    failed_at: int | None = None
    resident_id: str | None = None
    sealed_receipt: bytes | None = None
    fired_at: int | None = None

    @property
    def fires_at(self) -> int:
        """When the switch fires if nothing is heard from its holder before."""
        return self.last_seen_at + self.silence_seconds + self.credit_seconds

    @property
    def warns_at(self) -> int:
        return self.fires_at - self.warn_seconds


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What is known of a stored backup without reading it."""

    sequence: int
    digest: bytes
    size: int
    received_at: int


class SwitchStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- reads -----------------------------------------------------------------------------------------------------

    async def get(self, switch_id: str) -> SwitchRecord | None:
        row = await self._db.fetch_one("SELECT * FROM switches WHERE id = ?", (switch_id,))
        return None if row is None else _switch(row)

    async def by_token_hash(self, token_hash: bytes) -> SwitchRecord | None:
        row = await self._db.fetch_one("SELECT * FROM switches WHERE token_hash = ?", (token_hash,))
        return None if row is None else _switch(row)

    async def backup_info(self, switch_id: str) -> BackupInfo | None:
        row = await self._db.fetch_one(
            "SELECT sequence, digest, length(sealed) AS size, received_at FROM switch_backups WHERE switch_id = ?",
            (switch_id,),
        )
        if row is None:
            return None
        return BackupInfo(row["sequence"], bytes(row["digest"]), row["size"], row["received_at"])

    async def sealed_backup(self, switch_id: str) -> bytes | None:
        value = await self._db.fetch_value("SELECT sealed FROM switch_backups WHERE switch_id = ?", (switch_id,))
        return None if value is None else bytes(value)

    async def registrations_since(self, address_ref: bytes, since: int) -> int:
        value = await self._db.fetch_value(
            "SELECT count(*) FROM switch_registrations WHERE address_ref = ? AND registered_at >= ?",
            (address_ref, since),
        )
        return int(value or 0)

    async def due(self, now: int, *, waiting_too: bool) -> list[str]:
        """Armed switches whose silence has run out, and firings to drive again: those whose retry time has come,
        or every one when `waiting_too` (at start-up, when a firing may have been cut short)."""
        rows = await self._db.fetch_all(
            f"SELECT id FROM switches WHERE (state = 'armed' AND {_DEADLINE} <= ?)"
            " OR (state = 'firing' AND (? OR next_try_at IS NULL OR next_try_at <= ?)) ORDER BY created_at, id",
            (now, waiting_too, now),
        )
        return [row["id"] for row in rows]

    async def newly_warned(self, now: int) -> list[SwitchRecord]:
        """Armed switches inside their warning period that the node has not yet warned about."""
        rows = await self._db.fetch_all(
            f"SELECT * FROM switches WHERE state = 'armed' AND warned_at IS NULL AND {_DEADLINE} - warn_seconds <= ?",
            (now,),
        )
        return [_switch(row) for row in rows]

    async def admitted_resident(self, intake_marker: bytes) -> str | None:
        """The resident an admission marked with `intake_marker` created, if it committed."""
        value = await self._db.fetch_value(
            "SELECT resident_id FROM intakes WHERE uploader_key = ? ORDER BY id LIMIT 1", (intake_marker,)
        )
        return None if value is None else str(value)

    async def last_tick(self) -> int | None:
        value = await self._db.fetch_value("SELECT last_tick_at FROM switch_watch WHERE id = 1")
        return None if value is None else int(value)

    # --- writes (inside the caller's named transaction) ------------------------------------------------------------

    async def insert(self, tx: Transaction, switch: SwitchRecord, token_hash: bytes, address_ref: bytes) -> None:
        await tx.execute(
            "INSERT INTO switches (id, token_hash, receipt_key, state, silence_seconds, warn_seconds, persona_name,"
            " submitted_by, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                switch.id,
                token_hash,
                switch.receipt_key,
                switch.state,
                switch.silence_seconds,
                switch.warn_seconds,
                switch.persona_name,
                switch.submitted_by,
                switch.created_at,
                switch.last_seen_at,
            ),
        )
        await tx.execute("DELETE FROM switch_registrations WHERE registered_at < ?", (switch.created_at - 86_400,))
        await tx.execute(
            "INSERT INTO switch_registrations (address_ref, registered_at) VALUES (?, ?)",
            (address_ref, switch.created_at),
        )

    async def put_backup(
        self, tx: Transaction, switch_id: str, sequence: int, digest: bytes, sealed: bytes, now: int
    ) -> None:
        """Replace the switch's backup and count the push as a check-in; a failed switch is armed again and its
        last failure forgotten (it concerned the backup this one replaces)."""
        await tx.execute(
            "INSERT INTO switch_backups (switch_id, sequence, digest, sealed, received_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (switch_id) DO UPDATE SET sequence = excluded.sequence, digest = excluded.digest,"
            " sealed = excluded.sealed, received_at = excluded.received_at",
            (switch_id, sequence, digest, sealed, now),
        )
        await tx.execute("UPDATE switches SET failure = NULL, failed_at = NULL WHERE id = ?", (switch_id,))
        await self.check_in(tx, switch_id, now)

    async def check_in(self, tx: Transaction, switch_id: str, now: int) -> bool:
        """Restart the switch's clock, arming it again if it was waiting to fire or had failed."""
        changed = await tx.execute(
            "UPDATE switches SET state = 'armed', last_seen_at = ?, credit_seconds = 0, warned_at = NULL,"
            " next_try_at = NULL WHERE id = ? AND state IN ('armed', 'firing', 'failed')",
            (now, switch_id),
        )
        return changed == 1

    async def begin_firing(self, tx: Transaction, switch_id: str, now: int) -> bool:
        """Armed → firing, only if its silence really has run out (a check-in may have come in between)."""
        changed = await tx.execute(
            f"UPDATE switches SET state = 'firing', next_try_at = NULL WHERE id = ? AND state = 'armed'"
            f" AND {_DEADLINE} <= ?",
            (switch_id, now),
        )
        return changed == 1

    async def retry_later(self, tx: Transaction, switch_id: str, reason: str, now: int, next_try_at: int) -> None:
        await tx.execute(
            "UPDATE switches SET failure = ?, failed_at = ?, next_try_at = ? WHERE id = ? AND state = 'firing'",
            (reason, now, next_try_at, switch_id),
        )

    async def fail(self, tx: Transaction, switch_id: str, reason: str, now: int) -> None:
        await tx.execute(
            "UPDATE switches SET state = 'failed', failure = ?, failed_at = ?, next_try_at = NULL"
            " WHERE id = ? AND state = 'firing'",
            (reason, now, switch_id),
        )

    async def mark_fired(
        self, tx: Transaction, switch_id: str, resident_id: str, sealed_receipt: bytes | None, now: int
    ) -> bool:
        """Firing → fired with the resident it became; its backup is deleted in the same transaction."""
        changed = await tx.execute(
            "UPDATE switches SET state = 'fired', resident_id = ?, sealed_receipt = ?, fired_at = ?,"
            " failure = NULL, failed_at = NULL, next_try_at = NULL WHERE id = ? AND state = 'firing'",
            (resident_id, sealed_receipt, now, switch_id),
        )
        if changed == 1:
            await tx.execute("DELETE FROM switch_backups WHERE switch_id = ?", (switch_id,))
        return changed == 1

    async def mark_warned(self, tx: Transaction, switch_ids: list[str], now: int) -> None:
        await tx.execute_many(
            "UPDATE switches SET warned_at = ? WHERE id = ? AND warned_at IS NULL", [(now, i) for i in switch_ids]
        )

    async def delete(self, tx: Transaction, switch_id: str) -> bool:
        await tx.execute("DELETE FROM switch_backups WHERE switch_id = ?", (switch_id,))
        return await tx.execute("DELETE FROM switches WHERE id = ?", (switch_id,)) == 1

    async def record_tick(self, tx: Transaction, now: int, *, credit: int) -> None:
        """Note the watch's look at `now`, crediting `credit` seconds of the node's downtime to armed switches."""
        if credit > 0:
            await tx.execute("UPDATE switches SET credit_seconds = credit_seconds + ? WHERE state = 'armed'", (credit,))
        await tx.execute(
            "INSERT INTO switch_watch (id, last_tick_at) VALUES (1, ?)"
            " ON CONFLICT (id) DO UPDATE SET last_tick_at = excluded.last_tick_at",
            (now,),
        )


def _switch(row: sqlite3.Row) -> SwitchRecord:
    return SwitchRecord(
        id=row["id"],
        state=row["state"],
        receipt_key=bytes(row["receipt_key"]),
        silence_seconds=row["silence_seconds"],
        warn_seconds=row["warn_seconds"],
        persona_name=row["persona_name"],
        submitted_by=row["submitted_by"],
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
        credit_seconds=row["credit_seconds"],
        warned_at=row["warned_at"],
        next_try_at=row["next_try_at"],
        failure=row["failure"],
        failed_at=row["failed_at"],
        resident_id=row["resident_id"],
        sealed_receipt=None if row["sealed_receipt"] is None else bytes(row["sealed_receipt"]),
        fired_at=row["fired_at"],
    )
