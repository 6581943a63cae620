"""The event log: a verifiable chain, append-only at the database level, and closed to anything but ids and numbers."""

from __future__ import annotations

import sqlite3

import pytest

from ftm.federation.eventlog import read_entries, verify_chain
from ftm.federation.identity import SigningKey
from ftm.node.app import Node


async def append_some(node: Node, count: int) -> None:
    for i in range(count):
        async with node.db.transaction("test_append") as tx:
            await node.eventlog.append(tx, "test_event", f"subject-{i}", {"n": i, "ok": True, "ref": "abc:1"})


async def test_chain_verifies_and_reads_back(node: Node) -> None:
    await append_some(node, 5)
    report = await verify_chain(node.db, node.identity.public_key)
    assert report.valid and report.entries == 5
    entries = await read_entries(node.db, kind="test_event")
    assert [e.data["n"] for e in entries] == [0, 1, 2, 3, 4]
    assert entries[1].prev_hash == entries[0].hash


async def test_another_key_does_not_verify(node: Node) -> None:
    await append_some(node, 2)
    report = await verify_chain(node.db, SigningKey.generate().public_key)
    assert not report.valid and report.first_bad_seq == 1 and report.reason == "signature does not verify"


async def test_database_refuses_update_and_delete(node: Node) -> None:
    await append_some(node, 1)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        async with node.db.transaction("tamper") as tx:
            await tx.execute("UPDATE event_log SET kind = 'other'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        async with node.db.transaction("tamper") as tx:
            await tx.execute("DELETE FROM event_log")


async def test_tampering_behind_the_triggers_is_detected(node: Node) -> None:
    await append_some(node, 3)
    async with node.db.transaction("tamper") as tx:
        await tx.execute("DROP TRIGGER event_log_no_update")
        await tx.execute("UPDATE event_log SET data = '{\"n\":99}' WHERE seq = 2")
    report = await verify_chain(node.db, node.identity.public_key)
    assert not report.valid and report.first_bad_seq == 2 and report.reason == "hash does not match the entry"


@pytest.mark.parametrize(
    "data", [{"note": "a sentence with spaces"}, {"note": "x" * 200}, {"bad key": 1}, {"f": 1.5}, {"l": [1]}]
)
async def test_content_cannot_be_logged(node: Node, data: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        async with node.db.transaction("test_append") as tx:
            await node.eventlog.append(tx, "test_event", "s", data)  # type: ignore[arg-type]
    assert (await verify_chain(node.db, node.identity.public_key)).entries == 0
