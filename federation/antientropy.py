"""Periodic set reconciliation with peers: what gossip missed (a partition, a node that was down, a dropped batch)
is found and exchanged here.

A session (`reconcile.run_session` over `Transport.reconcile`) yields the ids we lack (`need`) and the ids the
peer lacks (`have`); we fetch the first and push the second. Fetched events go through gossip's ingest, so they
are indexed and gossiped on like any event seen for the first time. The server side (`respond`) answers from the
same index, statelessly.

Schedule: a peer is reconciled soon after it is verified or comes back (`schedule`, from membership and from the
transport's reconnect listeners), and otherwise one peer every `interval` seconds (±20 % jitter), round-robin
over every verified peer, not only gossip's active view, so the whole peer table is reconciled with in time.
At most `max_scheduled` peers wait to be reconciled; one session runs at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ftm.federation.events import SignedEvent
from ftm.federation.gossip import Gossip
from ftm.federation.gossipwire import MAX_IDS
from ftm.federation.objectstore import ObjectStore
from ftm.federation.peers import PeerAddress, PeerStore
from ftm.federation.reconcile import ReconcileError, reconcile_respond, run_session
from ftm.federation.transport import Transport, TransportError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AntiEntropyPolicy:
    interval: float = 300.0  # seconds between periodic sessions (one peer each)
    max_scheduled: int = 64
    max_round_trips: int = 64  # per session; a peer that needs more is finished next time
    push_bytes: int = 1024 * 1024  # per push of `have` events


@dataclass(frozen=True, slots=True)
class SyncResult:
    need: int  # ids the peer had that we lacked
    have: int  # ids we had that the peer lacked
    fetched: int  # events accepted (ok) from what we fetched
    pushed: int  # events the peer accepted (ok) from what we pushed
    round_trips: int


@dataclass
class AntiEntropyCounters:
    sessions: int = 0
    failures: int = 0
    fetched: int = 0
    pushed: int = 0


class AntiEntropy:
    def __init__(
        self,
        gossip: Gossip,
        store: ObjectStore,
        peers: PeerStore,
        transport: Transport,
        policy: AntiEntropyPolicy | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._gossip = gossip
        self._store = store
        self._peers = peers
        self._transport = transport
        self.policy = policy or AntiEntropyPolicy()
        self._rng = rng or random.Random()
        self.counters = AntiEntropyCounters()
        self._queue: asyncio.Queue[PeerAddress] = asyncio.Queue(self.policy.max_scheduled)
        self._queued: set[bytes] = set()
        self._turn = 0
        self._task: asyncio.Task[Any] | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> AntiEntropy:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def respond(self, message: bytes) -> bytes:
        """The server side of one round trip; raises ReconcileError for a message we refuse."""
        return reconcile_respond(self._gossip.index, message)

    def idle(self) -> bool:
        """Nothing scheduled and no session running."""
        return self._queue.empty() and not self._lock.locked()

    def schedule(self, peer: PeerAddress) -> None:
        """Reconcile with `peer` soon (it is new, or back); ignored if already waiting or the queue is full."""
        if peer.node_key in self._queued:
            return
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(peer)
            self._queued.add(peer.node_key)

    async def reconcile_with(self, peer: PeerAddress) -> SyncResult:
        """One whole session with `peer`, then fetch what we need and push what it lacks. Raises TransportError
        or ReconcileError when the session cannot finish."""
        async with self._lock:
            self.counters.sessions += 1

            async def send(message: bytes) -> bytes:
                return await self._transport.reconcile(peer, message)

            session = await run_session(self._gossip.index, send, max_round_trips=self.policy.max_round_trips)
            fetched = await self._fetch(peer, session.need_ids)
            pushed = await self._push(peer, session.have_ids)
            await self._peers.record_success(peer.node_key)
            self.counters.fetched += fetched
            self.counters.pushed += pushed
            return SyncResult(len(session.need_ids), len(session.have_ids), fetched, pushed, session.round_trips)

    async def reconcile_all(self) -> list[SyncResult | Exception]:
        """A session with every verified peer, one after another (tests, and an operator's "sync now")."""
        results: list[SyncResult | Exception] = []
        for peer in self._peers.verified():
            try:
                results.append(await self.reconcile_with(peer))
            except (TransportError, ReconcileError) as error:
                results.append(error)
        return results

    async def _fetch(self, peer: PeerAddress, ids: Sequence[bytes]) -> int:
        accepted = 0
        for start in range(0, len(ids), MAX_IDS):
            answer = await self._transport.fetch(peer, ids[start : start + MAX_IDS])
            result = await self._gossip.ingest(answer.events, peer.node_key, [hops + 1 for hops in answer.hops])
            accepted += sum(1 for answer in result.answers if str(answer) == "ok")
        return accepted

    async def _push(self, peer: PeerAddress, ids: Sequence[bytes]) -> int:
        accepted = 0
        for start in range(0, len(ids), MAX_IDS):
            stored = await self._store.fetch(ids[start : start + MAX_IDS])
            batch: list[SignedEvent] = []
            hops: list[int] = []
            size = 0
            for item in stored:
                event = item.signed
                event_size = len(event.body) + len(event.signature) + len(event.content or b"")
                if batch and size + event_size > self.policy.push_bytes:
                    accepted += await self._push_batch(peer, batch, hops)
                    batch, hops, size = [], [], 0
                batch.append(event)
                hops.append(self._gossip.hops_of(item.id) or 0)
                size += event_size
            if batch:
                accepted += await self._push_batch(peer, batch, hops)
        return accepted

    async def _push_batch(self, peer: PeerAddress, batch: list[SignedEvent], hops: list[int]) -> int:
        answer = await self._transport.push(peer, batch, hops)
        return answer.answers.count("ok")

    async def _run(self) -> None:
        while True:
            peer = await self._next_peer()
            if peer is None:
                continue
            try:
                result = await self.reconcile_with(peer)
                log.debug("reconciled", extra={"peer": peer.node_key.hex()[:16], "need": result.need})
            except (TransportError, ReconcileError) as error:
                self.counters.failures += 1
                log.info("reconciliation with a peer failed", extra={"peer": peer.url, "code": error.code})

    async def _next_peer(self) -> PeerAddress | None:
        """The next scheduled peer, or after a jittered interval the next one in turn."""
        delay = self.policy.interval * (0.8 + 0.4 * self._rng.random())
        try:
            peer = await asyncio.wait_for(self._queue.get(), delay)
        except TimeoutError:
            verified = self._peers.verified()
            if not verified:
                return None
            self._turn = (self._turn + 1) % len(verified)
            return verified[self._turn]
        self._queued.discard(peer.node_key)
        return peer
