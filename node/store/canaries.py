"""SQL for `canaries`: the operator's signed statements, append-only, the newest being the current canary."""

from __future__ import annotations

from dataclasses import dataclass

from ftm.federation.database import Database, Transaction


@dataclass(frozen=True, slots=True)
class CanaryRecord:
    signed_at: int
    statement: str
    signature: bytes


class CanaryStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, tx: Transaction, record: CanaryRecord) -> None:
        await tx.execute(
            "INSERT INTO canaries (signed_at, statement, signature) VALUES (?, ?, ?)",
            (record.signed_at, record.statement, record.signature),
        )

    async def latest(self) -> CanaryRecord | None:
        row = await self._db.fetch_one("SELECT * FROM canaries ORDER BY id DESC LIMIT 1")
        if row is None:
            return None
        return CanaryRecord(signed_at=row["signed_at"], statement=row["statement"], signature=bytes(row["signature"]))
