"""What every operation on what the keeper holds stands on (`ftm.keeper.receiving`, `.destroying`, `.reading`,
`.proving`): the keeper's key, database, store, replica files, journal and clock, one lock per resident, and the
one way to find a host's own deposit of an epoch.

Work on one resident's files is serialised by its lock; file work happens before the transaction that records it
(a crash in between leaves either nothing recorded or, after a destroy, orphan ciphertext that
`KeeperService.start_up` sweeps away).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.identity import SigningKey
from ftm.keeper.errors import KeeperError
from ftm.keeper.journal import Journal
from ftm.keeper.replicas import Replicas
from ftm.keeper.store import DepositRecord, KeeperStore

SEALED = ("held", "committed")  # the states in which a replica is complete and its root checked


class ResidentLocks:
    """One asyncio lock per resident, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, resident_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(resident_id, (asyncio.Lock(), 0))
        self._locks[resident_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[resident_id]
            if users == 1:
                del self._locks[resident_id]
            else:
                self._locks[resident_id] = (lock, users - 1)


@dataclass(frozen=True, slots=True)
class HoldingParts:
    key: SigningKey
    db: Database
    store: KeeperStore
    replicas: Replicas
    journal: Journal
    clock: Clock
    locks: ResidentLocks = field(default_factory=ResidentLocks)

    @property
    def keeper_key(self) -> bytes:
        return self.key.public_key

    def now(self) -> int:
        return int(self.clock.now())

    async def host_deposit(self, signer: bytes, resident_id: str, epoch: int) -> DepositRecord:
        """The signer's deposit of this epoch; the signer must be an enrolled host."""
        await self.require_host(signer)
        record = await self.store.deposit(self.db, signer, resident_id, epoch)
        if record is None:
            raise KeeperError(404, "unknown_epoch", f"no deposit of epoch {epoch} of {resident_id} from this host")
        return record

    async def require_host(self, signer: bytes) -> None:
        """Refuse (`not_a_host`, 403, not logged: strangers cannot grow the log) anyone but an enrolled host."""
        if await self.store.host(self.db, signer) is None:
            raise KeeperError(403, "not_a_host", "this keeper serves only the hosts it enrolled with")
