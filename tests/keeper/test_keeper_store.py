"""The keeper's SQL store on a real database: the schema and its append-only log, hosts and their contact,
deposits and their destruction (the sealed share wiped), releases once per grant, claims, challenges; and the
replica files beside it (append at the held offset, seal with a level file, proofs, destroy, sweep)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ftm.federation.clock import FakeClock
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog, read_entries, verify_chain
from ftm.federation.identity import SigningKey
from ftm.keeper import merkle
from ftm.keeper.deposits import deposit_record
from ftm.keeper.errors import KeeperError
from ftm.keeper.journal import Journal
from ftm.keeper.replicas import Replicas, host_dir_name
from ftm.keeper.store import STRANGER_GUARDIANS_SQL, ClaimRecord, KeeperStore, keeper_migrations
from tests.keeper.keeperparties import deal_epoch

HOST = SigningKey.generate().public_key
KEEPER = SigningKey.generate()
NOW = 1_800_000_000


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    opened = await Database.open(tmp_path / "keeper.db", keeper_migrations())
    yield opened
    await opened.close()


@pytest.fixture
def store(db: Database) -> KeeperStore:
    return KeeperStore(db)


async def test_the_schema_is_version_2_and_its_log_is_append_only(db: Database) -> None:
    assert await db.schema_version() == 2
    log = EventLog(KEEPER, FakeClock())
    async with db.transaction("test") as tx:
        await log.append(tx, "host_added", "abc", {"via": "manual"})
    for statement in ("UPDATE event_log SET kind = 'x'", "DELETE FROM event_log"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            async with db.transaction("tamper") as tx:
                await tx.execute(statement)
    assert (await verify_chain(db, KEEPER.public_key)).entries == 1


async def test_hosts_are_pinned_touched_and_count_refusals(store: KeeperStore, db: Database) -> None:
    async with db.transaction("t") as tx:
        assert await store.add_host(tx, HOST, "https://a.example", "reg-1", NOW)
        assert not await store.add_host(tx, HOST, "https://b.example", "", NOW + 5)  # moved; registration kept
        await store.touch_host(tx, HOST, NOW + 100)
        await store.touch_host(tx, HOST, NOW + 50)  # never backwards
        await store.count_refusal(tx, HOST)
        await store.count_refusal(tx, HOST)
    host = await store.host(db, HOST)
    assert host is not None
    assert (host.url, host.keeper_id, host.enrolled_at, host.last_heard, host.refusals) == (
        "https://b.example", "reg-1", NOW, NOW + 100, 2,
    )  # fmt: skip
    async with db.transaction("t") as tx:
        assert await store.take_refusals(tx, HOST) == 2
        assert await store.take_refusals(tx, HOST) == 0


async def test_a_destroyed_deposit_keeps_its_facts_but_not_its_share(store: KeeperStore, db: Database) -> None:
    epoch = deal_epoch(KEEPER.public_key, length=100)
    async with db.transaction("t") as tx:
        await store.add_host(tx, HOST, "https://a.example", "", NOW)
        await store.insert_deposit(tx, deposit_record(HOST, epoch.deposit, NOW))
    record = await store.deposit(db, HOST, epoch.resident_id, 1)
    assert record is not None and record.sealed_share == epoch.deposit.sealed_share
    assert record.guardians == () and (await store.latest_deposit(db, epoch.resident_id)) == record
    assert await store.live_residents(db) == 1 and await store.holds_resident(db, epoch.resident_id)
    async with db.transaction("t") as tx:
        await store.mark_held(tx, record, NOW + 1)
        await store.mark_destroyed(tx, record, "rotated", NOW + 2)
    destroyed = await store.deposit(db, HOST, epoch.resident_id, 1)
    assert destroyed is not None
    assert (destroyed.state, destroyed.sealed_share, destroyed.commitments) == ("destroyed", b"", b"")
    assert (destroyed.root, destroyed.length, destroyed.held_at, destroyed.destroy_reason) == (
        epoch.deposit.root, 100, NOW + 1, "rotated",
    )  # fmt: skip
    assert await store.live_residents(db) == 0


async def test_an_epoch_is_released_once_per_grant(store: KeeperStore, db: Database) -> None:
    epoch = deal_epoch(KEEPER.public_key, length=100)
    requester = SigningKey.generate().public_key
    async with db.transaction("t") as tx:
        await store.add_host(tx, HOST, "https://a.example", "", NOW)
        await store.insert_deposit(tx, deposit_record(HOST, epoch.deposit, NOW))
    record = await store.deposit(db, HOST, epoch.resident_id, 1)
    assert record is not None
    first_key, other_key = b"\xe1" * 32, b"\xe2" * 32
    async with db.transaction("t") as tx:
        await store.record_release(tx, record, "run", b"", first_key, HOST, NOW)
        await store.record_release(tx, record, "move", b"c" * 32, other_key, requester, NOW)
    for ephemeral in (first_key, other_key):  # one grant per purpose and claim, whatever the key
        with pytest.raises(sqlite3.IntegrityError):
            async with db.transaction("t") as tx:
                await store.record_release(tx, record, "run", b"", ephemeral, HOST, NOW)
    with pytest.raises(sqlite3.IntegrityError):  # an ephemeral key is 32 bytes
        async with db.transaction("t") as tx:
            await store.record_release(tx, record, "disaster", b"d" * 32, b"short", requester, NOW)
    assert sorted(await store.grants(db, HOST, epoch.resident_id, 1)) == [
        ("move", b"c" * 32, other_key),
        ("run", b"", first_key),
    ]
    assert await store.released_to(db, epoch.resident_id, 1, requester) == HOST
    assert await store.released_to(db, epoch.resident_id, 2, requester) is None


async def test_a_stranger_is_told_from_a_known_key_through_indexes_only(store: KeeperStore, db: Database) -> None:
    guardian_key = SigningKey.generate()
    guardian, requester, stranger = guardian_key.public_key, *(SigningKey.generate().public_key for _ in range(2))
    epoch = deal_epoch(KEEPER.public_key, length=100, guardians=(guardian_key,), guardian_threshold=1)
    async with db.transaction("t") as tx:
        await store.add_host(tx, HOST, "https://a.example", "", NOW)
        await store.insert_deposit(tx, deposit_record(HOST, epoch.deposit, NOW))
    record = await store.deposit(db, HOST, epoch.resident_id, 1)
    assert record is not None
    async with db.transaction("t") as tx:
        await store.record_release(tx, record, "move", b"c" * 32, b"\xe1" * 32, requester, NOW)
    assert [await store.knows(db, key) for key in (HOST, guardian, requester, stranger)] == [True, True, True, False]
    assert not await store.knows(db, guardian[:16] + stranger[16:])  # a byte match that is no whole key

    # A guardian counts while a deposit naming it lives here; once every one is destroyed, it is a stranger.
    async with db.transaction("t") as tx:
        await store.mark_destroyed(tx, record, "rotated", NOW + 1)
    assert not await store.knows(db, guardian) and await store.knows(db, requester)

    plans = [
        " ".join(str(row[3]) for row in await db.fetch_all("EXPLAIN QUERY PLAN " + sql, params))
        for sql, params in [
            ("SELECT 1 FROM releases WHERE requester_key = ?", (requester,)),
            ("SELECT 1 FROM claims WHERE counterpart_key = ?", (requester,)),
            (STRANGER_GUARDIANS_SQL, (guardian,)),
        ]
    ]
    assert "releases_by_requester" in plans[0] and "claims_by_counterpart" in plans[1], plans
    assert "deposits_live" in plans[2], plans


async def test_claims_are_kept_in_order_vetoed_and_cancelled(store: KeeperStore, db: Database) -> None:
    other = SigningKey.generate().public_key

    def claim(claim_id: bytes, kind: str, opened_at: int) -> ClaimRecord:
        return ClaimRecord(
            claim_id, "r1", kind, HOST, other, "https://x", (), opened_at, opened_at + 10, "open", None, None
        )

    async with db.transaction("t") as tx:
        await store.open_claim(tx, claim(b"2" * 32, "move", NOW + 5), b"body", b"sigs")
        await store.open_claim(tx, claim(b"1" * 32, "move", NOW), b"body", b"sigs")
        await store.open_claim(tx, claim(b"3" * 32, "disaster", NOW), b"body", b"sigs")
        await store.veto_claim(tx, b"1" * 32, "r1", other, NOW + 1)
        cancelled = await store.cancel_disasters(tx, HOST, NOW + 2)
    moves = await store.claims_of(db, "r1", "move")
    assert [(c.claim_id[:1], c.state, c.vetoed_by) for c in moves] == [(b"1", "vetoed", other), (b"2", "open", None)]
    assert cancelled == [(b"3" * 32, "r1")]
    assert [c.state for c in await store.claims_of(db, "r1", "disaster")] == ["cancelled"]


async def test_the_journal_logs_refusals_and_counts_them_against_the_host(store: KeeperStore, db: Database) -> None:
    journal = Journal(store, EventLog(KEEPER, FakeClock()))
    async with db.transaction("t") as tx:
        await store.add_host(tx, HOST, "https://a.example", "", NOW)
        assert await journal.contact(tx, HOST, NOW + 10)
        assert not await journal.contact(tx, b"s" * 32, NOW + 10)  # a stranger is no contact
        await journal.refusal(tx, "release_refused", "r1", "not_host", HOST, epoch=3)
    [entry] = await read_entries(db)
    assert (entry.kind, entry.subject, entry.data) == ("release_refused", "r1", {"code": "not_host", "epoch": 3})
    host = await store.host(db, HOST)
    assert host is not None and (host.last_heard, host.refusals) == (NOW + 10, 1)


async def test_replica_files_append_seal_prove_and_go(tmp_path: Path) -> None:
    replicas = Replicas(tmp_path / "replicas")
    vault = deal_epoch(KEEPER.public_key, length=70_000).vault
    await replicas.begin(HOST, "r1", 7)
    assert await replicas.append(HOST, "r1", 7, 0, vault[:40_000]) == 40_000
    with pytest.raises(KeeperError, match="40000 bytes are held") as refused:
        await replicas.append(HOST, "r1", 7, 0, vault[:10])
    assert refused.value.code == "wrong_offset"
    await replicas.append(HOST, "r1", 7, 40_000, vault[40_000:])
    sealed = await replicas.seal(HOST, "r1", 7)
    assert sealed == merkle.MerkleRoot(merkle.merkle_root(vault), len(vault))
    await replicas.keep_levels(HOST, "r1", 7)
    nonce = b"n" * 32
    proof = await replicas.prove(HOST, "r1", 7, nonce, 8, sealed.root, sealed.length)
    merkle.verify_proof(sealed.root, sealed.length, nonce, proof, 8)
    assert await replicas.read(HOST, "r1", 7, 69_990, 100) == vault[69_990:]

    folder = tmp_path / "replicas" / host_dir_name(HOST) / "r1"
    assert sorted(p.name for p in folder.iterdir()) == ["7", "7.levels"]
    (folder / "9").write_bytes(b"left by a crash after a destroy committed")
    assert await replicas.sweep({(host_dir_name(HOST), "r1", 7)}) == 1
    await replicas.destroy(HOST, "r1", 7)
    assert not (tmp_path / "replicas" / host_dir_name(HOST)).exists()


async def test_a_replica_that_lost_its_bytes_cannot_rebuild_a_proof(tmp_path: Path) -> None:
    replicas = Replicas(tmp_path / "replicas")
    vault = deal_epoch(KEEPER.public_key, length=20_000).vault
    await replicas.begin(HOST, "r1", 1)
    await replicas.append(HOST, "r1", 1, 0, vault)
    sealed = await replicas.seal(HOST, "r1", 1)
    await replicas.keep_levels(HOST, "r1", 1)
    path = replicas.path(HOST, "r1", 1)
    replicas.levels_path(HOST, "r1", 1).unlink()
    path.write_bytes(vault[:10_000])  # truncated: a rebuilt level file would bind another root
    with pytest.raises(merkle.ProverError, match="deposited root"):
        await replicas.prove(HOST, "r1", 1, b"n" * 32, 4, sealed.root, sealed.length)
    assert not replicas.levels_path(HOST, "r1", 1).exists()
