"""Events announced to us (ihave) that we lack: who announced each, and when to fetch it from whom.

An announced id waits a short grace before it is fetched: an event pushed to us may be on its way, and ids
announced by several peers at once are then fetched in one request per announcer; if the event arrives
meanwhile, the id is simply resolved. When the grace ends the id is fetched
from the first peer that announced it, and only from that one, so two announcers of one id never both send it.
If that fetch fails or comes back without the event, the next announcer is tried after `retry` seconds; once
every announcer was tried (up to `max_tries`), the id is dropped and periodic reconciliation finds it later.

Pure bookkeeping on a caller's clock (`now` in seconds), bounded to `max_ids` ids: past that, new announcements
are ignored (counted in `dropped`), which again only leaves the work to reconciliation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Want:
    announcers: list[bytes]
    due: float
    tries: int = 0


@dataclass
class WantList:
    grace: float
    retry: float
    max_ids: int = 10_000
    max_tries: int = 3
    max_announcers: int = 4  # announcers kept per id: more would only be fallbacks after several failures
    dropped: int = 0
    _wants: dict[bytes, _Want] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._wants)

    def __contains__(self, event_id: bytes) -> bool:
        return event_id in self._wants

    def add(self, event_id: bytes, announcer: bytes, now: float) -> None:
        want = self._wants.get(event_id)
        if want is not None:
            if announcer not in want.announcers and len(want.announcers) < self.max_announcers:
                want.announcers.append(announcer)
            return
        if len(self._wants) >= self.max_ids:
            self.dropped += 1
            return
        self._wants[event_id] = _Want([announcer], now + self.grace)

    def announcers(self, event_id: bytes) -> list[bytes]:
        want = self._wants.get(event_id)
        return [] if want is None else list(want.announcers)

    def resolve(self, event_ids: Iterable[bytes]) -> None:
        """These events arrived (by any path): stop wanting them."""
        for event_id in event_ids:
            self._wants.pop(event_id, None)

    def next_due(self) -> float | None:
        return min((want.due for want in self._wants.values()), default=None)

    def take_due(self, now: float) -> dict[bytes, list[bytes]]:
        """The ids due now, grouped by the announcer to fetch each from; they are marked as being fetched (not due
        again until `failed` reschedules them)."""
        groups: dict[bytes, list[bytes]] = {}
        for event_id, want in self._wants.items():
            if want.due <= now:
                announcer = want.announcers[want.tries % len(want.announcers)]
                groups.setdefault(announcer, []).append(event_id)
                want.tries += 1
                want.due = float("inf")
        return groups

    def failed(self, event_ids: Iterable[bytes], now: float) -> None:
        """A fetch did not deliver these: try the next announcer after `retry`, or give up."""
        for event_id in event_ids:
            want = self._wants.get(event_id)
            if want is None:
                continue
            if want.tries >= min(self.max_tries, len(want.announcers)):
                del self._wants[event_id]
                self.dropped += 1
            else:
                want.due = now + self.retry
