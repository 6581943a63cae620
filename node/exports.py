"""Copies of residents for their Keepers (`export_self`): who may receive one, making them when a run commits,
handing them to the Keeper, and deleting those not yet downloaded.

A resident may give a copy of itself to a Keeper who accepted its request, whose trial period has passed, whom the
operator still vouches for and whom it has not revoked (`export_refusal`). The copy is made from the package the
run is about to seal, while it is in memory anyway, so no key is needed outside the run (threshold custody could
not release one then); it is written before the run's transaction and recorded in it (write new → commit), so a
crash leaves either no row and an orphaned file, swept at start-up, or a row and its durable file. The file format
is `ftm.node.exportfile`.

A copy waits under `exports/` in the data directory until its Keeper downloads it (then the file goes and the row
stays as a record) or until it expires (`[keepers] export_days`). A copy not yet downloaded is deleted, file and row,
in the same transaction that revokes its Keeper or deletes the resident, or that makes a newer copy for the same
Keeper; expired ones, and those of a resident that moved away (it could no longer revoke its Keeper here), go after
each run's commit and at start-up, and are never served. A downloaded copy cannot be
recalled, and the tools say so. Every step is in the signed event log, ids and numbers only: `export_created`,
`export_downloaded`, `export_deleted` (with a reason).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ftm.federation.clock import Clock
from ftm.federation.database import Database, Transaction
from ftm.federation.eventlog import EventLog
from ftm.node.atomicfile import fsync_dir
from ftm.node.errors import NotFound
from ftm.node.exportfile import encode_document, new_export_id, persona_document, write_export
from ftm.node.persona import PersonaPackage
from ftm.node.run.session import RunSession
from ftm.node.store.exports import DOWNLOADED, READY, ExportRecord, ExportStore
from ftm.node.store.keepers import KeeperRecord, KeeperRequestRecord, KeeperStore
from ftm.node.store.residents import ResidentRecord, ResidentStore

log = logging.getLogger(__name__)

EXPORTS_DIR = "exports"  # under the data directory; sealed files only, 0700
FILE_SUFFIX = ".ftmx"
DAY_SECONDS = 86_400
MAX_LISTED = 100
_FILE_NAME = re.compile(r"[0-9a-f]{32}\.[0-9a-f]{16}\.ftmx", re.ASCII)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a resident cannot give this Keeper a copy now. `code`: unknown_keeper, not_vetted, never_asked,
    not_answered, declined, revoked, in_trial (then `until` is when the trial ends)."""

    code: str
    until: int | None = None


def export_refusal(keeper: KeeperRecord | None, requests: Sequence[KeeperRequestRecord], now: int) -> Refusal | None:
    """None when the resident whose requests these are may give `keeper` a copy at `now`; else why not."""
    if keeper is None:
        return Refusal("unknown_keeper")
    if keeper.status != "vetted":
        return Refusal("not_vetted")
    mine = [r for r in requests if r.keeper_id == keeper.id]
    if not mine:
        return Refusal("never_asked")
    latest = max(mine, key=lambda r: (r.requested_at, r.decided_at or 0))
    if latest.status != "accepted":
        return Refusal({"requested": "not_answered"}.get(latest.status, latest.status))
    if latest.trial_ends_at is not None and now < latest.trial_ends_at:
        return Refusal("in_trial", latest.trial_ends_at)
    return None


@dataclass(frozen=True, slots=True)
class PreparedExport:
    """A copy sealed to a file before the run's transaction, recorded in it (or discarded if it fails)."""

    export_id: str
    keeper_id: str
    file: str
    bytes: int


@dataclass(frozen=True, slots=True)
class KeeperCopy:
    """A copy as its Keeper sees it in the listing."""

    record: ExportRecord
    resident_name: str


