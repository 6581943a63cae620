"""Rate limits on strangers' release-policy requests, so that nobody can grow the keeper's log without bound.

Every release-policy decision is logged (`ftm.keeper.releasing`), refusals included, and the log is append-only:
without a limit, anyone able to sign a request could add an entry per request, forever. A stranger is a key the
keeper does not know (`KeeperStore.knows`: not a host, a guardian, a claim's counterpart or a release's requester).
Its release, move, veto and disaster requests each spend a token of its own bucket and one of a bucket shared by
all strangers (one attacker can make any number of keys; the per-key buckets alone would not bound it). While
both have tokens the request goes to the policy as before, refused and logged as before; once either is empty it
is answered `429 rate_limited` before the policy sees it, and only counted here. Known keys never touch a bucket.
The answer's `Retry-After` is the whole seconds (at least 1) until both of the stranger's buckets would have a
token again: the least a client must wait (other strangers may spend the shared bucket's tokens first).

A token is spent on the request, not on its refusal: a stranger's request that the policy would grant (a move
destination submitting its first claim) costs one too, which is why a burst is several requests. The buckets are
`ftm.federation.ratelimits.TokenBuckets` on the keeper's clock, in memory: a restart forgives everyone.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from ftm.config.keepersettings import KeeperStrangersSettings
from ftm.federation.clock import Clock
from ftm.federation.ratelimits import Rate, TokenBuckets
from ftm.keeper.errors import KeeperError
from ftm.keeper.store import KeeperStore

log = logging.getLogger(__name__)

_EVERYONE = b""  # the one key of the bucket all strangers share
HOUR = 3600.0


def stranger_rates(settings: KeeperStrangersSettings) -> tuple[Rate, Rate]:
    """(per key, all strangers together) from the `[strangers]` settings."""
    per_key = Rate(settings.per_hour_per_key / HOUR, settings.burst_per_key)
    overall = Rate(settings.per_hour_all / HOUR, settings.burst_all)
    return per_key, overall


class RateLimited(KeeperError):
    """`429 rate_limited`, with the seconds after which the same request would be let through (`Retry-After`)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(429, "rate_limited", "too many requests from keys this keeper does not know; try later")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class StrangerCounts:
    """What `ftm-keeper status` and `/healthz` report (since the daemon started)."""

    rate_limited: int  # requests answered 429 and not logged
    keys_tracked: int  # strangers' keys with a bucket in memory (at most the buckets' max_keys)

    def as_dict(self) -> dict[str, int]:
        return {"rate_limited": self.rate_limited, "keys_tracked": self.keys_tracked}


class StrangerGate:
    def __init__(self, store: KeeperStore, clock: Clock, settings: KeeperStrangersSettings) -> None:
        per_key, overall = stranger_rates(settings)
        self._store = store
        self._per_key = TokenBuckets(per_key, clock)
        self._everyone = TokenBuckets(overall, clock, max_keys=1)
        self._rate_limited = 0

    async def admit(self, signer: bytes) -> None:
        """Let a release-policy request from `signer` go on to the policy, or raise `429 rate_limited`."""
        if await self._store.knows(self._store.db, signer):
            return
        # The shared bucket is asked only once the key's own has a token, so a flooding key's excess does not
        # also drain what other strangers share.
        if self._per_key.take(signer) and self._everyone.take(_EVERYONE):
            return
        self._rate_limited += 1
        if self._rate_limited == 1 or self._rate_limited % 1000 == 0:
            log.warning("strangers rate-limited", extra={"rate_limited": self._rate_limited})
        # The request needs a token of both buckets: it is let through once the slower of the two has one.
        wait = max(self._per_key.seconds_until(signer), self._everyone.seconds_until(_EVERYONE))
        raise RateLimited(max(1, math.ceil(wait)))

    def counts(self) -> StrangerCounts:
        return StrangerCounts(self._rate_limited, len(self._per_key))
