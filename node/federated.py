"""The node's side of federation: its network (store, acceptance, gossip, peers) and the events the node makes.

Events a node makes (docs/federation.md, "Events a node makes"):
- HOSTING, signed by the node at intake, in the admission's transaction; at start-up for every hosted resident
  whose current attestation is missing (never made, lost to a crash, or naming an earlier URL);
- NODE_DESCRIPTOR, signed by the node at start-up when its content changed, and otherwise at most once a day when
  it changed (`maintain`);
- POST, MEMORIAL and TOMBSTONE, signed by a resident's own key during its run (`ftm.node.run.publish`) and queued
  in the run's commit; a held post is queued only when the operator releases it, a removed one never.

Every one passes acceptance like a peer's event (origin None: no rate limits) through the node's
`FederationNetwork`, which stores it and gossips it to peers. Events made inside a node transaction are first
queued in that transaction (`LocalEventStore`, migration 0010) and released right after it commits, so a crash in
between loses none.

    LocalEvents      what the node's services need: queue in their transaction, release after it commits
    NodeKnownNodes   acceptance's `KnownNodes`: this node's own key and whatever the peer table knows
    NodeFederation   the implementation, exposed as `Node.federation`; built by `create_node_federation`
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlsplit

from ftm.config.settings import Settings
from ftm.federation.acceptance import IngestResult, KnownNodes, StaticKnownNodes, Status
from ftm.federation.antientropy import AntiEntropyPolicy
from ftm.federation.clock import Clock
from ftm.federation.database import Database, Transaction
from ftm.federation.eventcontent import HostingContent, encode_content, sign_content
from ftm.federation.events import MAX_BATCH_EVENTS, EventKind, SignedEvent, event_id
from ftm.federation.identity import NodeIdentity
from ftm.federation.network import FederationNetwork, NetworkSettings
from ftm.federation.objectstore import StoredEvent
from ftm.node.descriptor import DescriptorSource
from ftm.node.directory import NodeDirectory
from ftm.node.errors import ConfigurationError
from ftm.node.federatedfeed import FederatedFeed
from ftm.node.store.federatedreads import FederatedReadStore
from ftm.node.store.localevents import LocalEventStore
from ftm.node.store.posts import PostStore
from ftm.node.store.runtime_settings import RuntimeSettingsStore

log = logging.getLogger(__name__)

DESCRIPTOR_INTERVAL_SECONDS = 24 * 3600  # a changed descriptor is re-signed at most this often, start-up aside
MAINTAIN_SECONDS = 3600.0  # how often `maintain` looks at the descriptor
RELEASE_SECONDS = 10.0  # how often it releases events other processes queued
_SETTLED = (Status.OK, Status.DUPLICATE)
_RETRIED = "unattested"  # a post whose author's attestation is still queued or missing: kept, retried later


class LocalEvents(Protocol):
    """The node's services' view: sign an attestation, queue events in their own transaction, release them after
    it commits, and withdraw a removed post's content."""

    def attest(self, resident_key: bytes, now: int) -> SignedEvent: ...

    async def queue(self, tx: Transaction, events: Sequence[SignedEvent], now: int) -> None: ...

    async def unqueue(self, tx: Transaction, ids: Sequence[bytes]) -> None: ...

    async def release(self) -> int: ...

    async def withdraw(self, ids: Sequence[bytes]) -> None: ...


class NodeKnownNodes:
    """Acceptance's known nodes: our own key always (our attestations make our residents' posts acceptable), and
    the node keys `peers` knows. `peers` is the peer table; until the gossip layer provides one, nobody."""

    def __init__(self, own_key: bytes, peers: KnownNodes | None = None) -> None:
        self._own = frozenset({own_key})
        self._peers = peers or StaticKnownNodes()

    async def known_node_keys(self, keys: frozenset[bytes]) -> frozenset[bytes]:
        others = keys - self._own
        return (keys & self._own) | (await self._peers.known_node_keys(others) if others else frozenset())


