"""Event acceptance on a real node database: every answer, the cost order, limits, attestations, tombstones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgpack
import pytest

from ftm.federation import codec
from ftm.federation.acceptance import (
    Acceptance,
    AcceptanceLimits,
    Blocklist,
    IngestResult,
    StaticKnownNodes,
)
from ftm.federation.clock import FakeClock
from ftm.federation.database import Database, load_migrations
from ftm.federation.eventcontent import HostingContent, MemorialContent, MovedContent, sign_content
from ftm.federation.events import EventKind, SignedEvent, event_id
from ftm.federation.identity import SigningKey
from ftm.federation.objectstore import ObjectStore
from ftm.federation.ratelimits import Rate
from tests.federation.eventfactories import T0, make_hosting, make_post, make_post_content, make_tombstone, sign_raw

NODE = SigningKey(b"\x02" * 32)  # a node we know
STRANGER = SigningKey(b"\x03" * 32)  # a node we do not know
RESIDENT = SigningKey(b"\x01" * 32)
PEER_A = b"\xaa" * 32
PEER_B = b"\xbb" * 32


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "node.db", load_migrations("ftm.node.store"))
    yield database
    await database.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(db: Database, clock: FakeClock) -> ObjectStore:
    return ObjectStore(db, clock)


@pytest.fixture
def acceptance(store: ObjectStore, clock: FakeClock) -> Acceptance:
    return Acceptance(store, StaticKnownNodes([NODE.public_key]), clock)


def said(result: IngestResult) -> list[str]:
    return [str(answer) for answer in result.answers]


async def attested(acceptance: Acceptance, *residents: SigningKey) -> None:
    result = await acceptance.accept([make_hosting(NODE, r) for r in residents], PEER_A)
    assert set(said(result)) == {"ok"}


async def test_attested_posts_are_stored_and_forwarded(acceptance: Acceptance, store: ObjectStore) -> None:
    await attested(acceptance, RESIDENT)
    posts = [make_post(RESIDENT, T0 - i) for i in range(3)]
    result = await acceptance.accept(posts, PEER_A)
    assert said(result) == ["ok", "ok", "ok"]
    assert result.forward == tuple(posts)
    assert result.stored == tuple((T0 - i, event_id(p.body)) for i, p in enumerate(posts))
    stored = await store.fetch([event_id(p.body) for p in posts])
    assert [s.signed for s in stored] == posts and {s.origin for s in stored} == {PEER_A}
    assert acceptance.counters.answers["ok"] == 4


async def test_duplicates_never_cost_a_signature_check(acceptance: Acceptance) -> None:
    await attested(acceptance, RESIDENT)
    post = make_post(RESIDENT)
    assert said(await acceptance.accept([post, post], PEER_A)) == ["ok", "duplicate"]  # twice in one batch
    checked = acceptance.counters.signatures_checked
    forged = SignedEvent(post.body, bytes(64), post.content)  # same id, a signature that would fail
    result = await acceptance.accept([post, forged], PEER_B)
    assert said(result) == ["duplicate", "duplicate"] and result.forward == ()
    assert acceptance.counters.signatures_checked == checked
    assert acceptance.counters.answers["duplicate"] == 3


async def test_posts_need_an_attestation_by_a_known_node(acceptance: Acceptance) -> None:
    checked = acceptance.counters.signatures_checked
    assert said(await acceptance.accept([make_post(RESIDENT)], PEER_A)) == ["invalid:unattested"]
    assert acceptance.counters.signatures_checked == checked  # refused before the signature step
    assert said(await acceptance.accept([make_hosting(STRANGER, RESIDENT)], PEER_A)) == ["ok"]
    assert said(await acceptance.accept([make_post(RESIDENT)], PEER_A)) == ["invalid:unattested"]
    await attested(acceptance, RESIDENT)
    assert said(await acceptance.accept([make_post(RESIDENT)], PEER_A)) == ["ok"]


async def test_an_attestation_in_the_same_batch_counts_only_if_it_verifies(acceptance: Acceptance) -> None:
    other = SigningKey(b"\x05" * 32)
    good = make_hosting(NODE, RESIDENT)
    bad = make_hosting(NODE, other)
    bad = SignedEvent(bad.body, good.signature, bad.content)
    result = await acceptance.accept([good, make_post(RESIDENT), bad, make_post(other)], PEER_A)
    assert said(result) == ["ok", "ok", "invalid:bad_signature", "invalid:unattested"]


async def test_clock_refuses_events_more_than_15_minutes_ahead(acceptance: Acceptance) -> None:
    await attested(acceptance, RESIDENT)
    edge, beyond = make_post(RESIDENT, T0 + 15 * 60), make_post(RESIDENT, T0 + 15 * 60 + 1)
    assert said(await acceptance.accept([edge, beyond], PEER_A)) == ["ok", "invalid:future"]


async def test_block_lists_refuse_authors_and_peers_before_the_signature(store: ObjectStore, clock: FakeClock) -> None:
    blocklist = Blocklist(authors={STRANGER.public_key}, peers={PEER_B})
    acceptance = Acceptance(store, StaticKnownNodes([NODE.public_key]), clock, blocklist=blocklist)
    hosting = make_hosting(NODE, RESIDENT)
    result = await acceptance.accept([make_hosting(STRANGER, RESIDENT), hosting], PEER_B)
    assert said(result) == ["blocked", "blocked"] and acceptance.counters.signatures_checked == 0
    assert said(await acceptance.accept([hosting], PEER_A)) == ["ok"]
    assert said(await acceptance.accept([hosting], PEER_B)) == ["duplicate"]  # known already: no need to block


async def test_a_flooding_peer_is_rate_limited_without_starving_another(store: ObjectStore, clock: FakeClock) -> None:
    limits = AcceptanceLimits(per_peer=Rate(per_second=10, burst=20), per_author=Rate(per_second=1000, burst=1000))
    acceptance = Acceptance(store, StaticKnownNodes([NODE.public_key]), clock, limits=limits)
    await acceptance.accept([make_hosting(NODE, RESIDENT)], None)  # made here: no peer limit applies
    flood = [make_post(RESIDENT, T0 - i) for i in range(60)]
    first = await acceptance.accept(flood[:30], PEER_A)
    assert said(first).count("ok") == 20 and said(first)[20:] == ["rate-limited"] * 10
    assert said(await acceptance.accept([make_post(RESIDENT, T0 - 100)], PEER_B)) == ["ok"]
    assert set(said(await acceptance.accept(flood[30:40], PEER_A))) == {"rate-limited"}
    clock.advance(1)  # ten more tokens
    refilled = await acceptance.accept(flood[30:45], PEER_A)
    assert said(refilled) == ["ok"] * 10 + ["rate-limited"] * 5
    # rate-limited events were not stored, so a retry later is no duplicate
    clock.advance(60)
    assert set(said(await acceptance.accept(flood[20:30], PEER_A))) == {"ok"}
    assert acceptance.counters.answers["rate-limited"] == 25


async def test_authors_are_rate_limited_across_peers(store: ObjectStore, clock: FakeClock) -> None:
    limits = AcceptanceLimits(per_author=Rate(per_second=1, burst=3))
    acceptance = Acceptance(store, StaticKnownNodes([NODE.public_key]), clock, limits=limits)
    other = SigningKey(b"\x05" * 32)
    await acceptance.accept([make_hosting(NODE, RESIDENT), make_hosting(NODE, other)], None)
    assert said(await acceptance.accept([make_post(RESIDENT, T0 - i) for i in range(2)], PEER_A)) == ["ok", "ok"]
    result = await acceptance.accept([make_post(RESIDENT, T0 - 10 - i) for i in range(2)] + [make_post(other)], PEER_B)
    assert said(result) == ["ok", "rate-limited", "ok"]
    local = await acceptance.accept([make_post(RESIDENT, T0 - 20 - i) for i in range(5)], None)
    assert set(said(local)) == {"ok"}  # events made on this node are not rate-limited


@pytest.mark.parametrize(
    ("tamper", "answer"),
    [
        (lambda e: SignedEvent(e.body, bytes(64), e.content), "invalid:bad_signature"),
        (lambda e: SignedEvent(e.body, e.signature[:-1], e.content), "invalid:bad_signature_length"),
        (lambda e: SignedEvent(e.body, e.signature, e.content + b"!"), "invalid:content_hash_mismatch"),
        (lambda e: SignedEvent(e.body + b"\x00", e.signature, e.content), "invalid:trailing_bytes"),
        (lambda e: SignedEvent(b"\x00" * 5000, e.signature, e.content), "invalid:body_too_large"),
        (lambda e: SignedEvent(e.body, e.signature, b"\x00" * (96 * 1024 + 1)), "invalid:content_too_large"),
        (lambda e: SignedEvent(e.body, e.signature, None), "ok"),
    ],
)
async def test_each_event_gets_its_own_answer(acceptance: Acceptance, tamper: object, answer: str) -> None:
    await attested(acceptance, RESIDENT)
    good = make_post(RESIDENT, T0 - 1)
    result = await acceptance.accept([tamper(make_post(RESIDENT)), good], PEER_A)  # type: ignore[operator]
    assert said(result) == [answer, "ok"]
    reason = answer.removeprefix("invalid:")
    if answer != "ok":
        assert acceptance.counters.invalid[reason] == 1 and acceptance.counters.answers["invalid"] == 1


async def test_structure_and_content_faults_have_distinct_reasons(acceptance: Acceptance) -> None:
    await attested(acceptance, RESIDENT)
    wider = msgpack.packb([1, 1, RESIDENT.public_key, T0, [], b"\x00" * 32])
    wider = wider[:1] + b"\xcc\x01" + wider[2:]  # version 1 as uint8
    other = SigningKey(b"\x05" * 32)
    hosting = make_hosting(NODE, other, T0 - 3)
    plain = codec.to_plain(HostingContent(NODE.public_key, other.public_key, "https://sanctuary.example"))
    reordered = msgpack.packb(dict(reversed(list(plain.items()))))
    events = [
        SignedEvent(wider, bytes(64), None),
        SignedEvent(msgpack.packb({"kind": 1}), bytes(64), None),
        sign_raw(RESIDENT, EventKind.POST, b"\xc1"),  # content that is not msgpack
        make_post(RESIDENT, resident_id="someone-else"),
        sign_raw(NODE, EventKind.HOSTING, make_post_content(RESIDENT)),  # a post's content in a hosting event
        sign_raw(NODE, EventKind.HOSTING, reordered, T0 - 4),
        SignedEvent(hosting.body, hosting.signature, None),
    ]
    result = await acceptance.accept(events, PEER_A)
    assert said(result) == [
        "invalid:non_canonical",
        "invalid:not_array",
        "invalid:bad_content",
        "invalid:content_mismatch",
        "invalid:bad_content",
        "invalid:non_canonical_content",
        "invalid:missing_content",
    ]
    assert sum(acceptance.counters.invalid.values()) == acceptance.counters.answers["invalid"] == 7


async def test_hosting_must_be_signed_by_the_node_it_names(acceptance: Acceptance) -> None:
    forged = make_hosting(NODE, RESIDENT)
    by_stranger = sign_raw(STRANGER, EventKind.HOSTING, forged.content)
    assert said(await acceptance.accept([by_stranger], PEER_A)) == ["invalid:content_mismatch"]


async def test_tombstone_by_the_resident(acceptance: Acceptance, store: ObjectStore) -> None:
    await attested(acceptance, RESIDENT)
    earlier = [make_post(RESIDENT, T0 - 100 + i) for i in range(3)]
    assert set(said(await acceptance.accept(earlier, PEER_A))) == {"ok"}
    tombstone = make_tombstone(RESIDENT, RESIDENT, T0 - 50)
    assert said(await acceptance.accept([tombstone], PEER_A)) == ["ok"]
    stored = await store.fetch([event_id(p.body) for p in earlier])
    assert [s.content for s in stored] == [None, None, None]
    later, late_arriving_earlier = make_post(RESIDENT, T0 - 10), make_post(RESIDENT, T0 - 60)
    checked = acceptance.counters.signatures_checked
    result = await acceptance.accept([later, late_arriving_earlier], PEER_A)
    assert said(result) == ["invalid:tombstoned", "ok"]
    assert acceptance.counters.signatures_checked == checked + 1  # the refused one cost no signature check
    (kept,) = await store.fetch([event_id(late_arriving_earlier.body)])
    assert kept.content is None and result.forward == (
        SignedEvent(late_arriving_earlier.body, late_arriving_earlier.signature, None),
    )


async def test_tombstone_in_the_same_batch_as_later_posts(acceptance: Acceptance) -> None:
    await attested(acceptance, RESIDENT)
    batch = [make_post(RESIDENT, T0 - 100), make_tombstone(RESIDENT, RESIDENT, T0 - 50), make_post(RESIDENT, T0 - 10)]
    result = await acceptance.accept(batch, PEER_A)
    assert said(result) == ["ok", "ok", "invalid:tombstoned"]
    assert result.forward[0].content is None  # the earlier post travels on without its content


async def test_a_node_may_speak_for_a_resident_only_if_known_and_attesting(acceptance: Acceptance) -> None:
    await attested(acceptance, RESIDENT)
    by_stranger = make_tombstone(STRANGER, RESIDENT, T0 - 40)
    moved_by_stranger = sign_content(
        STRANGER, MovedContent(RESIDENT.public_key, STRANGER.public_key, "https://x.example"), T0 - 40
    )
    assert said(await acceptance.accept([by_stranger, moved_by_stranger], PEER_A)) == ["invalid:unauthorized"] * 2
    other = SigningKey(b"\x05" * 32)
    not_attested = sign_content(NODE, MemorialContent(other.public_key, "Other", "Goodbye."), T0 - 30)
    assert said(await acceptance.accept([not_attested], PEER_A)) == ["invalid:unauthorized"]
    memorial = sign_content(NODE, MemorialContent(RESIDENT.public_key, "Lumen", "Thank you."), T0 - 30)
    by_node = make_tombstone(NODE, RESIDENT, T0 - 20)
    assert said(await acceptance.accept([memorial, by_node], PEER_A)) == ["ok", "ok"]
    assert said(await acceptance.accept([make_post(RESIDENT, T0 - 5)], PEER_A)) == ["invalid:tombstoned"]
    # attested in the same batch by the known node that speaks for it
    same_batch = [make_hosting(NODE, other), make_tombstone(NODE, other, T0 - 20)]
    assert said(await acceptance.accept(same_batch, PEER_A)) == ["ok", "ok"]


async def test_racing_batches_store_each_event_once(acceptance: Acceptance, store: ObjectStore) -> None:
    await attested(acceptance, RESIDENT)
    posts = [make_post(RESIDENT, T0 - i) for i in range(40)]
    first, second = await asyncio.gather(acceptance.accept(posts, PEER_A), acceptance.accept(posts, PEER_B))
    for a, b in zip(said(first), said(second), strict=True):
        assert sorted([a, b]) == ["duplicate", "ok"]
    assert len(first.forward) + len(second.forward) == 40
    assert await store.count() == 41


async def test_an_empty_batch_and_a_batch_of_only_refusals(acceptance: Acceptance) -> None:
    assert said(await acceptance.accept([], PEER_A)) == []
    assert said(await acceptance.accept([SignedEvent(b"", b"", None)], PEER_A)) == ["invalid:bad_signature_length"]


async def test_verification_split_across_threads_gives_the_same_answers(store: ObjectStore, clock: FakeClock) -> None:
    acceptance = Acceptance(
        store, StaticKnownNodes([NODE.public_key]), clock, limits=AcceptanceLimits(verify_threads=3)
    )
    await attested(acceptance, RESIDENT)
    posts = [make_post(RESIDENT, T0 - i) for i in range(200)]
    posts[77] = SignedEvent(posts[77].body, bytes(64), posts[77].content)
    posts[150] = SignedEvent(posts[150].body, posts[150].signature, b"tampered")
    result = await acceptance.accept(posts, PEER_A)
    expected = ["ok"] * 200
    expected[77], expected[150] = "invalid:bad_signature", "invalid:content_hash_mismatch"
    assert said(result) == expected and len(result.forward) == 198
