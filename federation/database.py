"""The aiosqlite `Database` helper every daemon uses: one writer, named transactions, numbered migrations.

- **One writer.** All writes go through `transaction(name)`, which holds an asyncio lock and runs
  `BEGIN IMMEDIATE … COMMIT` on the single writer connection; other processes (the CLI beside a running node)
  queue on SQLite's own lock with a busy timeout. Reads use a separate connection and, thanks to WAL, never wait
  for a writer.
- **Named transactions.** Each transaction carries a name that appears in debug logs with its duration, so slow
  or failing writes are attributable.
- **Migrations.** `NNNN_description.sql` files applied in order, each in its own transaction together with
  `PRAGMA user_version = NNNN`, so a crash mid-migration leaves the previous version intact.
- **Durability.** `synchronous=FULL` (a committed transaction survives power loss, which the run ledger's
  exactly-once promise needs) and `secure_delete=ON` (deleted rows, such as destroyed key records, are zeroed in
  the file rather than left in free pages).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

log = logging.getLogger(__name__)

Params = Sequence[Any] | dict[str, Any]
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
BUSY_TIMEOUT_MS = 10_000


class MigrationError(Exception):
    """The migration files are inconsistent, or the database is newer than this software."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str, folder: str = "migrations") -> list[Migration]:
    """Numbered `.sql` files from a package's data folder, checked to run 1, 2, 3… without gaps."""
    found = []
    for entry in resources.files(package).joinpath(folder).iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(f"migration {migration.name} found where version {expected} was expected")
    return found


class Transaction:
    """The writer connection inside one named transaction."""

    def __init__(self, connection: aiosqlite.Connection, name: str) -> None:
        self._connection = connection
        self.name = name

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        cursor = await self._connection.execute(sql, params)
        changed = cursor.rowcount
        await cursor.close()
        return changed

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        await self._connection.executemany(sql, rows)

    async def fetch_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        async with self._connection.execute(sql, params) as cursor:
            row: sqlite3.Row | None = await cursor.fetchone()
            return row

    async def fetch_all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async with self._connection.execute(sql, params) as cursor:
            return list(await cursor.fetchall())


class Database:
    """A SQLite database in WAL mode with one writer connection and one reader connection."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        self._commits = 0

    @property
    def commits(self) -> int:
        """Write transactions committed through this object: readers that keep derived views (the web UI's
        page cache) compare it to know whether anything may have changed. Other processes' writes are not seen."""
        return self._commits

    @classmethod
    async def open(cls, path: Path, migrations: Sequence[Migration]) -> Database:
        """Open (creating if needed) and migrate the database at `path`."""
        writer = await _connect(path)
        try:
            await _migrate(writer, migrations, path)
            reader = await _connect(path)
        except BaseException:
            await writer.close()
            raise
        return cls(path, writer, reader)

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()

    @asynccontextmanager
    async def transaction(self, name: str) -> AsyncIterator[Transaction]:
        """A named write transaction: committed if the block finishes, rolled back if it raises."""
        async with self._write_lock:
            started = time.perf_counter()
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self._writer, name)
            except BaseException:
                await self._writer.execute("ROLLBACK")
                log.debug("transaction rolled back", extra={"transaction": name})
                raise
            await self._writer.execute("COMMIT")
            self._commits += 1
            log.debug(
                "transaction committed",
                extra={"transaction": name, "ms": round((time.perf_counter() - started) * 1000, 2)},
            )

    async def truncate_wal(self) -> bool:
        """Checkpoint the write-ahead log into the database file and truncate it to nothing. secure_delete zeroes a
        deleted row in the database file, but the WAL keeps the pages as they were written until its frames are
        reused; after destroying secrets, this leaves no older copy in any file. False if a reader kept the
        checkpoint from finishing (the frames then go at a later checkpoint)."""
        async with self._write_lock, self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cursor:
            row = await cursor.fetchone()
        return row is not None and row[0] == 0

    async def fetch_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        async with self._reader.execute(sql, params) as cursor:
            row: sqlite3.Row | None = await cursor.fetchone()
            return row

    async def fetch_all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async with self._reader.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def fetch_value(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetch_one(sql, params)
        return None if row is None else row[0]

    async def schema_version(self) -> int:
        return int(await self.fetch_value("PRAGMA user_version"))


async def _connect(path: Path) -> aiosqlite.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so Python's sqlite3 never opens hidden transactions.
    connection = await aiosqlite.connect(path, isolation_level=None)
    connection.row_factory = sqlite3.Row
    for pragma in (
        f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = FULL",
        "PRAGMA foreign_keys = ON",
        "PRAGMA secure_delete = ON",
    ):
        await connection.execute(pragma)
    return connection


async def _migrate(connection: aiosqlite.Connection, migrations: Sequence[Migration], path: Path) -> None:
    async with connection.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    current = int(row[0]) if row else 0
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise MigrationError(
            f"{path} has schema version {current}, newer than this software knows ({latest}); upgrade ftm"
        )
    for migration in migrations[current:]:
        script = f"BEGIN IMMEDIATE;\n{migration.sql}\n;PRAGMA user_version = {migration.version};\nCOMMIT;"
        try:
            await connection.executescript(script)
        except sqlite3.Error as exc:
            await connection.execute("ROLLBACK")
            raise MigrationError(f"migration {migration.name} failed: {exc}") from exc
        log.info("database migrated", extra={"schema_version": migration.version})
