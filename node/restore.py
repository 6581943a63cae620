"""Restoring residents from their keepers onto this node, when the node that hosted them is gone: the test of
"a resident survives its host" (ARCHITECTURE.md §4). docs/custody.md ("Restore") is the procedure.

For each resident the keepers hold for the old host (newest epoch first, falling back to older ones):

    shares    asked for under the release policy (`Grant`: the old host's own key for a run, or a disaster claim's
              new host), each verified against the Feldman commitments; bad ones are named and skipped
    replica   read from a keeper that released to us, 1 MiB at a time into a file under `restoring/`, every
              byte checked against the Merkle root the keepers recorded; a copy that fails goes, the next is read
    key       derived from k verified shares (HKDF, bound to resident and epoch); the vault file's key
              commitment is the key check, and every chunk authenticates as the package is opened
    install   the package decoded in memory only (its id and signing key must be the resident's), re-sealed as
              the next epoch under THIS node's custody, and ONE transaction makes the resident live here: its
              row rebuilt from the package, its key record, its uploader tokens, an event-log entry and this
              node's signed HOSTING attestation

Idempotent: a resident that already lives here is skipped, so re-running a restore that finished is a no-op.
Plaintext exists only in memory; the download is ciphertext, removed when the resident is done. One restore runs
per data directory at a time (`restoring/.lock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ftm.federation.clock import Clock
from ftm.federation.codec import DecodeError
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.federation.identity import SigningKey, derive_id, inbox_public_key
from ftm.keeper import shares
from ftm.node.custody import Custody, CustodyUnavailable
from ftm.node.errors import ConfigurationError
from ftm.node.federated import LocalEvents
from ftm.node.keeperclient import KeeperAddress, KeeperCallError
from ftm.node.packages import MAX_PACKAGE_BYTES
from ftm.node.persona import PersonaPackage
from ftm.node.restorefetch import (
    EpochCopy,
    Gathered,
    Grant,
    Survey,
    fetch_replica,
    gather_shares,
    permit_read,
    ranked_copies,
)
from ftm.node.store.restores import RestoredResident, RestoreStore
from ftm.node.vault import VaultFailure, VaultIntegrityError, open_bytes
from ftm.node.vaultstore import VaultStore

if TYPE_CHECKING:
    from ftm.node.app import Node

log = logging.getLogger(__name__)

WORK_DIR_NAME = "restoring"


@dataclass(frozen=True, slots=True)
class Step:
    """Progress of a restore, for the operator: resident `index` of `total`, what it is doing, bytes so far."""

    index: int
    total: int
    resident_id: str
    stage: str  # shares | replica | verified | installed | skipped | failed
    detail: str = ""
    done: int = 0
    size: int = 0


@dataclass
class Outcome:
    """What became of one resident: `restored`, `already_here`, or `refused` (the keepers would not release,
    or nothing they sent passed its checks), with a stable `code` and a sentence."""

    resident_id: str
    state: str
    code: str = ""
    message: str = ""
    epoch: int | None = None  # the old host's epoch it was restored from
    new_epoch: int | None = None  # its epoch here
    vault_bytes: int = 0
    replica_from: str = ""
    rejected_shares: list[str] = field(default_factory=list)  # "keeper URL x=N: why"
    bad_replicas: list[str] = field(default_factory=list)  # keeper URLs whose copy failed the root


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Restorer:
    def __init__(
        self,
        *,
        db: Database,
        store: RestoreStore,
        custody: Custody,
        vault: VaultStore,
        eventlog: EventLog,
        events: LocalEvents,
        clock: Clock,
        work_dir: Path,
    ) -> None:
        self._db = db
        self._store = store
        self._custody = custody
        self._vault = vault
        self._eventlog = eventlog
        self._events = events
        self._clock = clock
        self._work_dir = work_dir

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the restore lock of this data directory (`ConfigurationError` if another restore runs), with the
        work directory emptied of what an interrupted restore left."""
        self._work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._work_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigurationError("another restore is running on this data directory") from None
            for leftover in self._work_dir.glob("*.part"):
                leftover.unlink(missing_ok=True)
            yield
        finally:
            os.close(fd)

    async def restore(
        self,
        found: Survey,
        grant: Grant,
        old_host: bytes,
        *,
        only: frozenset[str] | None = None,
        on_step: Callable[[Step], None] = lambda step: None,
    ) -> list[Outcome]:
        """Restore every resident of the survey (or those of `only`), one after the other."""
        wanted = sorted(found.residents if only is None else only)
        outcomes = []
        for index, rid in enumerate(wanted, start=1):
            report = _Reporter(on_step, index, len(wanted), rid)
            outcomes.append(await self._one(rid, found.residents.get(rid, []), grant, old_host, report))
        return outcomes

    async def _one(self, rid: str, copies: list[EpochCopy], grant: Grant, old_host: bytes, step: _Reporter) -> Outcome:
        outcome = Outcome(rid, "refused")
        if await self._store.is_here(rid):
            step(stage="skipped", detail="already lives here")
            outcome.state = "already_here"
            return outcome
        if not copies:
            outcome.code, outcome.message = "not_held", "no keeper holds a complete epoch of it for the old host"
            step(stage="failed", detail=outcome.message)
            return outcome
        last = _Refused("not_held", "no epoch could be restored")
        for group in ranked_copies(copies):
            try:
                await self._epoch(group, grant, old_host, outcome, step)
                return outcome
            except _Refused as refused:
                last = refused
                log.info(
                    "epoch not restored", extra={"resident_id": rid, "epoch": group[0].epoch, "code": refused.code}
                )
        outcome.code, outcome.message = last.code, last.message
        step(stage="failed", detail=f"{last.code}: {last.message}")
        return outcome

    async def _epoch(
        self, group: list[EpochCopy], grant: Grant, old_host: bytes, outcome: Outcome, step: _Reporter
    ) -> None:
        rid, epoch = group[0].resident_id, group[0].epoch
        try:
            commitments = shares.Commitments.decode(group[0].commitments)
        except shares.ShareError:
            raise _Refused("bad_commitments", f"epoch {epoch}'s commitments are malformed") from None
        holders = list(dict.fromkeys(k for copy in group for k in copy.holders))
        step(stage="shares", detail=f"epoch {epoch}: {commitments.threshold} of {len(holders)} keepers needed")
        gathered = await gather_shares(grant, rid, epoch, holders, commitments)
        outcome.rejected_shares += [f"{k.url} x={x}: {why}" for k, x, why in gathered.rejected]
        if gathered.secret is None:
            raise _refusal(gathered, commitments.threshold)
        key = shares.derive_epoch_key(gathered.secret, context=shares.epoch_context(rid, epoch))
        gathered.secret = None
        step(stage="shares", detail=f"epoch {epoch}: {commitments.threshold} shares verified")
        tried: set[KeeperAddress] = set()
        wrong: set[bytes] = set()  # roots of copies the key does not open
        while True:
            for copy in group:
                for reader in [k for k in copy.holders if k in gathered.released and k not in tried]:
                    if copy.root in wrong:
                        break
                    tried.add(reader)
                    result = await self._from(reader, copy, key, grant, old_host, outcome, step)
                    if result == "installed":
                        return
                    if result == "wrong_copy":
                        wrong.add(copy.root)
            # Every keeper that released was read: one more holder releases, so that its copy may be read too.
            while gathered.unasked:
                extra = gathered.unasked.pop(0)
                if await permit_read(grant, rid, epoch, extra):
                    gathered.released.append(extra)
                    break
            else:
                raise _Refused("no_good_replica", f"no keeper that released epoch {epoch} gave a copy that checks out")

    async def _from(
        self,
        reader: KeeperAddress,
        copy: EpochCopy,
        key: bytes,
        grant: Grant,
        old_host: bytes,
        outcome: Outcome,
        step: _Reporter,
    ) -> str:
        """Restore from `reader`'s copy: `installed`, `unread` (its copy failed; read the next), or `wrong_copy`
        (the key does not open what this group of keepers holds: none of them is the epoch's)."""
        path = self._work_dir / f"{copy.resident_id}-{copy.epoch}.part"
        try:
            if not await self._download(reader, copy, path, grant, outcome, step):
                return "unread"
            package = await self._open(path, copy.resident_id, copy.epoch, key)
            if package is None:
                return "wrong_copy"
            step(stage="verified", detail=f"root, key and package check out ({reader.url})")
            await self._install(path, package, copy.epoch, key, old_host, grant, outcome)
            outcome.replica_from = reader.url
            step(stage="installed", detail=f"epoch {outcome.new_epoch} under {self._custody.mode} custody")
            return "installed"
        finally:
            await asyncio.to_thread(path.unlink, True)

    async def _download(
        self,
        reader: KeeperAddress,
        copy: EpochCopy,
        path: Path,
        grant: Grant,
        outcome: Outcome,
        step: _Reporter,
    ) -> bool:
        """Whether `reader`'s replica arrived whole and with the copy's root."""
        size = copy.length

        def on_bytes(done: int) -> None:
            step(stage="replica", detail=reader.url, done=done, size=size)

        try:
            got = await fetch_replica(grant.client, reader, copy, path, on_bytes)
        except KeeperCallError as error:
            outcome.bad_replicas.append(reader.url)
            log.warning("replica not read", extra={"resident_id": copy.resident_id, "code": error.code})
            return False
        if (got.root, got.length) != (copy.root, copy.length):
            outcome.bad_replicas.append(reader.url)
            log.warning(
                "a keeper's replica does not match its Merkle root; another holder is read",
                extra={"resident_id": copy.resident_id, "epoch": copy.epoch, "keeper": reader.key.hex()},
            )
            return False
        return True

    async def _open(self, path: Path, rid: str, epoch: int, key: bytes) -> PersonaPackage | None:
        """The package, opened and checked; None if the key does not open it (a copy that is not the epoch's)."""
        try:
            plaintext = await open_bytes(path, rid, epoch, key, max_bytes=MAX_PACKAGE_BYTES)
        except VaultIntegrityError as error:
            log.warning("restored file does not open", extra={"resident_id": rid, "reason": error.reason.value})
            if error.reason in (VaultFailure.WRONG_KEY, VaultFailure.WRONG_RESIDENT, VaultFailure.WRONG_EPOCH):
                return None
            raise _Refused("bad_package", f"epoch {epoch} does not open: {error.reason.value}") from None
        try:
            package = await asyncio.to_thread(PersonaPackage.decode, plaintext, max_bytes=MAX_PACKAGE_BYTES)
        except (DecodeError, ValueError):
            raise _Refused("bad_package", f"epoch {epoch}'s package does not decode") from None
        finally:
            del plaintext
        signing = SigningKey(package.signing_seed)
        if package.resident_id != rid or derive_id("resident", signing.public_key) != rid:
            raise _Refused("bad_package", f"epoch {epoch}'s package is not {rid}'s")
        return package

    async def _install(
        self,
        path: Path,
        package: PersonaPackage,
        epoch: int,
        key: bytes,
        old_host: bytes,
        grant: Grant,
        outcome: Outcome,
    ) -> None:
        rid, new_epoch = package.resident_id, epoch + 1
        resident_key = SigningKey(package.signing_seed).public_key
        try:
            own_key = await self._custody.new_epoch_key(rid, new_epoch)
            size = await self._vault.import_resealed(rid, path, epoch, key, new_epoch, own_key)
            record = await self._custody.seal_epoch_key(rid, new_epoch, own_key)
        except CustodyUnavailable as error:
            await self._vault.destroy_resident(rid)
            raise _Refused("custody_unavailable", error.message) from None
        except BaseException:
            await self._vault.destroy_resident(rid)
            raise
        del own_key
        now = int(self._clock.now())
        restored = RestoredResident(
            id=rid,
            display_name=package.name,
            signing_public_key=resident_key,
            inbox_public_key=inbox_public_key(package.inbox_secret),
            key_epoch=new_epoch,
            vault_bytes=size,
            total_runs=sum(1 for c in package.history if c.source == "run"),
            created_at=package.provenance.imported_at,
            run_time=package.preferences.run_time,
            uploader_token_hashes=package.access.uploader_token_hashes,
        )
        del package
        try:
            async with self._db.transaction("restore_resident") as tx:
                if await self._store.is_here(rid, tx):
                    raise _Refused("already_here", "it came to live here while it was being restored")
                await self._store.install(tx, restored, custody=self._custody.mode, key_record=record, now=now)
                await self._eventlog.append(
                    tx,
                    "resident_restored",
                    rid,
                    {"old_host": derive_id("node", old_host), "from_epoch": epoch, "epoch": new_epoch,
                     "purpose": grant.purpose, "vault_bytes": size},
                )  # fmt: skip
                await self._events.queue(tx, [self._events.attest(resident_key, now)], now)
        except _Refused:
            raise  # what lives here is not ours to remove
        except BaseException:
            await self._vault.destroy_resident(rid)
            raise
        self._custody.epoch_stored()  # threshold custody delivers the new epoch to this node's keepers
        await self._events.release()
        outcome.state, outcome.epoch, outcome.new_epoch, outcome.vault_bytes = "restored", epoch, new_epoch, size
        log.info("resident restored", extra={"resident_id": rid, "epoch": new_epoch, "vault_bytes": size})