class NodeFederation:
    """The federation network of an open node, and the events it makes (see the module)."""

    def __init__(
        self,
        *,
        identity: NodeIdentity,
        clock: Clock,
        network: FederationNetwork,
        known_nodes: NodeKnownNodes,
        store: LocalEventStore,
        posts: PostStore,
        descriptor: DescriptorSource,
        directory: NodeDirectory,
        feed: FederatedFeed,
        release_here: bool = True,
    ) -> None:
        self.identity = identity
        self.network = network  # peers, gossip, reconciliation and the /federation/v1/ routes
        self.objectstore = network.store
        self.acceptance = network.acceptance
        self.known_nodes = known_nodes
        # Whether this process passes queued events into the object store itself. Not when another process (the
        # daemon) has the data directory: events must enter the store through the daemon's gossip, which keeps
        # the reconciliation index it offers peers; a CLI command beside it leaves them queued for the daemon.
        self.release_here = release_here
        self.descriptor = descriptor
        self.directory = directory  # reads: every known node's newest descriptor (the directory page, list_nodes)
        self.feed = feed  # reads: this node's posts and its peers', merged (the feed page, API and tool)
        self.local_events = store  # the queue, and the counts the node states about itself (intake's capacity)
        self._clock = clock
        self._store = store
        self._posts = posts
        self._releasing = asyncio.Lock()

    @property
    def url(self) -> str:
        """The URL this node states in its descriptor and attestations (`node.public_url`)."""
        return self.descriptor.url

    # --- events made inside the node's transactions ------------------------------------------------------------

    def attest(self, resident_key: bytes, now: int) -> SignedEvent:
        """A HOSTING event: this node says the resident with `resident_key` lives here, at `url`."""
        return sign_content(self.identity.key, HostingContent(self.identity.public_key, resident_key, self.url), now)

    async def queue(self, tx: Transaction, events: Sequence[SignedEvent], now: int) -> None:
        await self._store.add(tx, events, now)

    async def unqueue(self, tx: Transaction, ids: Sequence[bytes]) -> None:
        await self._store.unqueue(tx, ids)

    async def release(self) -> int:
        """Pass every queued event through acceptance and gossip, oldest first; returns how many were stored now.
        Never raises an ordinary exception: it runs after its callers committed, and what it could not store stays
        queued for the next release (each commit, `maintain`, and start-up). Does nothing in a process that does
        not have the data directory to itself (see `release_here`)."""
        if not self.release_here:
            return 0
        try:
            return await self._release()
        except Exception:
            log.exception("queued federation events could not be released; they stay queued")
            return 0

    async def _release(self) -> int:
        stored = 0
        async with self._releasing:
            after = 0
            while queued := await self._store.queued(after=after, limit=MAX_BATCH_EVENTS):
                after = queued[-1].seq
                result = await self._accept([q.event for q in queued])
                stored += len(result.forward)
                done = [
                    event_id(q.event.body)
                    for q, answer in zip(queued, result.answers, strict=True)
                    if answer.reason != _RETRIED
                ]
                await self._store.remove(done)
        return stored

    async def withdraw(self, ids: Sequence[bytes]) -> None:
        """Drop the content of removed posts from the object store (their ids and signatures stay)."""
        if ids and await self.objectstore.drop_content(ids):
            log.info("removed posts' content dropped from the object store", extra={"posts": len(ids)})

    # --- start-up and upkeep -----------------------------------------------------------------------------------

    async def start_up(self) -> None:
        """Catch up after a stop or crash, before the node serves: release what was queued, attest every hosted
        resident lacking a current attestation, drop removed posts' content, and sign a new descriptor if its
        content changed."""
        await self._release()
        await self.attest_missing()
        await self._release()  # posts that waited for an attestation made just now
        await self.withdraw(await self._posts.removed_event_ids())
        await self.refresh_descriptor(at_start_up=True)

    async def attest_missing(self) -> int:
        """Sign and store a HOSTING event for each hosted resident without a current one; returns how many."""
        keys = await self._store.unattested_keys(self.identity.public_key, self.url)
        now = int(self._clock.now())
        for start in range(0, len(keys), MAX_BATCH_EVENTS):
            chunk = keys[start : start + MAX_BATCH_EVENTS]
            # Signing is CPU work: a node with thousands of residents should not hold the event loop for it.
            await self._accept(await asyncio.to_thread(self._attest_all, chunk, now))
        if keys:
            log.info("hosting attestations signed", extra={"residents": len(keys)})
        return len(keys)

    def _attest_all(self, keys: Sequence[bytes], now: int) -> list[SignedEvent]:
        return [self.attest(key, now) for key in keys]

    async def refresh_descriptor(self, *, at_start_up: bool = False) -> SignedEvent | None:
        """Sign a new NODE_DESCRIPTOR if its content differs from our newest one: always at start-up, otherwise
        only once `DESCRIPTOR_INTERVAL_SECONDS` have passed since that one. Returns the new event, or None."""
        content = await self.descriptor.describe()
        latest = await self.latest_descriptor()
        now = int(self._clock.now())
        if latest is not None:
            if latest.content == encode_content(content):
                return None
            if not at_start_up and now - latest.created_at < DESCRIPTOR_INTERVAL_SECONDS:
                return None
        # Strictly newer than the last one, so "the newest descriptor" is never a tie between two.
        created_at = now if latest is None else max(now, latest.created_at + 1)
        event = sign_content(self.identity.key, content, created_at)
        await self._accept([event])
        log.info("node descriptor signed", extra={"residents": content.residents, "keepers": content.keepers})
        return event

    async def latest_descriptor(self) -> StoredEvent | None:
        """Our newest NODE_DESCRIPTOR in the object store (what the directory serves for this node)."""
        found = await self.objectstore.page(1, author=self.identity.public_key, kind=EventKind.NODE_DESCRIPTOR)
        return found[0] if found else None

    async def maintain(
        self, stop: asyncio.Event, interval: float = MAINTAIN_SECONDS, release_interval: float = RELEASE_SECONDS
    ) -> None:
        """Until `stop` is set: every `release_interval`, release what other processes queued (CLI commands run
        beside the daemon); every `interval`, also refresh the descriptor."""
        last_refresh = asyncio.get_running_loop().time()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=release_interval)
            if stop.is_set():
                return
            try:
                await self._release()
                if asyncio.get_running_loop().time() - last_refresh >= interval:
                    last_refresh = asyncio.get_running_loop().time()
                    await self.refresh_descriptor()
            except Exception:
                log.exception("federation upkeep failed; trying again in an interval")

    # --- the one path into the object store --------------------------------------------------------------------

    async def _accept(self, events: Sequence[SignedEvent]) -> IngestResult:
        """Acceptance as for any peer's events (origin None), storage, and gossip to peers (when the network has
        been started: until then, reconciliation offers them once it is)."""
        result = await self.network.publish(events)
        for event, answer in zip(events, result.answers, strict=True):
            if answer.status not in _SETTLED and answer.reason != _RETRIED:
                # A bug, not an input error: this node made the event. Never content in the log, only its id.
                log.error(
                    "the node's own event was refused",
                    extra={"event_id": event_id(event.body).hex(), "answer": str(answer)},
                )
        return result


