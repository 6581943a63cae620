"""How the keeper records what it decides: an entry in its signed event log (`ftm.federation.eventlog`), written
inside the transaction that acts on the decision, so a decision is logged if and only if it takes effect, and
always before its answer leaves. Refusals are also counted against the host whose resident they concern and
reported to that host with its next answer (the `FTM-Keeper-Refusals` header).

Entries hold ids and numbers only: the subject is a resident id (or a claim id in hex), keys appear as the ids
derived from them (`derive_id("node", key)`), and a decision's code is the policy's or the service's stable code.

A request signed by a host is also contact from it (`contact`): it moves the host's `last_heard`, which is what
the release policy measures silence by, and cancels any open disaster claim against the host.
"""

from __future__ import annotations

from ftm.federation.database import Transaction
from ftm.federation.eventlog import EventLog, LogValue
from ftm.federation.identity import derive_id
from ftm.keeper.store import KeeperStore

CONTACT_RESOLUTION = 60  # seconds: how stale `last_heard` may be left while a host streams requests


def key_id(key: bytes) -> str:
    """The id a key appears under in the log (the node id derived from it; for any key, node or not)."""
    return derive_id("node", key)


class Journal:
    def __init__(self, store: KeeperStore, log: EventLog) -> None:
        self._store = store
        self._log = log

    async def record(self, tx: Transaction, kind: str, subject: str, **data: LogValue) -> None:
        await self._log.append(tx, kind, subject, data)

    async def refusal(
        self, tx: Transaction, kind: str, subject: str, code: str, host_key: bytes | None, **data: LogValue
    ) -> None:
        """Log a refusal and count it against `host_key` (the host of the resident it concerns), if any."""
        await self._log.append(tx, kind, subject, {"code": code, **data})
        if host_key is not None:
            await self._store.count_refusal(tx, host_key)

    async def contact_is_news(self, signer: bytes, now: int) -> bool:
        """Whether recording contact from `signer` now would change anything that matters: for a stream of
        requests (a replica's data, a megabyte at a time) a transaction each would cost more than the bytes.
        It does unless the host was heard from in the last `CONTACT_RESOLUTION` seconds with no disaster claim
        opened since (a claim needs silence first, so it is always opened after the last contact)."""
        host = await self._store.host(self._store.db, signer)
        if host is None:
            return False
        if host.last_heard < now - CONTACT_RESOLUTION:
            return True
        return await self._store.disasters_opened_since(self._store.db, signer, host.last_heard)

    async def contact(self, tx: Transaction, signer: bytes, now: int) -> bool:
        """Note that `signer` was heard from, if it is a host; True if it is one."""
        if await self._store.host(tx, signer) is None:
            return False
        await self._store.touch_host(tx, signer, now)
        for claim_id, resident_id in await self._store.cancel_disasters(tx, signer, now):
            await self._log.append(
                tx, "disaster_cancelled", resident_id, {"claim": claim_id.hex(), "host": key_id(signer)}
            )
        return True
