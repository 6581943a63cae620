"""When a custody request to a keeper failed: the delivery row remembers the failure and when to try again.

Every step of the custody worker that talks to one keeper about one epoch (deliver, commit, destroy, tombstone,
repair) retries the same way: after `retry_seconds`, doubling with each failure up to `MAX_BACKOFF_FACTOR` times
that, counted in the delivery's `tries`. The code of the last failure is kept (a code, never content).
"""

from __future__ import annotations

import logging

from ftm.node.store.custody import CustodyStore, Delivery

log = logging.getLogger(__name__)

MAX_BACKOFF_FACTOR = 64
MAX_CODE_CHARS = 100


async def retry_later(store: CustodyStore, delivery: Delivery, code: str, *, now: int, retry_seconds: int) -> None:
    """Record a failed request about `delivery` and put its next try off (`next_try_at`)."""
    delay = retry_seconds * min(2**delivery.tries, MAX_BACKOFF_FACTOR)
    await store.update_delivery(
        delivery.resident_id, delivery.epoch, delivery.keeper_key, now,
        tries=delivery.tries + 1, next_try_at=now + delay, last_error=code[:MAX_CODE_CHARS],
    )  # fmt: skip
    log.info(
        "keeper request failed; retrying later",
        extra={"resident_id": delivery.resident_id, "epoch": delivery.epoch, "x": delivery.x, "code": code},
    )
