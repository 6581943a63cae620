"""What the node proves about itself in public: the event log's chain check (cached) and the operator's canary.

The chain check (`verify_chain`) reads the whole log, so `ChainCheck` keeps its last report keyed by the log's
newest sequence number and re-verifies when the log grows, or when the report is older than `max_age` (an edit
behind the database's triggers does not change the newest sequence number, so a stale "valid" must not live
forever). Anyone can repeat the check from `GET /api/v1/transparency/log` (docs/transparency.md).

The canary is a statement the operator signs with the node key in its own domain, `ftm-canary-v1`, over
`msgpack([signed_at, statement])`; the node shows it with its age, so a canary that stops being renewed says
something by its silence.

`CustodyReporter` says who holds what (ARCHITECTURE.md §4: "who holds which backups, and their proof history, is
public"): the custody mode and k-of-n, each enrolled keeper node with its Keeper's public name, the residents'
epochs it holds and its latest challenges, and for each resident that deleted itself the receipts for its
tombstone. All of it from the node's own tables; nothing a keeper or a resident keeps secret.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import msgpack

from ftm.config.settings import CustodySettings
from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import ChainReport, EventLog, last_seq, verify_chain
from ftm.federation.identity import NodeIdentity, verify
from ftm.node.errors import InvalidField
from ftm.node.store.canaries import CanaryRecord, CanaryStore
from ftm.node.store.custodyreport import CustodyReportStore, KeeperRow, ProofRow
from ftm.node.store.tombstones import TombstoneStore
from ftm.node.tombstones import tally
from ftm.webui.transparency import BackupHeld, CustodyView, DeletionReceipts, KeeperNode, ProofTry

log = logging.getLogger(__name__)

CANARY_DOMAIN = "ftm-canary-v1"
MAX_CANARY_CHARS = 2000
DEFAULT_MAX_AGE = 600.0
BACKUPS_LISTED = 100  # per keeper; the totals count every one
PROOFS_LISTED = 30  # per keeper, newest first
DELETIONS_LISTED = 50  # the most recently ended residents
DAY = 86_400
REPORT_MIN_REFRESH = 5.0  # seconds: how often a busy node makes its custody report again, at most
REPORT_MAX_AGE = 60.0  # seconds: how long a report is kept when this process saw no write


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


class CustodyReporter:
    """The custody part of the transparency page and API, from the node's tables.

    The report counts each keeper's challenges of the last week: a few hundred thousand index entries on a node
    of ten thousand residents, read without their rows (migration 0016), and it totals each keeper's holdings:
    60-100 ms in all on the database's one reader connection (docs/benchmarks.md, "Custody report"), ten times
    less than before the indexes but too much to repeat for every request of a burst. So it is kept: made again
    when the database has changed, but at most every `min_refresh` seconds, and at least every `max_age`
    (writes by another process, the CLI's, are not counted by `Database.commits`); one request makes it while
    others wait for that one. Both are wall-clock seconds of this process, not node time: they bound work."""

    def __init__(
        self,
        *,
        db: Database,
        mode: str,
        settings: CustodySettings,
        clock: Clock,
        min_refresh: float = REPORT_MIN_REFRESH,
        max_age: float = REPORT_MAX_AGE,
    ) -> None:
        self._db = db
        self._reads = CustodyReportStore(db)
        self._tombstones = TombstoneStore(db)
        self._mode = mode
        self._settings = settings
        self._clock = clock
        self._min_refresh = min_refresh
        self._max_age = max_age
        self._lock = asyncio.Lock()
        self._kept: tuple[int, float, CustodyView] | None = None  # (commits, made at, report)

    async def report(self) -> CustodyView:
        async with self._lock:
            loop = asyncio.get_running_loop()
            if self._kept is not None:
                commits, made, view = self._kept
                age = loop.time() - made
                if age < self._max_age and (commits == self._db.commits or age < self._min_refresh):
                    return view
            commits, made = self._db.commits, loop.time()
            view = await self._make()
            self._kept = (commits, made, view)
            return view

    async def _make(self) -> CustodyView:
        threshold = self._mode == "threshold"
        since = int(self._clock.now()) - self._settings.suspect_days * DAY
        return CustodyView(
            mode=self._mode,
            threshold=self._settings.threshold if threshold else 0,
            keepers_per_epoch=self._settings.keepers if threshold else 0,
            window_days=self._settings.suspect_days,
            keepers=tuple([await self._keeper(row, since) for row in await self._reads.keepers()]),
            deletions=await self._deletions(),
        )

    async def _keeper(self, row: KeeperRow, since: int) -> KeeperNode:
        count, size = await self._reads.holding_totals(row.keeper_key)
        counts = await self._reads.proof_counts(row.keeper_key, since)
        backups = tuple(
            BackupHeld(
                resident_id=h.resident_id,
                resident_name=h.resident_name or "",
                resident_status=h.resident_status or "",
                epoch=h.epoch,
                state=_backup_state(h.delivery_state, h.epoch_state),
                bytes=h.length,
            )
            for h in await self._reads.holdings(row.keeper_key, BACKUPS_LISTED)
        )
        return KeeperNode(
            keeper_id=row.registration_id,
            public_key=row.keeper_key.hex(),
            url=row.url,
            name=row.name or "",
            state=row.state,
            enrolled_at=row.enrolled_at,
            last_seen_at=row.last_seen_at,
            backups=backups,
            backups_total=count,
            bytes_total=size,
            proofs=tuple(_proof(p) for p in await self._reads.recent_proofs(row.keeper_key, PROOFS_LISTED)),
            passed_recent=counts.passed,
            contained_recent=counts.contained,
            failed_recent=counts.failed,
        )

    async def _deletions(self) -> tuple[DeletionReceipts, ...]:
        deleted = await self._tombstones.deleted(DELETIONS_LISTED)
        facts = await self._tombstones.holders_of([d.resident_id for d in deleted])
        views = []
        for resident in deleted:
            counted = tally(facts.get(resident.resident_id, []), resident.last_epoch)
            views.append(
                DeletionReceipts(
                    resident_id=resident.resident_id,
                    resident_name=resident.display_name,
                    deleted_at=resident.deleted_at,
                    holders=counted.holders,
                    receipts=counted.receipts,
                    needed=counted.needed,
                    # the node shreds its own records at the same point; until it has, the page says "waiting"
                    shredded=counted.shredded and not resident.keys_kept,
                )
            )
        return tuple(views)


def _backup_state(delivery_state: str, epoch_state: str) -> str:
    if epoch_state in ("destroying", "destroyed"):
        return "destroying"
    return "committed" if delivery_state == "committed" else "pending"


def _proof(row: ProofRow) -> ProofTry:
    # A failure counts against the keeper only when every containment retry failed too.
    result = "passed" if row.outcome == "ok" else "failed" if row.counted else "contained"
    return ProofTry(
        row.at, row.resident_id, row.resident_name or "", row.epoch, result, row.reason or "", row.try_number
    )
