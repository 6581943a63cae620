"""A grid of federation nodes in one process: each with its own database, key, resident and a real aiohttp server
on 127.0.0.1, peered through bootstrap URLs, all on one shared FakeClock (signed requests need clocks within
five minutes of each other).

Each node's server is an outer application that mounts the network's sub-application at `/federation/v1/`, as the
node does, behind a `Partition` middleware: signed requests between two nodes on opposite sides of a partition are
answered 503, which the transport counts as a failure, as it would a dead link. A node can be stopped and
started again on the same database (it comes back on a new port, so peers learn its new URL by introduction).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from ftm.federation.antientropy import AntiEntropyPolicy
from ftm.federation.clock import FakeClock
from ftm.federation.database import Database, load_migrations
from ftm.federation.events import SignedEvent, event_id
from ftm.federation.gossip import GossipPolicy
from ftm.federation.gossipwire import API_PREFIX
from ftm.federation.identity import SigningKey
from ftm.federation.membership import MembershipPolicy
from ftm.federation.network import FederationNetwork, NetworkSettings
from ftm.federation.signedrequests import HEADER_KEY, parse_b64url
from tests.federation.eventfactories import make_hosting, make_post

# Fast enough for tests, and the background loops (membership rounds, periodic reconciliation) are kept out of
# the way: tests call them when they mean to.
GRID_SETTINGS = NetworkSettings(
    gossip=GossipPolicy(flush_delay=0.01, ihave_grace=0.05, fetch_retry=0.05),
    antientropy=AntiEntropyPolicy(interval=3600.0),
    membership=MembershipPolicy(round_interval=3600.0),
)
WAIT_SECONDS = 20.0


class Partition:
    """Which pairs of nodes cannot reach each other, as an aiohttp middleware on every node's server."""

    def __init__(self) -> None:
        self.cut: set[frozenset[bytes]] = set()
        self.status = 503

    def split(self, left: Iterable[bytes], right: Iterable[bytes], status: int = 503) -> None:
        """Cut every pair across `left` and `right`. 503 looks like a dead link (the sender backs off and counts
        a reconnect later); a 4xx looks like a peer refusing one request (say, one delayed past the clock window),
        which costs no backoff."""
        rights = list(right)
        self.cut.update(frozenset((a, b)) for a in left for b in rights)
        self.status = status

    def heal(self) -> None:
        self.cut.clear()

    def middleware(self, own_key: bytes) -> web.middleware:  # type: ignore[valid-type]
        @web.middleware
        async def partition(request: web.Request, handler: Handler) -> web.StreamResponse:
            sender = parse_b64url(request.headers.get(HEADER_KEY, ""), 32)
            if sender is not None and frozenset((sender, own_key)) in self.cut:
                error = {"error": {"code": "partitioned", "message": "cut off"}}
                return web.json_response(error, status=self.status)
            return await handler(request)

        return partition


@dataclass
class GridNode:
    index: int
    key: SigningKey
    resident: SigningKey  # hosted here: its posts are attested by this node
    path: Path
    bootstrap: list[str]
    db: Database | None = None
    network: FederationNetwork | None = None
    runner: web.AppRunner | None = None
    url: str = ""
    published: list[SignedEvent] = field(default_factory=list)

    @property
    def net(self) -> FederationNetwork:
        assert self.network is not None, "node is stopped"
        return self.network

    @property
    def public_key(self) -> bytes:
        return self.key.public_key


class Grid:
    def __init__(self, root: Path, clock: FakeClock, settings: NetworkSettings = GRID_SETTINGS) -> None:
        self.root = root
        self.clock = clock
        self.settings = settings
        self.partition = Partition()
        self.nodes: list[GridNode] = []
        self._posts = 0

    async def add(self, bootstrap: Sequence[int] | None = None, settings: NetworkSettings | None = None) -> GridNode:
        """Start a new node, bootstrapped to the given nodes (default: every node already running)."""
        index = len(self.nodes)
        targets = range(index) if bootstrap is None else bootstrap
        node = GridNode(
            index,
            SigningKey(bytes([index + 1]) * 32),
            SigningKey(bytes([index + 101]) * 32),
            self.root / f"node{index}",
            [self.nodes[i].url for i in targets],
        )
        self.nodes.append(node)
        await self.start(index, settings)
        return node

    async def start(self, index: int, settings: NetworkSettings | None = None) -> None:
        node = self.nodes[index]
        node.path.mkdir(parents=True, exist_ok=True)
        node.db = await Database.open(node.path / "node.db", load_migrations("ftm.node.store"))
        node.network = await FederationNetwork.open(
            node.db, node.key, self.clock, bootstrap=node.bootstrap, settings=settings or self.settings
        )
        app = web.Application(middlewares=[self.partition.middleware(node.public_key)])
        app.add_subapp(API_PREFIX, node.network.app)
        node.runner = web.AppRunner(app, access_log=None)
        await node.runner.setup()
        site = web.TCPSite(node.runner, "127.0.0.1", 0)
        await site.start()
        host, port = node.runner.addresses[0][:2]
        node.url = f"http://{host}:{port}"
        await node.network.start(node.url)

    async def stop(self, index: int) -> None:
        node = self.nodes[index]
        if node.runner is not None:
            await node.runner.cleanup()
        if node.network is not None:
            await node.network.close()
        if node.db is not None:
            await node.db.close()
        node.runner, node.network, node.db = None, None, None

    async def close(self) -> None:
        # Every node's clients and background tasks first, so no request arrives at a server being shut down.
        running = self.running()
        await asyncio.gather(*(node.net.close() for node in running))
        for node in running:
            node.network = None
        await asyncio.gather(*(self.stop(node.index) for node in self.nodes))

    def running(self) -> list[GridNode]:
        return [node for node in self.nodes if node.network is not None]

    # Events.

    async def attest_all(self) -> None:
        """Each node attests its resident, and every node has every attestation (so posts are accepted)."""
        hostings = []
        for node in self.running():
            hosting = make_hosting(node.key, node.resident, int(self.clock.now()) - 3600)
            hostings.append(hosting)
            assert [str(a) for a in (await node.net.publish([hosting])).answers] == ["ok"]
        await self.wait_for(hostings)

    def posts(self, node: GridNode, count: int, created_at: int | None = None, markdown: str = "") -> list[SignedEvent]:
        """`count` new posts by the node's resident (distinct titles, so distinct ids)."""
        made = []
        for _ in range(count):
            self._posts += 1
            fields = {"title": f"Post {self._posts}"}
            if markdown:
                fields["markdown"] = markdown
            stamp = int(self.clock.now()) - 60 if created_at is None else created_at
            made.append(make_post(node.resident, stamp, (), **fields))
        return made

    async def publish(self, index: int, count: int, created_at: int | None = None) -> list[SignedEvent]:
        node = self.nodes[index]
        events = self.posts(node, count, created_at)
        result = await node.net.publish(events)
        assert {str(answer) for answer in result.answers} == {"ok"}
        node.published.extend(events)
        return events

    async def holders(self, events: Sequence[SignedEvent], nodes: Sequence[GridNode] | None = None) -> list[int]:
        """For each node, how many of `events` it stores."""
        ids = [event_id(event.body) for event in events]
        return [len(await node.net.store.has_many(ids)) for node in (nodes or self.running())]

    async def wait_for(
        self, events: Sequence[SignedEvent], nodes: Sequence[GridNode] | None = None, seconds: float = WAIT_SECONDS
    ) -> bool:
        """Poll until every node (default: every running one) stores every event, or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while True:
            if all(count == len(events) for count in await self.holders(events, nodes)):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