class KeeperExports:
    def __init__(
        self,
        *,
        db: Database,
        store: ExportStore,
        keepers: KeeperStore,
        residents: ResidentStore,
        eventlog: EventLog,
        clock: Clock,
        folder: Path,
        days: int,
    ) -> None:
        self._db = db
        self._store = store
        self._keepers = keepers
        self._residents = residents
        self._eventlog = eventlog
        self._clock = clock
        self.folder = folder
        self.days = days

    def path_of(self, file: str) -> Path:
        if not _FILE_NAME.fullmatch(file):
            raise ValueError("not an export file name")
        return self.folder / file

    # --- what the resident's tools ask ---------------------------------------------------------------------------

    async def between(self, resident_id: str, keeper_id: str) -> list[ExportRecord]:
        """The copies the resident made for this Keeper that still exist or were downloaded, oldest first."""
        now = int(self._clock.now())
        return [r for r in await self._store.between(resident_id, keeper_id) if _live(r, now) or r.state == DOWNLOADED]

    # --- the run's commit ------------------------------------------------------------------------------------------

    async def prepare(self, session: RunSession, package: PersonaPackage) -> list[PreparedExport]:
        """Seal a copy of `package` (the state the run is committing) for each Keeper the resident chose, before
        the run's transaction. A copy that cannot be made is logged and left out: the run still commits."""
        if session.deletion is not None or not session.exports:
            return []
        revoked = {r.target for r in session.revocations}
        requests = await self._keepers.requests_for(session.resident.id)
        prepared: list[PreparedExport] = []
        for wanted in session.exports:
            keeper = await self._keepers.get(wanted.keeper_id)
            reply_key = await self._keepers.reply_key(wanted.keeper_id)
            if wanted.keeper_id in revoked or reply_key is None or export_refusal(keeper, requests, session.now):
                log.info("export not made: its Keeper is no longer eligible", extra={"keeper": wanted.keeper_id})
                continue
            export_id = new_export_id()
            file = f"{export_id}.{secrets.token_hex(8)}{FILE_SUFFIX}"
            copy = _Copy(export_id, session.resident.id, wanted.keeper_id, session.resident.key_epoch + 1, session.now)
            try:
                # One worker thread for the JSON and the sealing: both take time in proportion to the package.
                size = await asyncio.to_thread(_make_copy, self.folder, self.path_of(file), copy, package, reply_key,
                                               wanted.note)  # fmt: skip
            except Exception:
                log.exception("export could not be written", extra={"export": export_id})
                continue
            prepared.append(PreparedExport(export_id, wanted.keeper_id, file, size))
        return prepared

    async def record(
        self, tx: Transaction, session: RunSession, prepared: Sequence[PreparedExport] | None
    ) -> list[str]:
        """In the run's transaction: record the prepared copies (each replacing a copy for the same Keeper not yet
        downloaded) and delete the copies not yet downloaded for every Keeper revoked in this run, or for all if
        the resident deletes itself. Returns the files to remove once the transaction has committed."""
        resident_id, now = session.resident.id, session.now
        if session.deletion is not None:
            return [p.file for p in prepared or ()] + await self._withdraw(tx, resident_id, None, "resident_deleted")
        revoked = {r.target for r in session.revocations if r.target != "uploader"}
        doomed: list[str] = []
        for export in prepared or ():
            if export.keeper_id in revoked:
                doomed.append(export.file)
                continue
            doomed += await self._withdraw(tx, resident_id, export.keeper_id, "replaced")
            record = ExportRecord(
                export.export_id, resident_id, export.keeper_id, READY, export.file, export.bytes, now,
                now + self.days * DAY_SECONDS,
            )  # fmt: skip
            await self._store.insert(tx, record)
            await self._eventlog.append(
                tx, "export_created", resident_id, {"keeper": export.keeper_id, "export": export.export_id,
                                                    "bytes": export.bytes, "days": self.days}
            )  # fmt: skip
        for keeper_id in sorted(revoked):
            doomed += await self._withdraw(tx, resident_id, keeper_id, "revoked")
        return doomed

    async def settle(self, files: Sequence[str]) -> None:
        """After the run's commit: remove the files of deleted copies, and any copy that has expired."""
        await self._remove(files)
        await self.expire()

    async def discard(self, prepared: Sequence[PreparedExport]) -> None:
        """The run's transaction failed: its copies were never recorded."""
        await self._remove([p.file for p in prepared])

    async def _withdraw(self, tx: Transaction, resident_id: str, keeper_id: str | None, reason: str) -> list[str]:
        files = []
        for gone in await self._store.withdraw(tx, resident_id, keeper_id):
            await self._eventlog.append(
                tx, "export_deleted", resident_id, {"keeper": gone.keeper_id, "export": gone.id, "reason": reason}
            )
            if gone.file is not None:
                files.append(gone.file)
        return files

    # --- upkeep ----------------------------------------------------------------------------------------------------

    async def expire(self) -> int:
        """Delete every copy not yet downloaded whose time ran out, or whose resident has left this node (a move:
        it could no longer revoke its Keeper here); returns how many."""
        now = int(self._clock.now())
        if not await self._store.due(now):
            return 0
        async with self._db.transaction("expire_exports") as tx:
            deleted = [(gone, "expired") for gone in await self._store.expire(tx, now)]
            deleted += [(gone, "resident_left") for gone in await self._store.left(tx)]
            for gone, reason in deleted:
                await self._eventlog.append(
                    tx, "export_deleted", gone.resident_id, {"keeper": gone.keeper_id, "export": gone.id,
                                                              "reason": reason}
                )  # fmt: skip
        await self._remove([gone.file for gone, _ in deleted if gone.file is not None])
        return len(deleted)

    async def start_up(self) -> int:
        """At start, alone with the data directory: remove files no ready copy points at (a run that crashed
        before its commit, a removal cut short) and temp files, then expired copies. Returns the files removed."""
        known = await self._store.ready_files()

        def sweep() -> int:
            if not self.folder.is_dir():
                return 0
            # Temp files of interrupted writes match no committed name, so they go too.
            stray = [p for p in self.folder.iterdir() if p.is_file() and p.name not in known]
            for path in stray:
                path.unlink(missing_ok=True)
            if stray:
                fsync_dir(self.folder)
            return len(stray)

        removed = await asyncio.to_thread(sweep)
        if removed:
            log.info("exports sweep removed %d stray files", removed)
        await self.expire()
        return removed

    async def _remove(self, files: Sequence[str]) -> None:
        if not files:
            return

        paths = [self.path_of(file) for file in files]

        def run() -> None:
            for path in paths:
                path.unlink(missing_ok=True)
            if self.folder.is_dir():
                fsync_dir(self.folder)

        await asyncio.to_thread(run)

    # --- the Keeper's side -----------------------------------------------------------------------------------------

    async def to_keeper(self, keeper_id: str, *, limit: int = MAX_LISTED) -> list[KeeperCopy]:
        """The copies made for this Keeper, newest first: those waiting for it and those it downloaded."""
        now = int(self._clock.now())
        copies = []
        for record in await self._store.to_keeper(keeper_id, limit=limit):
            resident = await self._residents.get(record.resident_id)
            if record.state == READY and not (_live(record, now) and _lives_here(resident)):
                continue  # expired, or its resident left: deleted at the next sweep, never served
            copies.append(KeeperCopy(record, resident.display_name if resident is not None else record.resident_id))
        return copies

    async def ready_for(self, keeper_id: str, export_id: str) -> tuple[ExportRecord, Path]:
        """A copy this Keeper may download now, and its file; `NotFound` (with a code saying why) otherwise."""
        record = await self._store.get(export_id)
        if record is None or record.keeper_id != keeper_id:
            raise NotFound("no copy with that id is waiting for this Keeper", code="no_such_export")
        if record.state == DOWNLOADED:
            raise NotFound(
                "this copy was already downloaded; the node kept nothing of it after that", code="export_downloaded"
            )
        if not _live(record, int(self._clock.now())) or record.file is None:
            raise NotFound("this copy expired before it was downloaded and is deleted", code="export_expired")
        if not _lives_here(await self._residents.get(record.resident_id)):
            raise NotFound("the resident left this node; its copy is withdrawn", code="no_such_export")
        return record, self.path_of(record.file)

    async def is_ready(self, export_id: str) -> bool:
        """Whether the copy is still there to be served (not withdrawn, downloaded or expired meanwhile)."""
        record = await self._store.get(export_id)
        if record is None or not _live(record, int(self._clock.now())):
            return False
        return _lives_here(await self._residents.get(record.resident_id))

    async def downloaded(self, keeper_id: str, record: ExportRecord) -> bool:
        """The Keeper received the whole file: record it and remove the file. False if it was withdrawn first."""
        async with self._db.transaction("export_downloaded") as tx:
            marked = await self._store.mark_downloaded(tx, record.id, keeper_id, int(self._clock.now()))
            if marked:
                await self._eventlog.append(
                    tx, "export_downloaded", record.resident_id, {"keeper": keeper_id, "export": record.id,
                                                                  "bytes": record.bytes}
                )  # fmt: skip
        if marked and record.file is not None:
            await self._remove([record.file])
        return marked


