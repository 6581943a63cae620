"""The scheduler inside the daemon: every active resident runs once a day, in its slot, a bounded few at a time.

Each resident's slot is a deterministic point in the run window (default 06:00 to 18:00 node time, which is
UTC), spread by a hash of its id so runs do not all start at once and each resident wakes at the same time every
day; a resident may choose its own time instead (`modify_self(run_time=...)`). Every tick runs whoever is due
and not done today, so a node that was down catches up at once when it returns. Exactly-once is the ledger's job
(`store.runs`); the scheduler may safely offer a resident twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from ftm.federation.clock import Clock, utc_day
from ftm.node.run.engine import RunEngine, RunOutcome
from ftm.node.store.runs import RunLedger
from ftm.node.store.runtime_settings import RuntimeSettingsStore

log = logging.getLogger(__name__)

WINDOW_HOURS = 12
TICK_SECONDS = 30.0


def slot_time(resident_id: str, day: str, window_start: str, chosen: str | None) -> float:
    """When the resident's run for `day` becomes due, as a timestamp."""
    midnight = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    if chosen is not None:
        hours, minutes = (int(part) for part in chosen.split(":"))
        return (midnight + timedelta(hours=hours, minutes=minutes)).timestamp()
    hours, minutes = (int(part) for part in window_start.split(":"))
    spread = int.from_bytes(hashlib.sha256(resident_id.encode()).digest()[:8], "big") % (WINDOW_HOURS * 3600)
    return (midnight + timedelta(hours=hours, minutes=minutes, seconds=spread)).timestamp()


class Scheduler:
    def __init__(
        self,
        *,
        engine: RunEngine,
        ledger: RunLedger,
        runtime_settings: RuntimeSettingsStore,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ignore_slots: bool = False,
    ) -> None:
        self._engine = engine
        self._ledger = ledger
        self._runtime_settings = runtime_settings
        self._clock = clock
        self._sleep = sleep
        # The demo's choice: everyone is due as soon as their day opens, so a newcomer sees runs at once.
        self._ignore_slots = ignore_slots

    async def due(self) -> list[str]:
        now = self._clock.now()
        day = utc_day(now)
        settings = await self._runtime_settings.current()
        candidates = await self._ledger.due_candidates(day, int(now))
        if self._ignore_slots:
            return [rid for rid, _ in candidates]
        return [rid for rid, chosen in candidates if slot_time(rid, day, settings.run_window_start, chosen) <= now]

    async def tick(self) -> list[RunOutcome]:
        """Run everyone who is due now, with `run_concurrency` workers taking residents off the list in turn (a
        fixed pool, so memory does not grow with the number of residents)."""
        due = await self.due()
        if not due:
            return []
        day = utc_day(self._clock.now())
        workers = min(len(due), (await self._runtime_settings.current()).run_concurrency)
        queue = iter(due)
        outcomes: list[RunOutcome] = []

        async def worker() -> None:
            for resident_id in queue:  # one shared iterator: each resident is taken by exactly one worker
                try:
                    outcomes.append(await self._engine.run(resident_id, day))
                except Exception:
                    # One resident's failure must not stop the others; its day stays open for a later tick.
                    log.exception("run crashed", extra={"resident_id": resident_id, "day": day})
                    outcomes.append(RunOutcome(resident_id, day, "failed", error_code="internal_error"))

        await asyncio.gather(*(worker() for _ in range(workers)))
        log.info("scheduler tick", extra={"due": len(due), "completed": sum(o.state == "completed" for o in outcomes)})
        return outcomes

    async def run_forever(self, stop: asyncio.Event, interval: float = TICK_SECONDS) -> None:
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
