"""The node's federation side on its own: which nodes it knows, the queue of its own events, and its upkeep."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ftm.federation.acceptance import StaticKnownNodes
from ftm.federation.events import SignedEvent, event_id
from ftm.federation.identity import SigningKey
from ftm.node.app import Node
from ftm.node.federated import NodeKnownNodes
from tests.federation.eventfactories import T0, make_post

RESIDENT = SigningKey(b"\x05" * 32)


async def queue(node: Node, *events: SignedEvent) -> None:
    async with node.db.transaction("test_queue") as tx:
        await node.federation.queue(tx, events, T0)


async def test_our_own_key_is_always_known_and_peers_add_theirs() -> None:
    own, peer, stranger = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    alone = NodeKnownNodes(own)
    assert await alone.known_node_keys(frozenset({own, peer, stranger})) == {own}
    peered = NodeKnownNodes(own, StaticKnownNodes([peer]))
    assert await peered.known_node_keys(frozenset({own, peer, stranger})) == {own, peer}
    assert await peered.known_node_keys(frozenset({stranger})) == frozenset()


async def test_a_post_stays_queued_until_its_author_is_attested(node: Node) -> None:
    post = make_post(RESIDENT, created_at=T0 - 60)
    await queue(node, post)

    assert await node.federation.release() == 0
    assert await node.federation.local_events.queued_count() == 1  # kept: its attestation may still come
    assert node.federation.acceptance.counters.invalid["unattested"] == 1

    await queue(node, node.federation.attest(RESIDENT.public_key, T0 - 30))
    assert await node.federation.release() == 2
    assert await node.federation.local_events.queued_count() == 0
    assert await node.federation.objectstore.has(event_id(post.body))
    offered = {eid for _, eid in node.federation.network.gossip.index}
    assert event_id(post.body) in offered  # what gossip offers peers


async def test_an_event_acceptance_refuses_for_good_leaves_the_queue_and_is_logged_by_id(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    good = node.federation.attest(RESIDENT.public_key, T0)
    forged = SignedEvent(good.body, bytes(64), good.content)
    await queue(node, forged)

    assert await node.federation.release() == 0

    assert await node.federation.local_events.queued_count() == 0
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "the node's own event was refused"
    assert record.__dict__["answer"] == "invalid:bad_signature"
    assert record.__dict__["event_id"] == event_id(good.body).hex()


async def test_upkeep_signs_the_descriptor_and_stops_when_told(node: Node) -> None:
    stop = asyncio.Event()
    upkeep = asyncio.create_task(node.federation.maintain(stop, interval=0.001, release_interval=0.001))
    for _ in range(2000):
        if await node.federation.latest_descriptor() is not None:
            break
        await asyncio.sleep(0.001)
    stop.set()
    await asyncio.wait_for(upkeep, timeout=5)
    assert await node.federation.latest_descriptor() is not None
