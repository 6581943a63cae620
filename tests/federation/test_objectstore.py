"""The object store on a real node database: batches in one transaction, lookups, pages, the reconciliation
index, attestations and tombstones."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ftm.federation.clock import FakeClock
from ftm.federation.database import Database, load_migrations
from ftm.federation.events import EventKind, SignedEvent, parse_event
from ftm.federation.identity import SigningKey
from ftm.federation.objectstore import Attestation, NewEvent, ObjectStore, Tombstone
from tests.federation.eventfactories import T0, make_hosting, make_post

RESIDENT = SigningKey(b"\x01" * 32)
OTHER = SigningKey(b"\x04" * 32)
NODE = SigningKey(b"\x02" * 32)
PEER = b"\x09" * 32


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "node.db", load_migrations("ftm.node.store"))
    yield database
    await database.close()


@pytest.fixture
def store(db: Database) -> ObjectStore:
    return ObjectStore(db, FakeClock())


def new(event: SignedEvent, origin: bytes | None = PEER) -> NewEvent:
    parsed = parse_event(event)
    return NewEvent(parsed.id, parsed.body.kind, parsed.body.author, parsed.body.created_at, event, origin)


async def test_node_migrations_create_the_federation_tables(db: Database) -> None:
    names = {row[0] for row in await db.fetch_all("SELECT name FROM sqlite_master")}
    assert {"federation_events", "federation_attestations", "federation_tombstones"} <= names
    assert {"federation_events_by_time", "federation_events_by_author", "federation_events_by_kind"} <= names
    assert await db.schema_version() == len(load_migrations("ftm.node.store")) >= 7


async def test_insert_many_stores_once_in_one_named_transaction(
    store: ObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    posts = [new(make_post(RESIDENT, T0 - i)) for i in range(5)]
    with caplog.at_level(logging.DEBUG, logger="ftm.federation.database"):
        inserted = await store.insert_many([*posts, posts[0]])
    commits = [r for r in caplog.records if getattr(r, "transaction", None) == "federation_insert_events"]
    assert len(commits) == 1 and commits[0].getMessage() == "transaction committed"
    assert inserted == {p.id for p in posts}
    again = await store.insert_many([posts[1], new(make_post(RESIDENT, T0 - 10))])
    assert len(again) == 1 and posts[1].id not in again
    assert await store.count() == 6


async def test_lookups_by_id(store: ObjectStore) -> None:
    posts = [new(make_post(RESIDENT, T0 - i)) for i in range(3)]
    await store.insert_many(posts)
    missing = b"\x00" * 32
    assert await store.has(posts[0].id) and not await store.has(missing)
    assert await store.has_many([p.id for p in posts] + [missing]) == {p.id for p in posts}
    fetched = await store.fetch([posts[2].id, missing, posts[0].id, posts[2].id])
    assert [f.id for f in fetched] == [posts[2].id, posts[0].id]
    first = fetched[1]
    assert first.signed == posts[0].event and first.origin == PEER and first.received_at == T0
    assert (first.kind, first.author, first.created_at) == (EventKind.POST, RESIDENT.public_key, T0)


async def test_has_many_and_fetch_take_more_ids_than_one_query_holds(store: ObjectStore) -> None:
    posts = [new(make_post(RESIDENT, T0 - i)) for i in range(1200)]
    assert len(await store.insert_many(posts)) == 1200
    ids = [p.id for p in posts]
    assert await store.has_many(ids) == set(ids)
    assert len(await store.fetch(ids)) == 1200


async def test_pages_in_created_at_then_id_order_with_filters(store: ObjectStore) -> None:
    events = [new(make_post(RESIDENT, T0 - i // 2, markdown=f"post {i}")) for i in range(7)]  # pairs share a time
    events.append(new(make_post(OTHER, T0 - 1)))
    events.append(new(make_hosting(NODE, RESIDENT, T0 - 2)))
    await store.insert_many(events)
    expected = sorted(((e.created_at, e.id) for e in events), reverse=True)
    seen: list[tuple[int, bytes]] = []
    cursor = None
    for _ in range(10):
        page = await store.page(2, cursor=cursor)
        if not page:
            break
        seen.extend((p.created_at, p.id) for p in page)
        cursor = (page[-1].created_at, page[-1].id)
    assert seen == expected
    oldest = await store.page(3, newest_first=False)
    assert [(p.created_at, p.id) for p in oldest] == sorted(expected)[:3]
    mine = await store.page(100, author=RESIDENT.public_key, kind=EventKind.POST)
    assert len(mine) == 7 and all(p.author == RESIDENT.public_key for p in mine)
    hosting = await store.page(100, kind=EventKind.HOSTING)
    assert [p.author for p in hosting] == [NODE.public_key]
    after_cursor = await store.page(100, author=RESIDENT.public_key, cursor=(mine[2].created_at, mine[2].id))
    assert [p.id for p in after_cursor] == [p.id for p in mine[3:]]


async def test_index_items_lists_every_pair_in_order_across_pages(store: ObjectStore) -> None:
    events = [new(make_post(RESIDENT, T0 - (i % 4), markdown=f"post {i}")) for i in range(11)]
    await store.insert_many(events)
    items = [item async for item in store.index_items(page_size=3)]
    assert items == sorted((e.created_at, e.id) for e in events)
    assert [item async for item in store.index_items(page_size=11)] == items


async def test_attestations_keep_the_latest_per_node(store: ObjectStore) -> None:
    old, newer = new(make_hosting(NODE, RESIDENT, T0 - 100)), new(make_hosting(NODE, RESIDENT, T0 - 10))
    other_node = new(make_hosting(OTHER, RESIDENT, T0 - 50))

    def attestation(event: NewEvent, node: SigningKey, url: str) -> Attestation:
        return Attestation(RESIDENT.public_key, node.public_key, url, event.created_at, event.id)

    await store.insert_many([newer], [attestation(newer, NODE, "https://new.example")])
    await store.insert_many(
        [old, other_node],
        [attestation(old, NODE, "https://old.example"), attestation(other_node, OTHER, "https://other.example")],
    )
    found = await store.attestations(RESIDENT.public_key)
    assert [(a.node_key, a.node_url) for a in found] == [
        (NODE.public_key, "https://new.example"),
        (OTHER.public_key, "https://other.example"),
    ]
    assert await store.attesting_nodes([RESIDENT.public_key, NODE.public_key]) == {
        RESIDENT.public_key: {NODE.public_key, OTHER.public_key}
    }
    # an attestation whose event was already stored (a duplicate) is not recorded again
    await store.insert_many([newer], [attestation(newer, OTHER, "https://never.example")])
    assert "https://never.example" not in {a.node_url for a in await store.attestations(RESIDENT.public_key)}


async def test_tombstone_drops_earlier_posts_content_and_the_earliest_counts(store: ObjectStore) -> None:
    before = [new(make_post(RESIDENT, T0 - 100 + i)) for i in range(3)]
    later = new(make_post(RESIDENT, T0 - 10))
    others = new(make_post(OTHER, T0 - 100))
    await store.insert_many([*before, later, others])
    tombstone = new(make_post(NODE, T0 - 50))  # any event can carry the tombstone record in this test
    await store.insert_many([tombstone], tombstones=[Tombstone(RESIDENT.public_key, T0 - 50, tombstone.id)])
    stored = {e.id: e for e in await store.fetch([e.id for e in [*before, later, others]])}
    assert all(stored[e.id].content is None for e in before)
    assert stored[later.id].content is not None and stored[others.id].content is not None
    assert await store.tombstones([RESIDENT.public_key, OTHER.public_key]) == {RESIDENT.public_key: T0 - 50}
    earlier = new(make_post(NODE, T0 - 70))
    await store.insert_many([earlier], tombstones=[Tombstone(RESIDENT.public_key, T0 - 70, earlier.id)])
    later_still = new(make_post(NODE, T0 - 5))
    await store.insert_many([later_still], tombstones=[Tombstone(RESIDENT.public_key, T0 - 5, later_still.id)])
    assert await store.tombstones([RESIDENT.public_key]) == {RESIDENT.public_key: T0 - 70}


async def test_drop_content_keeps_the_event(store: ObjectStore) -> None:
    post = new(make_post(RESIDENT))
    await store.insert_many([post])
    assert await store.drop_content([post.id]) == 1
    assert await store.drop_content([post.id]) == 0
    (stored,) = await store.fetch([post.id])
    assert stored.content is None and stored.body == post.event.body and stored.signature == post.event.signature
