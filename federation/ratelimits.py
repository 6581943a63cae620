"""Token-bucket rate limits keyed by a peer or an author, on an injected clock, bounded in memory.

Each key has its own bucket, so one key spending its budget never takes from another: a flooding peer is
refused while every other peer goes on. A bucket holds at most `burst` tokens and refills at `rate` per second.
At most `max_keys` buckets are kept; the least recently used is forgotten first, which costs a forgotten key
nothing (it comes back with a full bucket, as a key idle long enough would have anyway).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ftm.federation.clock import Clock

DEFAULT_MAX_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class Rate:
    """`per_second` tokens a second, up to `burst` saved."""

    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a rate needs per_second > 0 and burst >= 1")


class TokenBuckets:
    def __init__(self, rate: Rate, clock: Clock, *, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.rate = rate
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()  # key -> (tokens, updated_at)

    def take(self, key: bytes, now: float | None = None) -> bool:
        """Spend one of `key`'s tokens if it has one; False (nothing spent) if it does not."""
        return self.take_many(key, 1, now) == 1

    def take_many(self, key: bytes, wanted: int, now: float | None = None) -> int:
        """Spend up to `wanted` of `key`'s tokens; returns how many were spent (a batch's first that many events
        may pass): the same as that many `take` calls at one instant, in one step."""
        if now is None:
            now = self._clock.now()
        tokens = self._tokens(key, now)
        if key in self._buckets:
            self._buckets.move_to_end(key)
        spent = max(0, min(wanted, int(tokens)))
        self._buckets[key] = (tokens - spent, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return spent

    def seconds_until(self, key: bytes, now: float | None = None) -> float:
        """Seconds from `now` until `key` has a whole token to spend (0 if it has one): how long a refused caller
        may be told to wait. Changes nothing."""
        if now is None:
            now = self._clock.now()
        return max(0.0, (1.0 - self._tokens(key, now)) / self.rate.per_second)

    def _tokens(self, key: bytes, now: float) -> float:
        """What `key`'s bucket holds at `now`: full if it has none."""
        found = self._buckets.get(key)
        if found is None:
            return self.rate.burst
        saved, updated_at = found
        # A clock that steps back refills nothing rather than draining the bucket.
        return min(self.rate.burst, saved + max(0.0, now - updated_at) * self.rate.per_second)

    def __len__(self) -> int:
        return len(self._buckets)