@dataclass(frozen=True, slots=True)
class _Reporter:
    """Steps of one resident, numbered for the operator."""

    on_step: Callable[[Step], None]
    index: int
    total: int
    resident_id: str

    def __call__(self, *, stage: str, detail: str = "", done: int = 0, size: int = 0) -> None:
        self.on_step(Step(self.index, self.total, self.resident_id, stage, detail, done, size))


def _refusal(gathered: Gathered, threshold: int) -> _Refused:
    """Why too few shares came: the keepers' own code when they agree, else a summary."""
    codes = sorted(set(gathered.refused.values()))
    verified = len(gathered.released) - len(gathered.rejected)
    summary = ", ".join(f"{url}: {code}" for url, code in sorted(gathered.refused.items()))
    code = codes[0] if len(codes) == 1 else "not_enough_shares"
    message = f"{max(verified, 0)} of the {threshold} shares needed were released and verified"
    return _Refused(code, f"{message} ({summary})" if summary else message)


def create_restorer(node: Node) -> Restorer:
    """A restorer over an open node's parts, working in `<data dir>/restoring/`."""
    return Restorer(
        db=node.db, store=RestoreStore(node.db), custody=node.custody, vault=node.vault, eventlog=node.eventlog,
        events=node.federation, clock=node.clock, work_dir=node.data_dir.root / WORK_DIR_NAME,
    )  # fmt: skip
