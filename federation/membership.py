"""Who our peers are: bootstrap URLs, nodes that introduce themselves, signed peer exchange, and discovery hints,
each verified before it is trusted.

To **verify** a URL is to ask it for a hello (`Transport.hello`, a signature over a fresh challenge) and check the
key: a bootstrap URL pins whatever key first answers; a candidate must answer with the key it was offered under;
a pinned URL must answer with its pinned key. Then we **introduce** ourselves (a signed request naming our own
URL), so the peer learns us in turn; it verifies us by asking our URL for a hello before it answers (at most
`verify_concurrency` such checks at once; beyond that we stay its candidate, checked by its next round).

**Peer exchange**: a peer answers a signed request with the peers it succeeded with lately, signed
(`gossipwire.SignedPeerList`); we store the ones we did not know as candidates. A **round** (every
`round_interval`) retries unverified bootstrap URLs and verifies up to `verify_batch` candidates; every
`exchange_interval` it also exchanges with one random verified peer. Listeners in `on_verified` hear of every
peer verified (new, moved, or re-verified), which is how gossip and reconciliation learn of them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ftm.federation.clock import Clock
from ftm.federation.discovery import Discovery
from ftm.federation.gossipwire import SignedPeerList, sign_peer_list
from ftm.federation.identity import SigningKey
from ftm.federation.peers import KeyPinned, PeerAddress, PeerSource, PeerStore, normalize_url
from ftm.federation.transport import Transport, TransportError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MembershipPolicy:
    round_interval: float = 60.0
    exchange_interval: float = 600.0
    verify_batch: int = 8  # candidates verified per round
    verify_concurrency: int = 4  # inbound introductions verified at once
    reintroduce: int = 32  # on start, verified peers (most recent first) we re-introduce ourselves to


class Membership:
    def __init__(
        self,
        peers: PeerStore,
        transport: Transport,
        key: SigningKey,
        clock: Clock,
        bootstrap: Sequence[str] = (),
        policy: MembershipPolicy | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._peers = peers
        self._transport = transport
        self._key = key
        self._clock = clock
        self._bootstrap = list(bootstrap)
        self.policy = policy or MembershipPolicy()
        self._rng = rng or random.Random()
        self.on_verified: list[Callable[[PeerAddress], None]] = []
        self._inbound = asyncio.Semaphore(self.policy.verify_concurrency)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_exchange = float("-inf")

    @property
    def own_url(self) -> str | None:
        return self._peers.own_url

    async def start(self, own_url: str) -> None:
        """Know our URL, connect to the bootstrap list and re-introduce ourselves to recent peers, then keep going
        in the background."""
        self._peers.own_url = normalize_url(own_url)
        await self._peers.add_bootstrap(self._bootstrap)
        await self.connect_known()
        self._spawn(self._run())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def connect(self, url: str, source: PeerSource, expected_key: bytes | None = None) -> PeerAddress | None:
        """Verify `url` (hello), pin its key, introduce ourselves; the verified address, or None if it failed."""
        own_url = self.own_url
        if own_url is None:
            raise RuntimeError("start() first: introductions need our own URL")
        record = self._peers.get(url)
        pinned = record.node_key if record is not None and (record.verified or expected_key is None) else None
        expected = expected_key or pinned
        try:
            hello = await self._transport.hello(url)
            if expected is not None and hello.node_key != expected:
                raise KeyPinned(f"{url} answered with another key")
            address = await self._peers.record_verified(url, hello.node_key, source)
        except (TransportError, KeyPinned, ValueError) as error:
            log.info("peer not verified", extra={"url": url, "why": type(error).__name__})
            await self._peers.record_failure(url)
            return None
        try:
            await self._transport.introduce(address, own_url)
        except TransportError as error:
            log.info("introduction refused", extra={"url": url, "code": error.code})
        self._verified(address)
        return address

    async def connect_known(self) -> list[PeerAddress]:
        """Connect every unverified bootstrap URL and re-verify the most recently successful peers."""
        targets: dict[str, tuple[PeerSource, bytes | None]] = {}
        for record in self._peers.records():
            if record.source is PeerSource.BOOTSTRAP and not record.verified:
                targets[record.url] = (record.source, None)
        recent = sorted(
            (record for record in self._peers.records() if record.verified),
            key=lambda record: record.last_success or 0,
            reverse=True,
        )
        for record in recent[: self.policy.reintroduce]:
            targets[record.url] = (record.source, record.node_key)
        results = await asyncio.gather(*(self.connect(url, s, k) for url, (s, k) in targets.items()))
        return [address for address in results if address is not None]

    async def on_introduce(self, key: bytes, url: str) -> bool:
        """A signed introduction from `key` naming `url` (server side): verify it now if we can, else keep it as
        a candidate for the next round. True if `key` is verified at `url` when we answer."""
        url = normalize_url(url)
        record = self._peers.by_key(key)
        if record is not None and record.verified and record.url == url:
            await self._peers.record_success(key)
            self._verified(PeerAddress(key, url))
            return True
        if self._inbound.locked():
            await self._peers.add_candidates([(key, url)], PeerSource.INBOUND)
            return False
        async with self._inbound:
            try:
                hello = await self._transport.hello(url)
                if hello.node_key != key:
                    return False
                address = await self._peers.record_verified(url, key, PeerSource.INBOUND)
            except (TransportError, KeyPinned, ValueError):
                return False
        self._verified(address)
        return True

    def peer_list_for(self, audience: bytes) -> SignedPeerList:
        """Our signed peer-exchange answer for the peer `audience`."""
        return sign_peer_list(self._key, audience, int(self._clock.now()), self._peers.recent(exclude=audience))

    async def exchange(self, peer: PeerAddress) -> int:
        """Ask `peer` for its peers; store the ones we did not know as candidates. The number stored."""
        peer_list = await self._transport.peers(peer, self._key.public_key)
        added = await self._peers.add_candidates(
            [(entry.node_key, entry.url) for entry in peer_list.peers], PeerSource.EXCHANGE
        )
        return len(added)

    async def verify_candidates(self) -> list[PeerAddress]:
        """Try to verify up to `verify_batch` unverified rows (candidates and bootstrap URLs)."""
        rows = self._peers.unverified(self.policy.verify_batch)
        results = await asyncio.gather(*(self.connect(row.url, row.source, row.node_key) for row in rows))
        return [address for address in results if address is not None]

    async def follow(self, discovery: Discovery) -> None:
        """Take discovery hints (mDNS) as candidates until the discovery closes; run it as a task."""
        async for hint in discovery.hints():
            await self._peers.add_candidates([(hint.public_key, hint.url)], PeerSource.MDNS)

    async def round(self) -> None:
        """One round of upkeep (the background loop runs it every `round_interval`)."""
        await self._peers.adopt_new_rows()
        await self.verify_candidates()
        now = self._clock.now()
        verified = self._peers.verified()
        if verified and now - self._last_exchange >= self.policy.exchange_interval:
            self._last_exchange = now
            try:
                await self.exchange(self._rng.choice(verified))
            except TransportError as error:
                log.info("peer exchange failed", extra={"code": error.code})

    def _verified(self, address: PeerAddress) -> None:
        for listener in self.on_verified:
            listener(address)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.policy.round_interval * (0.8 + 0.4 * self._rng.random()))
            try:
                await self.round()
            except Exception:  # the loop must outlive any one bad round
                log.exception("peer upkeep round failed")

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
