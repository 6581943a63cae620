"""The federation network of one node, assembled: peer table, transport, membership, gossip, reconciliation and
the HTTP routes, wired to one another. The node builds one with `FederationNetwork.open`, mounts `app` at
`gossipwire.API_PREFIX`, calls `start(own_url)` once it listens, publishes its own events with `publish`, and
calls `close()` after its HTTP server has stopped. The parts stay reachable as attributes (tests, metrics).

Wiring: a peer verified by membership, or coming back after failures (the transport's reconnect listeners), joins
gossip's active view if there is room and is scheduled for reconciliation; acceptance knows nodes through the peer
table (`PeerStore.known_node_keys`), so residents attested by a verified peer (or by us) may post.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import web

from ftm.federation.acceptance import Acceptance, AcceptanceLimits, Blocklist, IngestResult
from ftm.federation.antientropy import AntiEntropy, AntiEntropyPolicy
from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.events import SignedEvent
from ftm.federation.gossip import Gossip, GossipPolicy
from ftm.federation.identity import SigningKey
from ftm.federation.membership import Membership, MembershipPolicy
from ftm.federation.objectstore import ObjectStore
from ftm.federation.peerhealth import HealthPolicy, PeerHealthBook
from ftm.federation.peers import PeerAddress, PeerLimits, PeerStore
from ftm.federation.routes import FederationServer, create_federation_app
from ftm.federation.signedrequests import NonceCache
from ftm.federation.transport import Transport, TransportLimits


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """Every knob of the network, with defaults; the node maps its configuration onto these."""

    gossip: GossipPolicy = field(default_factory=GossipPolicy)
    antientropy: AntiEntropyPolicy = field(default_factory=AntiEntropyPolicy)
    membership: MembershipPolicy = field(default_factory=MembershipPolicy)
    transport: TransportLimits = field(default_factory=TransportLimits)
    health: HealthPolicy = field(default_factory=HealthPolicy)
    peers: PeerLimits = field(default_factory=PeerLimits)
    acceptance: AcceptanceLimits = field(default_factory=AcceptanceLimits)


class FederationNetwork:
    def __init__(
        self,
        key: SigningKey,
        store: ObjectStore,
        peers: PeerStore,
        acceptance: Acceptance,
        transport: Transport,
        gossip: Gossip,
        antientropy: AntiEntropy,
        membership: Membership,
        server: FederationServer,
    ) -> None:
        self.key = key
        self.store = store
        self.peers = peers
        self.acceptance = acceptance
        self.transport = transport
        self.gossip = gossip
        self.antientropy = antientropy
        self.membership = membership
        self._server = server
        # One nonce cache for every sub-application made here: a request replayed to another mount is still a replay.
        self._nonces = NonceCache()
        self.app = self.create_app()
        membership.on_verified.append(self._peer_verified)
        transport.on_reconnect.append(self._peer_ready)

    @classmethod
    async def open(
        cls,
        db: Database,
        key: SigningKey,
        clock: Clock,
        *,
        bootstrap: Sequence[str] = (),
        settings: NetworkSettings | None = None,
        blocklist: Blocklist | None = None,
        rng: random.Random | None = None,
    ) -> FederationNetwork:
        """Build every part over the node's database (migrated through 0009) and key. Nothing runs until
        `start`; `app` is ready to mount."""
        settings = settings or NetworkSettings()
        rng = rng or random.Random()
        store = ObjectStore(db, clock)
        peers = await PeerStore.open(db, clock, key.public_key, settings.peers)
        acceptance = Acceptance(store, peers, clock, limits=settings.acceptance, blocklist=blocklist)
        health = PeerHealthBook(clock, settings.health, random_unit=rng.random)
        transport = Transport(key, clock, health, settings.transport)
        gossip = Gossip(acceptance, store, peers, transport, settings.gossip, rng=rng)
        antientropy = AntiEntropy(gossip, store, peers, transport, settings.antientropy, rng=rng)
        membership = Membership(peers, transport, key, clock, bootstrap, settings.membership, rng=rng)
        server = FederationServer(key, clock, peers, gossip, antientropy, membership)
        return cls(key, store, peers, acceptance, transport, gossip, antientropy, membership, server)

    def create_app(self) -> web.Application:
        """A fresh sub-application over this network (`app` is one already made): an aiohttp application can be
        mounted once, and a node may build its web application more than once (tests, tools)."""
        return create_federation_app(self._server, self._nonces)

    async def __aenter__(self) -> FederationNetwork:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self, own_url: str) -> None:
        """Begin: index the store, connect to the bootstrap list and known peers, start the background loops."""
        await self.gossip.start()
        self.antientropy.start()
        await self.membership.start(own_url)

    async def publish(self, events: Sequence[SignedEvent]) -> IngestResult:
        """Events made on this node (posts, attestations, descriptors): accepted, stored and gossiped."""
        return await self.gossip.publish(events)

    async def close(self) -> None:
        """Stop every task and close connections; the node stops its HTTP server first."""
        await self.membership.close()
        await self.antientropy.close()
        await self.gossip.close()
        await self.transport.close()

    def _peer_verified(self, address: PeerAddress) -> None:
        self.transport.proven_reachable(address)
        self._peer_ready(address)

    def _peer_ready(self, address: PeerAddress) -> None:
        self.gossip.add_peer(address)
        self.antientropy.schedule(address)
