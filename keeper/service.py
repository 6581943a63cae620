"""The keeper's operations (docs/custody.md, "Keeper side"), as the HTTP layer (`ftm.keeper.server`) reaches them:
one part per job, all standing on the same `HoldingParts` (key, database, store, replicas, journal, clock, a lock
per resident).

    receiving   a host's deposit, data, seal, commit            ftm.keeper.receiving
    destroying  a host's destroy order, a resident's tombstone  ftm.keeper.destroying
    reading     replica bytes for the host or a released party  ftm.keeper.reading
    proving     a host's challenge: proofs of possession        ftm.keeper.proving
    releasing   release, move, veto, disaster (the policy)      ftm.keeper.releasing
    strangers   rate limits on strangers' policy requests       ftm.keeper.strangers

What is left here is small: a host's heartbeat, anyone's holdings, the refusals owed to a host, and the start-up
sweep. Each operation that decides something records its decision in the signed log inside the transaction that
acts on it (`ftm.keeper.journal`), and only then answers. Host operations need a request signed by an enrolled host
(`hosts` table), for its own deposits; requests from keys that are not hosts are refused (`not_a_host`, 403)
without a log entry, so strangers cannot grow the log (and their release-policy requests are rate-limited).
"""

from __future__ import annotations

import logging

from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.identity import SigningKey
from ftm.keeper.destroying import Destroying
from ftm.keeper.errors import KeeperError
from ftm.keeper.holdingparts import HoldingParts
from ftm.keeper.journal import Journal
from ftm.keeper.protocol import MAX_RESIDENTS_LISTED, Ack, Heartbeat, HoldingEntry, Holdings, HoldingsAnswer
from ftm.keeper.proving import Proving
from ftm.keeper.reading import Reading
from ftm.keeper.receiving import Limits, Receiving
from ftm.keeper.releasing import Releasing
from ftm.keeper.replicas import Replicas, host_dir_name
from ftm.keeper.store import LIVE_STATES, KeeperStore
from ftm.keeper.strangers import StrangerGate

__all__ = ["KeeperService", "Limits"]

log = logging.getLogger(__name__)


class KeeperService:
    def __init__(
        self,
        *,
        key: SigningKey,
        db: Database,
        store: KeeperStore,
        replicas: Replicas,
        journal: Journal,
        releasing: Releasing,
        clock: Clock,
        limits: Limits,
        strangers: StrangerGate,
    ) -> None:
        self.key = key
        self.db = db
        self.store = store
        self.replicas = replicas
        self.journal = journal
        self.clock = clock
        self.limits = limits
        parts = HoldingParts(key, db, store, replicas, journal, clock)
        self.receiving = Receiving(parts, limits)
        self.destroying = Destroying(parts)
        self.reading = Reading(parts)
        self.proving = Proving(parts)
        self.releasing = releasing
        self.strangers = strangers

    @property
    def keeper_key(self) -> bytes:
        return self.key.public_key

    async def start_up(self) -> int:
        """Remove replica files of epochs no longer live (a crash after a destroy committed); how many."""
        live = {
            (host_dir_name(d.host_key), d.resident_id, d.epoch)
            for d in await self.store.all_deposits()
            if d.state in LIVE_STATES
        }
        removed = await self.replicas.sweep(live)
        if removed:
            log.info("orphan replica files removed", extra={"files": removed})
        return removed

    async def take_refusals(self, signer: bytes) -> int:
        """Refusals concerning `signer`'s residents since it was last told (0 for anyone but a host)."""
        host = await self.store.host(self.db, signer)
        if host is None or not host.refusals:
            return 0
        async with self.db.transaction("keeper.refusals_reported") as tx:
            return await self.store.take_refusals(tx, signer)

    async def heartbeat(self, signer: bytes, heartbeat: Heartbeat) -> Ack:
        now = int(self.clock.now())
        async with self.db.transaction("keeper.heartbeat") as tx:
            if not await self.journal.contact(tx, signer, now):
                raise KeeperError(403, "not_a_host", "this keeper serves only the hosts it enrolled with")
        return Ack("", 0, "alive", now)

    async def holdings(self, holdings: Holdings) -> HoldingsAnswer:
        records = await self.store.holdings(holdings.host_key, MAX_RESIDENTS_LISTED)
        entries = tuple(HoldingEntry(r.resident_id, r.epoch, r.state, r.length, r.root, r.commitments) for r in records)
        return HoldingsAnswer(self.keeper_key, holdings.host_key, entries)
