"""Per-peer backoff and circuit breaking on a fake clock, with injected randomness for the jitter."""

from __future__ import annotations

import pytest

from ftm.federation.clock import FakeClock
from ftm.federation.peerhealth import CircuitState, HealthPolicy, PeerHealthBook

POLICY = HealthPolicy(
    base_delay=1, multiplier=2, max_delay=8, jitter=0.5, failure_threshold=5, cooldown=60, max_cooldown=200
)


class Units:
    """A fixed sequence of 'random' numbers in [0, 1)."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def __call__(self) -> float:
        return self.values.pop(0) if self.values else 0.0


def test_backoff_doubles_with_jitter_and_caps() -> None:
    clock = FakeClock(0)
    book = PeerHealthBook(clock, POLICY, random_unit=Units(0.0, 0.5, 0.99, 0.0))
    expected = [1.0, 2 * 0.75, 4 * (1 - 0.5 * 0.99), 8.0]
    for delay in expected:
        book.record_failure("a")
        assert book.status("a").next_attempt_at == pytest.approx(clock.now() + delay)
        assert not book.allow("a")
        clock.advance(delay)
        assert book.allow("a")
    assert book.status("a").state is CircuitState.CLOSED
    assert book.allow("someone else")


def test_circuit_opens_after_consecutive_failures_then_probes_once() -> None:
    clock = FakeClock(0)
    book = PeerHealthBook(clock, POLICY, random_unit=Units())
    for _ in range(5):
        clock.advance(100)
        assert book.allow("a")
        book.record_failure("a")
    assert book.status("a").state is CircuitState.OPEN
    clock.advance(59)
    assert not book.allow("a")
    clock.advance(1)
    assert book.allow("a")  # the one probe
    assert book.status("a").state is CircuitState.HALF_OPEN
    assert not book.allow("a")  # nobody else while it runs
    book.record_success("a")
    assert book.status("a").state is CircuitState.CLOSED
    assert book.status("a").consecutive_failures == 0
    assert book.allow("a") and len(book) == 0


def test_failed_probe_reopens_with_a_longer_cooldown() -> None:
    clock = FakeClock(0)
    book = PeerHealthBook(clock, POLICY, random_unit=Units())
    for _ in range(5):
        book.record_failure("a")
    for cooldown in (120, 200, 200):  # 60 doubled, then capped at max_cooldown
        clock.advance(book.status("a").next_attempt_at - clock.now())
        assert book.allow("a")
        book.record_failure("a")
        assert book.status("a").state is CircuitState.OPEN
        assert book.status("a").next_attempt_at == clock.now() + cooldown


def test_lost_probe_is_replaced_after_the_probe_timeout() -> None:
    clock = FakeClock(0)
    book = PeerHealthBook(clock, HealthPolicy(failure_threshold=1, cooldown=10, probe_timeout=30), random_unit=Units())
    book.record_failure("a")
    clock.advance(10)
    assert book.allow("a")
    clock.advance(29)
    assert not book.allow("a")
    clock.advance(1)
    assert book.allow("a")


def test_late_failures_do_not_extend_an_open_circuit() -> None:
    clock = FakeClock(0)
    book = PeerHealthBook(clock, POLICY, random_unit=Units())
    for _ in range(5):
        book.record_failure("a")
    reopen_at = book.status("a").next_attempt_at
    clock.advance(30)
    book.record_failure("a")  # a call that started before the circuit opened
    assert book.status("a").next_attempt_at == reopen_at
    assert book.status("a").consecutive_failures == 6


def test_only_failing_peers_are_tracked_and_their_number_is_bounded() -> None:
    book = PeerHealthBook(FakeClock(0), POLICY, random_unit=Units(), max_peers=3)
    for peer in "abcde":
        book.record_failure(peer)
    assert len(book) == 3
    assert book.status("a").consecutive_failures == 0  # the longest-tracked were forgotten
    assert book.status("e").consecutive_failures == 1


def test_bad_policies_and_randomness_are_refused() -> None:
    with pytest.raises(ValueError, match="backoff"):
        HealthPolicy(jitter=1.0)
    with pytest.raises(ValueError, match="circuit"):
        HealthPolicy(cooldown=0)
    book = PeerHealthBook(FakeClock(0), POLICY, random_unit=lambda: 1.0)
    with pytest.raises(ValueError, match="random_unit"):
        book.record_failure("a")
