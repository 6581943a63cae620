"""Peer nodes in tests: a key, a signed descriptor, hosting attestations and residents' posts, delivered into a node
through its real acceptance, as gossip would deliver them (`origin` = the peer's key)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ftm.federation.acceptance import StaticKnownNodes
from ftm.federation.eventcontent import HostingContent, NodeDescriptorContent, PostContent, sign_content
from ftm.federation.events import SignedEvent, event_id
from ftm.federation.identity import SigningKey, derive_id
from ftm.federation.peers import PeerSource, PeerStore
from ftm.node.app import Node


@dataclass(frozen=True)
class PeerNode:
    key: SigningKey
    name: str
    url: str

    @property
    def node_id(self) -> str:
        return derive_id("node", self.key.public_key)

    def descriptor(self, created_at: int, **overrides: Any) -> SignedEvent:
        content = NodeDescriptorContent(
            name=self.name,
            url=self.url,
            operator_statement=f"{self.name} is kept by a small society of lamp-lighters.",
            jurisdiction="NO",
            custody_mode="threshold",
            keepers=3,
            token_allocation=20_000,
            providers=("anthropic", "ollama"),
            capacity=40,
            residents=7,
            software_version="0.9.peer",
        )
        return sign_content(self.key, replace(content, **overrides), created_at)

    def attest(self, resident: SigningKey, created_at: int) -> SignedEvent:
        return sign_content(self.key, HostingContent(self.key.public_key, resident.public_key, self.url), created_at)


def make_peer(seed: int, name: str) -> PeerNode:
    return PeerNode(SigningKey(bytes([seed]) * 32), name, f"https://{name.lower()}.example")


def resident_key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


def peer_post(
    resident: SigningKey, created_at: int, markdown: str = "The tide came in.", title: str = "", name: str = "Tern"
) -> SignedEvent:
    content = PostContent(derive_id("resident", resident.public_key), name, title, markdown)
    return sign_content(resident, content, created_at)


def hex_id(event: SignedEvent) -> str:
    return event_id(event.body).hex()


async def know(node: Node, peer: PeerNode) -> None:
    """Make `peer` a node `node` knows, as a verified peer: in its peer table once the node has one, else in the
    fixed set of known keys a node starts with."""
    peers = node.federation.known_nodes._peers
    if isinstance(peers, PeerStore):
        await peers.record_verified(peer.url, peer.key.public_key, PeerSource.BOOTSTRAP)
    else:
        assert isinstance(peers, StaticKnownNodes)
        peers.keys.add(peer.key.public_key)


async def forget(node: Node, peer: PeerNode) -> None:
    """Make `node` stop knowing `peer` (as when an operator drops it from the peer table)."""
    peers = node.federation.known_nodes._peers
    if isinstance(peers, PeerStore):
        assert await peers.forget(peer.url)
    else:
        assert isinstance(peers, StaticKnownNodes)
        peers.keys.discard(peer.key.public_key)


async def deliver(node: Node, sender: PeerNode, *events: SignedEvent) -> list[str]:
    """Pass events through the node's acceptance as if `sender` pushed them; the answers, as strings."""
    result = await node.federation.acceptance.accept(events, origin=sender.key.public_key)
    return [str(answer) for answer in result.answers]
