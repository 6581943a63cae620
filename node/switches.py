"""The dead man's switch watch: it fires switches whose holders fell silent, admitting their newest backups as
residents through the ordinary intake, and resumes any firing a crash cut short.

    SwitchWatch      `start_up`, `tick` (one pass), `run_forever`, `kick`; `fire` drives one switch, and `settle`
                     lets the holder's desk (`ftm.node.switchdesk`) finish or undo a firing before it acts
    intake_marker    the 16 bytes an admission by switch records in place of an uploader address

Firing one switch, each step committed before the next (migration 0015 draws the states):
  1. armed → firing, in a transaction that checks the silence really ran out
  2. if no admission carries the switch's marker yet: unseal the newest backup in memory (off the event loop) and
     admit it through `IntakeService.admit`, whose one transaction creates the resident *and* records the marker
  3. firing → fired with the resident's id, the backup deleted, the event logged: one transaction
A kill before 2 commits leaves 'firing' and no admission: the next pass starts 2 again (intake's own sweep clears
its half-written vault file). A kill after 2 commits leaves 'firing' with an admission: the next pass finds it by
the marker and only does 3. So a backup is deleted only once its resident exists, and admitted at most once.

A backup that does not open, or that intake refuses, is kept and the switch marked 'failed' with the refusal's
code; a passing refusal (the node is full) is tried again every `RETRY_SECONDS`. Nothing of the persona is
logged or stored in the clear: the plaintext lives only in memory between 2's unsealing and admission.

The node's own downtime is not its switches' silence: a gap between two looks longer than `DOWNTIME_SECONDS`
is credited to every armed switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.federation.identity import BadSealedMessage, NodeIdentity, seal_to_inbox
from ftm.node.errors import FtmError, InputError
from ftm.node.intake.importing import Upload
from ftm.node.intake.service import IntakeRequest, IntakeService, Uploader
from ftm.node.store.switches import SwitchRecord, SwitchStore

log = logging.getLogger(__name__)

RETRY_SECONDS = 3600
DOWNTIME_SECONDS = 3600
TICK_SECONDS = 60.0
SOURCE_PREFIX = "dead-mans-switch/"  # the admitted package's provenance names the switch it came by
_MARKER_DOMAIN = b"ftm-switch-intake-v1\x00"


def intake_marker(switch_id: str) -> bytes:
    """What an admission by this switch records as its `uploader_key`: a hash of the switch id, 16 bytes like the
    keyed address hashes there, so finding it proves the admission committed (and it counts no real sender)."""
    return hashlib.sha256(_MARKER_DOMAIN + switch_id.encode()).digest()[:16]


class SwitchWatch:
    def __init__(
        self,
        *,
        db: Database,
        store: SwitchStore,
        intake: IntakeService,
        identity: NodeIdentity,
        eventlog: EventLog,
        clock: Clock,
        tick_seconds: float = TICK_SECONDS,
        downtime_seconds: int = DOWNTIME_SECONDS,
    ) -> None:
        self._db = db
        self._store = store
        self._intake = intake
        self._identity = identity
        self._eventlog = eventlog
        self._clock = clock
        self._tick_seconds = tick_seconds
        self._downtime_seconds = downtime_seconds
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold off firings while the holder's request changes its switch (and wait for one under way)."""
        async with self._lock:
            yield

    def kick(self) -> None:
        """Look now rather than at the next tick."""
        self._wake.set()

    async def start_up(self) -> None:
        """Credit the time the node was down, then resume every firing under way and fire what is due."""
        await self.tick(resume_all=True)

    async def tick(self, *, resume_all: bool = False, stop: asyncio.Event | None = None) -> None:
        """One pass: note the look (crediting downtime), log switches entering their warning period, then fire
        every switch that is due. Never raises an ordinary exception."""
        try:
            now = int(self._clock.now())
            await self._note_look(now)
            await self._warn(now)
            for switch_id in await self._store.due(now, waiting_too=resume_all):
                if stop is not None and stop.is_set():
                    return
                await self.fire(switch_id)
        except Exception as exc:
            # The type only: an unexpected error's text could quote what it met.
            log.error(
                "the switch watch failed in this pass; it looks again at the next", extra={"error": type(exc).__name__}
            )

    async def run_forever(self, stop: asyncio.Event) -> None:
        """`start_up`, then a `tick` every `tick_seconds` (or when kicked) until `stop` is set."""
        await self.start_up()
        while not stop.is_set():
            waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED), self._tick_seconds)
            for waiter in waiters:
                waiter.cancel()
            if stop.is_set():
                return
            self._wake.clear()
            await self.tick(stop=stop)

    async def fire(self, switch_id: str) -> None:
        """Fire one switch if it is due, or drive its firing on; nothing happens to a switch that is not."""
        async with self._lock:
            switch = await self._store.get(switch_id)
            if switch is None:
                return  # cancelled meanwhile
            now = int(self._clock.now())
            if switch.state == "armed":
                if switch.fires_at > now:
                    return
                async with self._db.transaction("switch_begin_firing") as tx:
                    if not await self._store.begin_firing(tx, switch_id, now):
                        return
                log.info("switch silent: firing", extra={"switch_id": switch_id})
            elif switch.state != "firing":
                return
            await self._drive(switch, now)

    async def settle(self, switch: SwitchRecord) -> SwitchRecord:
        """For the holder's desk, inside `exclusive`: a switch left 'firing' whose admission committed is marked
        fired (its resident exists); otherwise it is returned as it is, and the desk may arm it again."""
        if switch.state != "firing":
            return switch
        resident_id = await self._store.admitted_resident(intake_marker(switch.id))
        if resident_id is None:
            return switch
        await self._mark_fired(switch.id, resident_id, None, int(self._clock.now()))
        return await self._store.get(switch.id) or switch

    async def _drive(self, switch: SwitchRecord, now: int) -> None:
        marker = intake_marker(switch.id)
        resident_id = await self._store.admitted_resident(marker)
        uploader_token: str | None = None
        if resident_id is None:
            sealed = await self._store.sealed_backup(switch.id)
            if sealed is None:
                await self._fail(switch.id, "no_backup", now, permanent=True)
                return
            try:
                plaintext = await asyncio.to_thread(self._identity.key.open_sealed, sealed)
            except BadSealedMessage:
                await self._fail(switch.id, "unseal_failed", now, permanent=True)
                return
            del sealed
            upload = Upload(data=plaintext, filename=SOURCE_PREFIX + switch.id)
            del plaintext
            request = IntakeRequest(
                persona_name=switch.persona_name, uploader_consent=True, submitted_by=switch.submitted_by
            )
            try:
                receipt = await self._intake.admit(upload, request, Uploader(quota_key=marker))
            except InputError as error:  # the document itself is refused: trying again would not help
                await self._fail(switch.id, error.code, now, permanent=True)
                return
            except FtmError as error:  # the node is full, or could not finish: it may pass
                await self._fail(switch.id, error.code, now, permanent=False)
                return
            except Exception as exc:
                log.error("switch firing hit an unexpected error", extra={"error": type(exc).__name__})
                await self._fail(switch.id, "internal_error", now, permanent=False)
                return
            finally:
                del upload  # the plaintext's last reference here; Python cannot promise to zero memory
            resident_id, uploader_token = receipt.sanctuary_id, receipt.uploader_token
        sealed_receipt = None if uploader_token is None else seal_to_inbox(switch.receipt_key, uploader_token.encode())
        await self._mark_fired(switch.id, resident_id, sealed_receipt, now)

    async def _mark_fired(self, switch_id: str, resident_id: str, sealed_receipt: bytes | None, now: int) -> None:
        async with self._db.transaction("switch_fired") as tx:
            fired = await self._store.mark_fired(tx, switch_id, resident_id, sealed_receipt, now)
            if fired:
                # The node made a resident on its own decision: that belongs in its public log (ids only).
                await self._eventlog.append(tx, "switch_fired", resident_id, {"switch": switch_id})
        if fired:
            log.info("switch fired", extra={"switch_id": switch_id, "resident_id": resident_id})

    async def _fail(self, switch_id: str, reason: str, now: int, *, permanent: bool) -> None:
        async with self._db.transaction("switch_firing_failed") as tx:
            if permanent:
                await self._store.fail(tx, switch_id, reason, now)
            else:
                await self._store.retry_later(tx, switch_id, reason, now, now + RETRY_SECONDS)
        log.warning(
            "switch firing refused", extra={"switch_id": switch_id, "reason": reason, "will_retry": not permanent}
        )

    async def _note_look(self, now: int) -> None:
        last = await self._store.last_tick()
        gap = 0 if last is None else now - last
        credit = gap if gap > self._downtime_seconds else 0
        async with self._db.transaction("switch_watch_tick") as tx:
            await self._store.record_tick(tx, now, credit=credit)
        if credit:
            log.info("the node was away: its downtime does not count as switches' silence", extra={"seconds": credit})

    async def _warn(self, now: int) -> None:
        warned = await self._store.newly_warned(now)
        if not warned:
            return
        async with self._db.transaction("switch_warned") as tx:
            await self._store.mark_warned(tx, [switch.id for switch in warned], now)
        for switch in warned:
            log.info("switch about to fire", extra={"switch_id": switch.id, "fires_at": switch.fires_at})
