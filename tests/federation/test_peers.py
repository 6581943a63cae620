"""The peer table (pinning, candidates, bounds, persistence) and peer exchange between real nodes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ftm.federation.clock import FakeClock
from ftm.federation.database import Database, load_migrations
from ftm.federation.peers import KeyPinned, PeerLimits, PeerSource, PeerStore
from tests.federation.conftest import MakeGrid

OWN = b"\x01" * 32
A, B, C = b"\xaa" * 32, b"\xbb" * 32, b"\xcc" * 32


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "node.db", load_migrations("ftm.node.store"))
    yield database
    await database.close()


async def test_a_bootstrap_url_pins_the_first_key_that_answers(db: Database, clock: FakeClock) -> None:
    peers = await PeerStore.open(db, clock, OWN)
    assert await peers.add_bootstrap(["http://127.0.0.1:8001/"]) == ["http://127.0.0.1:8001"]
    assert await peers.known_node_keys(frozenset({A, OWN})) == {OWN}
    await peers.record_verified("http://127.0.0.1:8001", A, PeerSource.BOOTSTRAP)
    assert await peers.known_node_keys(frozenset({A, B, OWN})) == {A, OWN}
    with pytest.raises(KeyPinned):
        await peers.record_verified("http://127.0.0.1:8001", B, PeerSource.BOOTSTRAP)
    with pytest.raises(ValueError, match="own peer"):
        await peers.record_verified("http://127.0.0.1:8002", OWN, PeerSource.INBOUND)
    # A verified key that proves itself at a new URL moves there, keeping where we first learnt it.
    await peers.record_verified("http://127.0.0.1:9001", A, PeerSource.INBOUND)
    record = peers.by_key(A)
    assert record is not None and record.url == "http://127.0.0.1:9001" and record.source is PeerSource.BOOTSTRAP
    assert peers.get("http://127.0.0.1:8001") is None
    reopened = await PeerStore.open(db, clock, OWN)
    assert [(r.url, r.node_key, r.verified) for r in reopened.records()] == [("http://127.0.0.1:9001", A, True)]


async def test_candidates_are_bounded_and_dropped_after_failures(db: Database, clock: FakeClock) -> None:
    peers = await PeerStore.open(db, clock, OWN, PeerLimits(max_peers=10, max_candidates=2))
    added = await peers.add_candidates(
        [(A, "http://a.example"), (B, "http://b.example"), (OWN, "http://me.example"), (C, "not a url")],
        PeerSource.EXCHANGE,
    )
    assert [row.node_key for row in added] == [A, B]
    clock.advance(1)
    await peers.add_candidates([(C, "http://c.example")], PeerSource.MDNS)
    assert {row.node_key for row in peers.records()} == {B, C}  # the least recently seen gave way
    assert not peers.is_verified(C)
    for _ in range(3):
        await peers.record_failure("http://c.example")
    assert peers.by_key(C) is None
    # A claim about a key we know already is ignored: only the node itself may move its key.
    await peers.record_verified("http://b.example", B, PeerSource.EXCHANGE)
    assert await peers.add_candidates([(B, "http://evil.example")], PeerSource.EXCHANGE) == []


async def test_recent_peers_are_offered_in_exchange(db: Database, clock: FakeClock) -> None:
    peers = await PeerStore.open(db, clock, OWN, PeerLimits(recent_seconds=3600))
    await peers.record_verified("http://a.example", A, PeerSource.BOOTSTRAP)
    clock.advance(7200)
    await peers.record_verified("http://b.example", B, PeerSource.BOOTSTRAP)
    assert [entry.node_key for entry in peers.recent()] == [B]
    assert peers.recent(exclude=B) == ()


async def test_peer_exchange_learns_a_third_node(grid: MakeGrid) -> None:
    nodes = await grid(0)
    first = await nodes.add()
    second = await nodes.add(bootstrap=[0])
    third = await nodes.add(bootstrap=[1])
    assert first.net.peers.by_key(third.public_key) is None
    link = first.net.peers.by_key(second.public_key)
    assert link is not None and link.address is not None
    assert await first.net.membership.exchange(link.address) == 1
    candidate = first.net.peers.by_key(third.public_key)
    assert candidate is not None and not candidate.verified and candidate.source is PeerSource.EXCHANGE
    verified = await first.net.membership.verify_candidates()
    assert [address.node_key for address in verified] == [third.public_key]
    assert first.net.peers.is_verified(third.public_key) and third.net.peers.is_verified(first.public_key)


async def test_a_candidate_answering_with_another_key_is_not_trusted(grid: MakeGrid) -> None:
    nodes = await grid(0)
    first = await nodes.add()
    second = await nodes.add(bootstrap=[])
    await first.net.peers.add_candidates([(C, second.url)], PeerSource.EXCHANGE)
    assert await first.net.membership.verify_candidates() == []
    assert not first.net.peers.is_verified(second.public_key) and not first.net.peers.is_verified(C)


async def test_rows_another_process_added_are_adopted(db: Database, clock: FakeClock) -> None:
    """`ftm-node peers add` writes the table from its own process; the daemon's store takes the row in."""
    daemon = await PeerStore.open(db, clock, OWN)
    await daemon.record_verified("http://127.0.0.1:8001", A, PeerSource.BOOTSTRAP)
    command = await PeerStore.open(db, clock, OWN)
    await command.add_bootstrap(["http://127.0.0.1:8002"])
    assert daemon.get("http://127.0.0.1:8002") is None
    assert await daemon.adopt_new_rows() == 1
    adopted = daemon.get("http://127.0.0.1:8002")
    assert adopted is not None and not adopted.verified and adopted.source is PeerSource.BOOTSTRAP
    assert [r.url for r in daemon.unverified(10)] == ["http://127.0.0.1:8002"]
    assert await daemon.adopt_new_rows() == 0
