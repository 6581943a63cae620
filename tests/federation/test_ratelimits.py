"""Token buckets: burst then refill on the injected clock, one bucket per key, bounded memory."""

from __future__ import annotations

import pytest

from ftm.federation.clock import FakeClock
from ftm.federation.ratelimits import Rate, TokenBuckets


def test_burst_then_refill_per_key() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(Rate(per_second=2, burst=3), clock)
    assert [buckets.take(b"a") for _ in range(4)] == [True, True, True, False]
    assert buckets.take(b"b")  # another key has its own bucket
    clock.advance(0.5)
    assert buckets.take(b"a") and not buckets.take(b"a")
    clock.advance(100)
    assert [buckets.take(b"a") for _ in range(4)] == [True, True, True, False]  # refill stops at the burst


def test_a_clock_stepping_back_refills_nothing() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(Rate(per_second=1, burst=1), clock)
    assert buckets.take(b"a")
    clock.advance(-50)
    assert not buckets.take(b"a")


def test_memory_is_bounded_by_forgetting_the_least_recently_used() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(Rate(per_second=1, burst=1), clock, max_keys=3)
    for key in (b"a", b"b", b"c"):
        assert buckets.take(key)
    assert not buckets.take(b"a")  # a is now the most recently used
    assert buckets.take(b"d")  # forgets b
    assert len(buckets) == 3
    assert not buckets.take(b"a") and not buckets.take(b"c")
    assert buckets.take(b"b")  # forgotten, so back with a full bucket


def test_rate_must_allow_something() -> None:
    with pytest.raises(ValueError, match="per_second"):
        Rate(per_second=0, burst=1)
    with pytest.raises(ValueError, match="burst"):
        Rate(per_second=1, burst=0.5)


def test_take_many_is_the_same_as_that_many_takes() -> None:
    one_by_one, at_once = TokenBuckets(Rate(2, 5), FakeClock()), TokenBuckets(Rate(2, 5), FakeClock())
    assert [one_by_one.take(b"a") for _ in range(7)].count(True) == at_once.take_many(b"a", 7) == 5
    assert at_once.take_many(b"a", 3, now=FakeClock().now() + 1.0) == 2  # two tokens refilled in a second
    assert at_once.take_many(b"a", 0) == 0
