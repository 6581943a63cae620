"""What gossip has queued for one peer (events to push, ids to announce) and the task that sends it in batches.

Batching is what keeps gossip's bytes near the payload: one request's headers (about 700 bytes with the signature
headers, both ways) are shared by every event or id in it. So the sender waits `flush_delay` after the first
event is queued and `announce_delay` after the first id (or until `max_ids` gather), then sends what has gathered:
pushes of up to `max_events` events or `max_bytes` bytes, and ihaves of up to `max_ids` ids, until nothing due is
left. Sends to one peer are sequential; peers do not wait for one another. The queue is bounded: items beyond
`max_items` are dropped and counted (reconciliation heals).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ftm.federation.events import SignedEvent

log = logging.getLogger(__name__)

SendPush = Callable[[list[SignedEvent], list[int]], Awaitable[None]]
SendIHave = Callable[[list[bytes]], Awaitable[None]]
_EVENT_OVERHEAD = 8  # msgpack headers around an event's three fields in a push


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    flush_delay: float = 0.05
    announce_delay: float = 0.05
    max_events: int = 500
    max_bytes: int = 1024 * 1024
    max_ids: int = 1000
    max_items: int = 10_000


class Outbox:
    def __init__(self, send_push: SendPush, send_ihave: SendIHave, limits: OutboxLimits) -> None:
        self._send_push = send_push
        self._send_ihave = send_ihave
        self.limits = limits
        self._events: deque[tuple[SignedEvent, int]] = deque()
        self._ids: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._events_since = 0.0  # when the oldest queued event was queued (loop time)
        self._ids_since = 0.0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._events) + len(self._ids)

    def push(self, event: SignedEvent, hops: int) -> None:
        if len(self) >= self.limits.max_items:
            self.dropped += 1
            return
        if not self._events:
            self._events_since = asyncio.get_running_loop().time()
        self._events.append((event, hops))
        self._kick()

    def announce(self, event_id: bytes) -> None:
        if len(self) >= self.limits.max_items:
            self.dropped += 1
            return
        if not self._ids:
            self._ids_since = asyncio.get_running_loop().time()
        self._ids.append(event_id)
        self._kick()

    async def close(self) -> None:
        """Stop sending; what is still queued is dropped (reconciliation heals it)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._events.clear()
        self._ids.clear()

    def _kick(self) -> None:
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            due = self._due()
            if due is None:
                continue
            if due > loop.time():
                # Sleep until the earlier deadline; an item queued meanwhile cannot make it earlier.
                await asyncio.sleep(due - loop.time())
            now = loop.time()
            while self._events and (now >= self._events_since + self.limits.flush_delay):
                events, hops = self._take_events()
                await self._guarded(self._send_push(events, hops))
            if self._ids and (
                now >= self._ids_since + self.limits.announce_delay or len(self._ids) >= self.limits.max_ids
            ):
                while self._ids:
                    ids = [self._ids.popleft() for _ in range(min(len(self._ids), self.limits.max_ids))]
                    await self._guarded(self._send_ihave(ids))
                self._ids_since = loop.time()
            if self._events or self._ids:
                self._wake.set()

    def _due(self) -> float | None:
        """When the next send is due: the oldest queued event's flush, or the oldest queued id's."""
        dues = []
        if self._events:
            dues.append(self._events_since + self.limits.flush_delay)
        if self._ids:
            dues.append(self._ids_since + self.limits.announce_delay)
        return min(dues, default=None)

    def _take_events(self) -> tuple[list[SignedEvent], list[int]]:
        events: list[SignedEvent] = []
        hops: list[int] = []
        size = 0
        while self._events and len(events) < self.limits.max_events:
            event, count = self._events[0]
            event_size = len(event.body) + len(event.signature) + len(event.content or b"") + _EVENT_OVERHEAD
            if events and size + event_size > self.limits.max_bytes:
                break
            self._events.popleft()
            events.append(event)
            hops.append(count)
            size += event_size
        self._events_since = asyncio.get_running_loop().time() - self.limits.flush_delay  # the rest is due now
        return events, hops

    @staticmethod
    async def _guarded(sending: Awaitable[None]) -> None:
        """A failed send is the sender callback's to count; it must not end the outbox's task."""
        try:
            await sending
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("gossip send failed unexpectedly")