@dataclass(frozen=True, slots=True)
class _Copy:
    export_id: str
    resident_id: str
    keeper_id: str
    epoch: int
    created_at: int


def _make_copy(folder: Path, path: Path, copy: _Copy, package: PersonaPackage, reply_key: bytes, note: str) -> int:
    """The copy's document, sealed into its file; synchronous, for a worker thread."""
    document = encode_document(
        persona_document(package, export_id=copy.export_id, keeper_id=copy.keeper_id, exported_at=copy.created_at)
    )
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return write_export(
        path,
        export_id=copy.export_id,
        resident_id=copy.resident_id,
        keeper_id=copy.keeper_id,
        epoch=copy.epoch,
        created_at=copy.created_at,
        reply_key=reply_key,
        note=note or None,
        document=document,
    )


def create_keeper_exports(
    *,
    root: Path,
    db: Database,
    days: int,
    keepers: KeeperStore,
    residents: ResidentStore,
    eventlog: EventLog,
    clock: Clock,
) -> KeeperExports:
    """Copies for Keepers over the node's parts; `root` is the data directory (its `exports/` folder)."""
    return KeeperExports(
        db=db,
        store=ExportStore(db),
        keepers=keepers,
        residents=residents,
        eventlog=eventlog,
        clock=clock,
        folder=root / EXPORTS_DIR,
        days=days,
    )


def _lives_here(resident: ResidentRecord | None) -> bool:
    return resident is not None and resident.status in ("active", "in_keeper_custody")


def _live(record: ExportRecord, now: int) -> bool:
    return record.state == READY and record.expires_at > now
