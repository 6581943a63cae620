"""What the node proves about itself in public: the event log's chain check (cached) and the operator's canary.

The chain check (`verify_chain`) reads the whole log, so `ChainCheck` keeps its last report keyed by the log's
newest sequence number and re-verifies when the log grows, or when the report is older than `max_age` (an edit
behind the database's triggers does not change the newest sequence number, so a stale "valid" must not live
forever). Anyone can repeat the check from `GET /api/v1/transparency/log` (docs/transparency.md).

The canary is a statement the operator signs with the node key in its own domain, `ftm-canary-v1`, over
`msgpack([signed_at, statement])`; the node shows it with its age, so a canary that stops being renewed says
something by its silence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import msgpack

from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import ChainReport, EventLog, last_seq, verify_chain
from ftm.federation.identity import NodeIdentity, verify
from ftm.node.errors import InvalidField
from ftm.node.store.canaries import CanaryRecord, CanaryStore

log = logging.getLogger(__name__)

CANARY_DOMAIN = "ftm-canary-v1"
MAX_CANARY_CHARS = 2000
DEFAULT_MAX_AGE = 600.0


@dataclass(frozen=True, slots=True)
class CheckedChain:
    """A chain report and when it was made (node time)."""

    report: ChainReport
    last_seq: int
    checked_at: int


class ChainCheck:
    """`verify_chain` over the node's log, cached per newest sequence number (and at most `max_age` seconds)."""

    def __init__(self, db: Database, public_key: bytes, clock: Clock, *, max_age: float = DEFAULT_MAX_AGE) -> None:
        self._db = db
        self._public_key = public_key
        self._clock = clock
        self._max_age = max_age
        self._cached: CheckedChain | None = None

    async def result(self) -> CheckedChain:
        newest = await last_seq(self._db)
        now = self._clock.now()
        cached = self._cached
        if cached is not None and cached.last_seq == newest and now - cached.checked_at < self._max_age:
            return cached
        report = await verify_chain(self._db, self._public_key)
        if not report.valid:
            log.error("event log chain does not verify", extra={"seq": report.first_bad_seq})
        self._cached = CheckedChain(report=report, last_seq=newest, checked_at=int(now))
        return self._cached


def canary_message(signed_at: int, statement: str) -> bytes:
    """The bytes the node signs (inside the `ftm-canary-v1` domain frame) for a canary."""
    return bytes(msgpack.packb([signed_at, statement], use_bin_type=True))


def verify_canary(public_key: bytes, record: CanaryRecord) -> None:
    """Raise `BadSignature` unless `record` was signed by the node with `public_key`."""
    verify(public_key, CANARY_DOMAIN, canary_message(record.signed_at, record.statement), record.signature)


class CanaryService:
    """Sets and reads the operator's canary; each new statement is also noted (its time only) in the event log."""

    def __init__(
        self, *, db: Database, store: CanaryStore, identity: NodeIdentity, eventlog: EventLog, clock: Clock
    ) -> None:
        self._db = db
        self._store = store
        self._identity = identity
        self._eventlog = eventlog
        self._clock = clock

    async def set(self, statement: str) -> CanaryRecord:
        statement = statement.strip()
        if not statement:
            raise InvalidField("a canary needs a statement", code="empty_statement")
        if len(statement) > MAX_CANARY_CHARS:
            raise InvalidField(f"a canary statement is at most {MAX_CANARY_CHARS} characters", code="too_long")
        signed_at = int(self._clock.now())
        record = CanaryRecord(
            signed_at=signed_at,
            statement=statement,
            signature=self._identity.sign(CANARY_DOMAIN, canary_message(signed_at, statement)),
        )
        async with self._db.transaction("canary_set") as tx:
            await self._store.insert(tx, record)
            await self._eventlog.append(tx, "canary_set", self._identity.node_id, {"signed_at": signed_at})
        return record

    async def current(self) -> CanaryRecord | None:
        return await self._store.latest()
