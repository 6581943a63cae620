"""Dissemination: every event a node sees for the first time reaches every other node, in few hops and few bytes.

Each node gossips with a small active view of peers (`gossipview`: `active_size` picked at random, plus those
that picked it). On first sight of an event:

- **eager push** of the whole event to the view's peers while the event is within `eager_hops` hops of the node
  that made it (by default only there: the maker pushes its own events to its whole view, and none of them can
  have it yet, so an eager push never brings a duplicate);
- **announcement** (ihave) of its id, farther out, to every peer of the view not known to have it (the peer it
  came from, peers that announced or were sent it);
- a node that lacks an announced id **fetches** it from the announcer after a short grace (`wants.WantList`: one
  announcer per id, the next only if that fetch fails), so each node receives each event about once;
- what could not be sent is **owed**: when a push or an announcement to a peer fails (the peer is restarting, was
  reached at an address it has left, or refused a request delayed past the clock window), its ids are announced
  to that peer again after each of `resend_delays`. This matters beyond the one peer: the maker's push tells its
  other recipients who else it was pushed to (`Push.sent_to`), and they do not announce the event there, so
  without the resend only reconciliation would heal the gap.

Why not Plumtree's eager tree everywhere (push on every hop, prune a link that brings a duplicate, graft on a
fetch): measured on the benchmark (tests/bench/bench_propagation.py), batches carrying events from several sources
at once made prunes and grafts chase each other, and duplicates plus announcements cost 1.4 to 2.1 times the payload;
announce-and-fetch beyond the first hop costs one extra round trip per hop, not an extra hop, and delivers each
event once. docs/federation.md has the figures.

Outgoing items are batched per peer (`outbox.Outbox`) so that a request's headers are shared by many events.
Every accepted event also enters the reconciliation index (`index`), which periodic reconciliation
(`antientropy`) reads; so every ingest, local or remote, must go through `publish`, `receive_push` or `ingest`.
Hop counts travel with pushes and fetch answers (0 where the event was made), so the depth of dissemination can be
measured and runaway forwarding bounded (`max_hops`). All queues and maps are bounded; `close()` ends every task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from ftm.federation.acceptance import Acceptance, IngestResult, Status
from ftm.federation.events import SignedEvent, event_id
from ftm.federation.gossipview import ActiveView, Link, LinkChange
from ftm.federation.gossipwire import (
    MAX_FETCH_ANSWER_BYTES,
    MAX_HOPS,
    MAX_IDS,
    MAX_PEER_ENTRIES,
    Events,
    Fetch,
    Push,
    PushAnswer,
)
from ftm.federation.objectstore import ObjectStore
from ftm.federation.outbox import Outbox, OutboxLimits
from ftm.federation.peerhealth import CircuitState
from ftm.federation.peers import PeerAddress, PeerStore
from ftm.federation.reconcileindex import ReconcileIndex
from ftm.federation.transport import Transport, TransportError
from ftm.federation.wants import WantList

log = logging.getLogger(__name__)
_HAS = (Status.OK, Status.DUPLICATE)


@dataclass(frozen=True, slots=True)
class GossipPolicy:
    active_size: int = 4  # peers this node picks to gossip with; the rest are reached through them
    max_view: int = 32  # links in all, counting peers that picked us: a cap, rarely reached (views are symmetric)
    eager_hops: int = 1  # events fewer hops than this from their maker are pushed whole; farther ones announced
    flush_delay: float = 0.05  # seconds an outgoing batch of events gathers before it is pushed
    announce_delay: float = 0.05  # seconds announced ids gather before an ihave is sent
    ihave_grace: float = 0.02  # seconds an announced id waits (for a push in flight, other announcers to batch)
    fetch_retry: float = 0.5
    resend_delays: tuple[float, ...] = (1.0, 4.0, 16.0)  # seconds after a failed send before announcing again
    max_hops: int = 32  # not forwarded beyond this many hops (a tree of any sane network is far shallower)
    max_push_events: int = 500
    max_push_bytes: int = 1024 * 1024
    max_outbox_items: int = 10_000  # per peer
    max_wanted: int = 10_000
    remembered_ids: int = 100_000  # recent ids with their hop counts and known holders
    concurrent_ingests: int = 2
    waiting_ingests: int = 32  # pushes waiting for an ingest slot; beyond this a peer is told to come back

    def __post_init__(self) -> None:
        if not 1 <= self.active_size <= self.max_view <= 64 or not 1 <= self.max_hops <= MAX_HOPS:
            raise ValueError("gossip needs 1 <= active_size <= max_view <= 64 and max_hops in [1, 255]")
        if len(self.resend_delays) > 8 or any(not 0 < delay <= 3600 for delay in self.resend_delays):
            raise ValueError("gossip resend_delays needs at most 8 delays, each in (0, 3600] seconds")


class Overloaded(Exception):
    """Too many pushes are waiting to be checked; the peer should retry later (HTTP 503)."""


@dataclass
class GossipCounters:
    events_pushed: int = 0
    ids_announced: int = 0
    events_fetched: int = 0
    send_failures: int = 0
    ids_resent: int = 0  # ids announced again after a failed send
    owed_dropped: int = 0  # ids given up on after the last resend failed, or beyond the bound (reconciliation heals)
    overloaded: int = 0


class _Seen:
    __slots__ = ("holders", "hops", "pushed_to")

    def __init__(self, hops: int, holders: set[bytes]) -> None:
        self.hops = hops
        self.holders = holders  # peers known to have the event
        self.pushed_to: frozenset[bytes] = frozenset()  # peers we queued a push of it to


class Gossip:
    def __init__(
        self,
        acceptance: Acceptance,
        store: ObjectStore,
        peers: PeerStore,
        transport: Transport,
        policy: GossipPolicy | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._acceptance = acceptance
        self._store = store
        self._peers = peers
        self._transport = transport
        self.policy = policy or GossipPolicy()
        self._rng = rng or random.Random()
        self.index = ReconcileIndex()
        self.counters = GossipCounters()
        self._view = ActiveView(
            self.policy.active_size, self.policy.max_view, self._rng, self._new_outbox, self._tell, self._retire
        )
        self._seen: OrderedDict[bytes, _Seen] = OrderedDict()
        p = self.policy
        self._wants = WantList(p.ihave_grace, p.fetch_retry, max_ids=p.max_wanted)
        self._outbox_limits = OutboxLimits(
            p.flush_delay, p.announce_delay, p.max_push_events, p.max_push_bytes, MAX_IDS, p.max_outbox_items
        )
        self._slots = asyncio.Semaphore(p.concurrent_ingests)
        self._waiting = 0
        self._fetch_wake = asyncio.Event()
        self._owed: dict[bytes, dict[bytes, None]] = {}  # per peer, ids a failed send left it without (in order)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False

    async def __aenter__(self) -> Gossip:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Build the reconciliation index from the store (in a worker thread) and fill the active view."""
        if self._started:
            return
        items = [item async for item in self._store.index_items()]
        self.index = await asyncio.to_thread(ReconcileIndex, items)
        self._started = True
        self._fill_view()
        self._spawn(self._fetch_loop())

    async def close(self) -> None:
        self._started = False
        links = self._view.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *(link.outbox.close() for link in links), return_exceptions=True)
        self._tasks.clear()

    # The view.

    def view(self) -> list[bytes]:
        """The keys of the peers in the active view."""
        return list(self._view.links)

    def add_peer(self, address: PeerAddress) -> None:
        """A verified peer (new, moved, or back): a candidate for our picks (`gossipview`)."""
        if self._started:
            self._view.offer(address, len(self._peers.verified()))

    def owed(self) -> int:
        """How many ids wait to be announced again to peers a send failed to (`resend_delays`)."""
        return sum(len(ids) for ids in self._owed.values())

    def hops_of(self, event: bytes) -> int | None:
        """How many hops the event had travelled when this node first accepted it (None if not remembered)."""
        seen = self._seen.get(event)
        return None if seen is None else seen.hops

    # Ingest: local events, pushes, fetch answers.

    async def publish(self, events: Sequence[SignedEvent]) -> IngestResult:
        """Events made on this node: checked and stored like any other, then gossiped."""
        return await self.ingest(events, None, [0] * len(events))

    async def receive_push(self, origin: bytes, push: Push) -> PushAnswer:
        """A peer's push (the events route): answers per event. Raises Overloaded when too many batches wait."""
        self._note_inbound(origin)
        result = await self.ingest(
            push.events, origin, [hops + 1 for hops in push.hops], queue=True, holders=push.sent_to
        )
        return PushAnswer(tuple(str(answer) for answer in result.answers))

    async def ingest(
        self,
        events: Sequence[SignedEvent],
        origin: bytes | None,
        hops: Sequence[int],
        *,
        queue: bool = False,
        holders: Sequence[bytes] = (),
    ) -> IngestResult:
        """Accept a batch, index and remember what was stored, and forward it. `hops[i]` is event i's hop count
        here; `holders` are nodes known to have every event of the batch. With `queue`, refuse (Overloaded)
        rather than wait behind too many other batches."""
        async with self._ingest_slot(queue):
            result = await self._acceptance.accept(events, origin)
        ids = [event_id(event.body) for event in events]
        hops_by_id = dict(zip(ids, hops, strict=True))
        had = [i for i, answer in zip(ids, result.answers, strict=True) if answer.status in _HAS]
        for (created_at, stored_id), event in zip(result.stored, result.forward, strict=True):
            self.index.insert(created_at, stored_id)
            count = min(hops_by_id[stored_id], MAX_HOPS)
            known = set(self._wants.announcers(stored_id)).union(holders)
            if origin is not None:
                known.add(origin)
            self._remember(stored_id, _Seen(count, known))
            self._forward(event, stored_id, count)
        self._wants.resolve(had)
        return result

    # Announcements and fetches.

    async def receive_ihave(self, origin: bytes, ids: Sequence[bytes], change: LinkChange = LinkChange.NONE) -> None:
        """Note who has what; schedule fetches of what we lack; apply a join or leave."""
        self._note_inbound(origin, change)
        unknown = []
        for announced in ids:
            seen = self._seen.get(announced)
            if seen is not None:
                seen.holders.add(origin)
            elif announced in self._wants:
                self._wants.add(announced, origin, 0.0)
            else:
                unknown.append(announced)
        stored = await self._store.has_many(unknown) if unknown else set()
        now = asyncio.get_running_loop().time()
        for announced in unknown:
            if announced not in stored:
                self._wants.add(announced, origin, now)
        self._fetch_wake.set()

    async def serve_fetch(self, origin: bytes, fetch: Fetch) -> Events:
        """The stored events among those asked for, up to the answer size limit."""
        self._note_inbound(origin)
        events: list[SignedEvent] = []
        hops: list[int] = []
        size = 0
        for stored in await self._store.fetch(fetch.ids):
            event = stored.signed
            size += len(event.body) + len(event.signature) + len(event.content or b"") + 16
            if size > MAX_FETCH_ANSWER_BYTES - 1024:
                break
            events.append(event)
            seen = self._seen.get(stored.id)
            hops.append(seen.hops if seen is not None else 0)
        return Events(tuple(events), tuple(hops))

    async def _fetch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = self._wants.next_due()
            now = loop.time()
            if due is not None and due <= now:
                groups = self._wants.take_due(now)
                await asyncio.gather(*(self._fetch_from(key, ids) for key, ids in groups.items()))
                continue
            self._fetch_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._fetch_wake.wait(), None if due is None else due - now)

    async def _fetch_from(self, key: bytes, ids: list[bytes]) -> None:
        loop = asyncio.get_running_loop()
        record = self._peers.by_key(key)
        address = record.address if record is not None else None
        if address is None:
            self._wants.failed(ids, loop.time())
            return
        for start in range(0, len(ids), MAX_IDS):
            chunk = ids[start : start + MAX_IDS]
            try:
                answer = await self._transport.fetch(address, chunk)
                await self.ingest(answer.events, key, [hops + 1 for hops in answer.hops])
                self.counters.events_fetched += len(answer.events)
            except TransportError:
                self.counters.send_failures += 1
            self._wants.failed([i for i in chunk if i in self._wants], loop.time())

    # Forwarding.

    def _forward(self, event: SignedEvent, forwarded: bytes, hops: int) -> None:
        if hops >= self.policy.max_hops:
            return
        seen = self._seen[forwarded]
        eager = hops < self.policy.eager_hops
        targets = [link for key, link in self._view.links.items() if key not in seen.holders]
        if eager:
            seen.pushed_to = frozenset(link.address.node_key for link in targets)
        for link in targets:
            if eager:
                link.outbox.push(event, hops)
            else:
                link.outbox.announce(forwarded)

    def _new_outbox(self, address: PeerAddress) -> Outbox:
        key = address.node_key

        async def send_push(events: list[SignedEvent], hops: list[int]) -> None:
            await self._send_push(key, events, hops)

        async def send_ihave(ids: list[bytes]) -> None:
            await self._send_ihave(key, ids)

        return Outbox(send_push, send_ihave, self._outbox_limits)

    def _tell(self, link: Link, change: LinkChange) -> None:
        self._spawn(self._send_ihave(link.address.node_key, [], change))

    def _retire(self, link: Link) -> None:
        self._spawn(link.outbox.close())  # from another task: the caller may be running in the outbox's own

    async def _send_push(self, key: bytes, events: list[SignedEvent], hops: list[int]) -> None:
        link = self._view.get(key)
        if link is None:
            return
        try:
            answer = await self._transport.push(link.address, events, hops, self._pushed_to_all(events, key))
        except TransportError:
            self._send_failed(key)
            self._owe(key, [event_id(event.body) for event in events])
            return
        self.counters.events_pushed += len(events)
        await self._peers.record_success(key)
        for event, said in zip(events, answer.answers, strict=True):
            if said in ("ok", "duplicate"):
                self._holds(event_id(event.body), key)

    async def _send_ihave(self, key: bytes, ids: list[bytes], change: LinkChange = LinkChange.NONE) -> None:
        link = self._view.get(key)
        address = link.address if link is not None else None
        if address is None:
            record = self._peers.by_key(key)
            address = record.address if record is not None else None
        if address is None:
            return
        # Peers that announced an id to us since it was queued have it: leave them out.
        ids = [i for i in ids if key not in (seen.holders if (seen := self._seen.get(i)) is not None else ())]
        if not ids and change is LinkChange.NONE:
            return
        try:
            await self._transport.ihave(address, ids, change)
        except TransportError:
            self._send_failed(key)
            self._owe(key, ids)
            return
        self.counters.ids_announced += len(ids)

    def _owe(self, key: bytes, ids: list[bytes]) -> None:
        """Remember `ids` for announcing to `key` again; one task per peer works through `resend_delays`."""
        if not ids or not self._started:
            return
        owed = self._owed.get(key)
        if owed is None:
            if not self.policy.resend_delays:
                self.counters.owed_dropped += len(ids)
                return
            owed = self._owed[key] = {}
            self._spawn(self._resend(key, owed))
        room = max(0, self.policy.max_outbox_items - len(owed))
        owed.update(dict.fromkeys(ids[:room]))
        self.counters.owed_dropped += max(0, len(ids) - room)

    async def _resend(self, key: bytes, owed: dict[bytes, None]) -> None:
        try:
            for delay in self.policy.resend_delays:
                await asyncio.sleep(delay)
                ids = list(owed)
                owed.clear()
                for start in range(0, len(ids), MAX_IDS):
                    chunk = ids[start : start + MAX_IDS]
                    self.counters.ids_resent += len(chunk)
                    await self._send_ihave(key, chunk)  # a failure owes them again, into `owed`
                if not owed:
                    return
            self.counters.owed_dropped += len(owed)  # the peer stayed unreachable: reconciliation heals on reconnect
        finally:
            if self._owed.get(key) is owed:
                del self._owed[key]

    def _send_failed(self, key: bytes) -> None:
        """Count it; a peer whose circuit opened leaves the view, and another is picked in its place."""
        self.counters.send_failures += 1
        if self._transport.health.status(key.hex()).state is CircuitState.OPEN and self._view.remove(key):
            self._fill_view()

    def _fill_view(self) -> None:
        if self._started:
            self._view.fill(
                address
                for address in self._peers.verified()
                if self._transport.health.status(address.node_key.hex()).state is not CircuitState.OPEN
            )

    def _note_inbound(self, origin: bytes, change: LinkChange = LinkChange.NONE) -> None:
        """A peer that gossips with us (or joins) has picked us: link back while there is room."""
        if not self._started:
            return
        if change is LinkChange.LEAVE:
            self._view.left(origin)
            return
        if origin in self._view and change is LinkChange.NONE:
            return
        record = self._peers.by_key(origin)
        if record is not None and record.address is not None:
            self._view.picked_by(record.address)

    # Bookkeeping.

    def _pushed_to_all(self, events: Sequence[SignedEvent], receiver: bytes) -> tuple[bytes, ...]:
        """The other peers every one of `events` was pushed to (for `Push.sent_to`)."""
        common: frozenset[bytes] | None = None
        for event in events:
            seen = self._seen.get(event_id(event.body))
            pushed = seen.pushed_to if seen is not None else frozenset()
            common = pushed if common is None else common & pushed
            if not common:
                return ()
        return tuple(sorted((common or frozenset()) - {receiver}))[:MAX_PEER_ENTRIES]

    def _remember(self, remembered: bytes, seen: _Seen) -> None:
        self._seen[remembered] = seen
        if len(self._seen) > self.policy.remembered_ids:
            self._seen.popitem(last=False)

    def _holds(self, held: bytes, key: bytes) -> None:
        seen = self._seen.get(held)
        if seen is not None:
            seen.holders.add(key)

    @contextlib.asynccontextmanager
    async def _ingest_slot(self, queue: bool) -> AsyncIterator[None]:
        if queue and self._waiting >= self.policy.waiting_ingests:
            self.counters.overloaded += 1
            raise Overloaded("too many batches are waiting to be checked")
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