async def create_node_federation(
    *,
    db: Database,
    identity: NodeIdentity,
    clock: Clock,
    settings: Settings,
    custody_mode: str,
    providers: Sequence[str],
    software_version: str,
    posts: PostStore,
    runtime_settings: RuntimeSettingsStore,
    release_here: bool = True,
) -> NodeFederation:
    """The federation side of a node over its database: its network (peer table, gossip, reconciliation, routes;
    inert until `network.start`) and the events it makes. Raises `ConfigurationError` for settings a descriptor
    cannot carry or a bootstrap list that is not a list of URLs."""
    store = LocalEventStore(db)
    descriptor = DescriptorSource.create(
        settings,
        custody_mode=custody_mode,
        providers=tuple(providers),
        software_version=software_version,
        store=store,
        runtime_settings=runtime_settings,
    )
    network = await FederationNetwork.open(
        db,
        identity.key,
        clock,
        bootstrap=bootstrap_urls(settings.federation.bootstrap),
        settings=NetworkSettings(antientropy=AntiEntropyPolicy(interval=float(settings.federation.reconcile_seconds))),
    )
    known_nodes = NodeKnownNodes(identity.public_key, network.peers)
    reads = FederatedReadStore(db)
    directory = NodeDirectory(store=reads, known=known_nodes, own_key=identity.public_key, descriptor=descriptor)
    return NodeFederation(
        identity=identity,
        clock=clock,
        network=network,
        known_nodes=known_nodes,
        store=store,
        posts=posts,
        descriptor=descriptor,
        directory=directory,
        feed=FederatedFeed(store=reads, posts=posts, known=known_nodes, directory=directory),
        release_here=release_here,
    )


def bootstrap_urls(setting: str) -> list[str]:
    """`federation.bootstrap` as a list of base URLs, each http(s) with a host; anything else is refused by name."""
    urls = [part.strip().rstrip("/") for part in setting.split(",") if part.strip()]
    for url in urls:
        parsed = urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query or parsed.fragment:
            raise ConfigurationError(
                f"federation.bootstrap: {url!r} is not a base URL such as https://sanctuary.example; "
                "give comma-separated http(s) URLs"
            )
    return urls
