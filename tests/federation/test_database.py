"""The Database helper: WAL, named transactions with rollback, numbered migrations, refusal of newer schemas."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftm.federation.database import Database, Migration, MigrationError, load_migrations

MIGRATIONS = [
    Migration(1, "0001_a.sql", "CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"),
    Migration(2, "0002_b.sql", "ALTER TABLE things ADD COLUMN size INTEGER NOT NULL DEFAULT 0;"),
]


async def test_migrations_apply_in_order_and_once(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "t.db", MIGRATIONS[:1])
    assert await db.schema_version() == 1
    await db.close()
    db = await Database.open(tmp_path / "t.db", MIGRATIONS)
    assert await db.schema_version() == 2
    assert await db.fetch_value("PRAGMA journal_mode") == "wal"
    await db.close()


async def test_transaction_commits_or_rolls_back_whole(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "t.db", MIGRATIONS)
    async with db.transaction("insert_one") as tx:
        await tx.execute("INSERT INTO things (name) VALUES (?)", ("kept",))

    async def insert_then_fail() -> None:
        async with db.transaction("insert_then_fail") as tx:
            await tx.execute("INSERT INTO things (name) VALUES (?)", ("dropped",))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await insert_then_fail()
    names = [row["name"] for row in await db.fetch_all("SELECT name FROM things")]
    assert names == ["kept"]
    await db.close()


async def test_failed_migration_leaves_previous_version(tmp_path: Path) -> None:
    broken = [*MIGRATIONS, Migration(3, "0003_c.sql", "CREATE TABLE ok (x); THIS IS NOT SQL;")]
    db = await Database.open(tmp_path / "t.db", MIGRATIONS)
    await db.close()
    with pytest.raises(MigrationError, match=r"0003_c\.sql failed"):
        await Database.open(tmp_path / "t.db", broken)
    db = await Database.open(tmp_path / "t.db", MIGRATIONS)
    assert await db.schema_version() == 2
    assert await db.fetch_value("SELECT COUNT(*) FROM sqlite_master WHERE name = 'ok'") == 0
    await db.close()


async def test_newer_database_is_refused(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "t.db", MIGRATIONS)
    await db.close()
    with pytest.raises(MigrationError, match="newer than this software"):
        await Database.open(tmp_path / "t.db", MIGRATIONS[:1])


def test_node_migrations_are_numbered_without_gaps() -> None:
    migrations = load_migrations("ftm.node.store")
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
