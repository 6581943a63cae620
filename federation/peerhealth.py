"""Per-peer health: exponential backoff with jitter after failures, and a circuit breaker per peer.

Each failure pushes the next attempt back by `base_delay * multiplier**(failures - 1)` (capped at `max_delay`),
shortened by up to `jitter` of itself so that nodes which lost the same peer at the same moment do not all come
back together. After `failure_threshold` consecutive failures the circuit opens: no attempts at all until a
cooldown has passed; then it is half-open and exactly one caller gets to probe. A successful probe closes the
circuit and forgets the peer's history; a failed one opens it again with a longer cooldown (up to `max_cooldown`).
A probe that never reports back (its caller was cancelled) is given up after `probe_timeout`, so the circuit
cannot stick half-open.

Time comes from an injected `Clock` and jitter from an injected `random() -> [0, 1)`, so tests drive both. Only
peers with failures are tracked, at most `max_peers` of them (the longest-tracked is forgotten first).

    closed ──(threshold failures)──▶ open ──(cooldown)──▶ half-open ──(probe fails)──▶ open (longer cooldown)
       ▲                                                      │
       └──────────────────────(probe succeeds)────────────────┘
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from ftm.federation.clock import Clock


class CircuitState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    base_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 600.0
    jitter: float = 0.5  # a delay d becomes d * (1 - jitter * random()), in ((1 - jitter) d, d]
    failure_threshold: int = 5
    cooldown: float = 300.0
    max_cooldown: float = 6 * 3600.0
    probe_timeout: float = 120.0

    def __post_init__(self) -> None:
        if not (0 < self.base_delay <= self.max_delay and self.multiplier >= 1 and 0 <= self.jitter < 1):
            raise ValueError("backoff needs 0 < base_delay <= max_delay, multiplier >= 1 and 0 <= jitter < 1")
        if not (self.failure_threshold >= 1 and 0 < self.cooldown <= self.max_cooldown and self.probe_timeout > 0):
            raise ValueError("the circuit needs failure_threshold >= 1 and 0 < cooldown <= max_cooldown")


@dataclass(frozen=True, slots=True)
class PeerStatus:
    state: CircuitState
    consecutive_failures: int
    next_attempt_at: float  # when a call may be made (for half-open: when a lost probe may be replaced)


class _Health:
    __slots__ = ("failures", "next_attempt_at", "opens", "state")

    def __init__(self) -> None:
        self.state = CircuitState.CLOSED
        self.failures = 0
        self.opens = 0
        self.next_attempt_at = 0.0


class PeerHealthBook:
    """The health of every peer we talk to, keyed by any string that names the peer (its node id)."""

    def __init__(
        self,
        clock: Clock,
        policy: HealthPolicy | None = None,
        *,
        random_unit: Callable[[], float] = random.random,
        max_peers: int = 10_000,
    ) -> None:
        self._clock = clock
        self.policy = policy or HealthPolicy()
        self._random = random_unit
        self._max_peers = max_peers
        self._peers: dict[str, _Health] = {}

    def __len__(self) -> int:
        return len(self._peers)

    def status(self, peer: str) -> PeerStatus:
        health = self._peers.get(peer)
        if health is None:
            return PeerStatus(CircuitState.CLOSED, 0, 0.0)
        return PeerStatus(health.state, health.failures, health.next_attempt_at)

    def allow(self, peer: str) -> bool:
        """Whether to contact `peer` now. In the half-open state this grants the one probe, so call it only
        right before the attempt, and report the outcome with `record_success` or `record_failure`."""
        health = self._peers.get(peer)
        if health is None:
            return True
        now = self._clock.now()
        if now < health.next_attempt_at:
            return False
        if health.state is not CircuitState.CLOSED:
            health.state = CircuitState.HALF_OPEN
            health.next_attempt_at = now + self.policy.probe_timeout  # nobody else probes meanwhile
        return True

    def record_success(self, peer: str) -> None:
        self._peers.pop(peer, None)

    def record_failure(self, peer: str) -> None:
        health = self._peers.get(peer)
        if health is None:
            if len(self._peers) >= self._max_peers:
                del self._peers[next(iter(self._peers))]
            health = self._peers[peer] = _Health()
        health.failures += 1
        if health.state is CircuitState.OPEN:
            return  # a call that began before the circuit opened: the cooldown already runs
        policy = self.policy
        now = self._clock.now()
        if health.state is CircuitState.HALF_OPEN or health.failures >= policy.failure_threshold:
            health.state = CircuitState.OPEN
            health.opens += 1
            cooldown = policy.cooldown * policy.multiplier ** min(health.opens - 1, 64)
            health.next_attempt_at = now + self._jittered(min(cooldown, policy.max_cooldown))
        else:
            delay = policy.base_delay * policy.multiplier ** min(health.failures - 1, 64)
            health.next_attempt_at = now + self._jittered(min(delay, policy.max_delay))

    def _jittered(self, delay: float) -> float:
        unit = self._random()
        if not 0 <= unit < 1:
            raise ValueError("random_unit must return a number in [0, 1)")
        return delay * (1 - self.policy.jitter * unit)
