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

    posts     its published posts, back from the federation's peers once this node attests it, adopted as
              posts made here (`ftm.node.restoreposts`); its bio and balance come from the package's snapshot

Idempotent: a resident that already lives here is skipped, so re-running a restore that finished is a no-op.
Resumable: the ephemeral key each epoch's shares are asked for with is kept in the data directory before any
keeper sees it (`ftm.node.restorekeys`), so a restore that died after the keepers released asks again with it and
the keepers answer again (a repeat), under the same claim. Plaintext exists only in memory; the download is
ciphertext, removed when the resident is done. One restore runs per data directory at a time (`restoring/.lock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.federation.identity import SigningKey, derive_id, inbox_public_key
from ftm.keeper import shares
from ftm.node.custody import Custody, CustodyUnavailable
from ftm.node.errors import ConfigurationError, IntegrityError
from ftm.node.federated import LocalEvents
from ftm.node.keeperclient import KeeperAddress, KeeperCallError
from ftm.node.packages import MAX_PACKAGE_BYTES, decode_package
from ftm.node.persona import PersonaPackage
from ftm.node.restorefetch import (
    EpochCopy,
    Grant,
    Survey,
    fetch_replica,
    gather_shares,
    permit_read,
    ranked_copies,
)
from ftm.node.restorekeys import RestoreKeys
from ftm.node.restoreoutcome import Outcome, Refused, Reporter, Step, refusal
from ftm.node.restoreposts import MAX_RECOVERED_POSTS, fetch_from_peers, recovered_posts
from ftm.node.run.tools.selfmod import MAX_BIO_CHARS
from ftm.node.store.restores import RestoredResident, RestoreStore
from ftm.node.store.runtime_settings import RuntimeSettingsStore
from ftm.node.vault import VaultFailure, VaultIntegrityError
from ftm.node.vaultpack import open_contents
from ftm.node.vaultstore import VaultStore

if TYPE_CHECKING:
    from ftm.node.app import Node

__all__ = ["WORK_DIR_NAME", "Outcome", "Restorer", "Step", "create_restorer"]

log = logging.getLogger(__name__)

WORK_DIR_NAME = "restoring"


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
        runtime: RuntimeSettingsStore,
        sync: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._db = db
        self._store = store
        self._custody = custody
        self._vault = vault
        self._eventlog = eventlog
        self._events = events
        self._clock = clock
        self._work_dir = work_dir
        self._keys = RestoreKeys(work_dir)
        self._runtime = runtime
        self._sync = sync  # reconcile with the federation's peers (None: use what the object store holds)

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
            report = Reporter(on_step, index, len(wanted), rid)
            outcomes.append(await self._one(rid, found.residents.get(rid, []), grant, old_host, report))
        return outcomes

    async def _one(self, rid: str, copies: list[EpochCopy], grant: Grant, old_host: bytes, step: Reporter) -> Outcome:
        outcome = Outcome(rid, "refused")
        if await self._store.is_here(rid):
            await self._keys.forget(rid)  # what a restore that died right after the install left
            step(stage="skipped", detail="already lives here")
            outcome.state = "already_here"
            return outcome
        await self._keys.forget_other_grants(rid, grant.purpose, grant.claim_id)
        if not copies:
            outcome.code, outcome.message = "not_held", "no keeper holds a complete epoch of it for the old host"
            step(stage="failed", detail=outcome.message)
            return outcome
        last = Refused("not_held", "no epoch could be restored")
        for group in ranked_copies(copies):
            try:
                await self._epoch(group, grant, old_host, outcome, step)
                return outcome
            except Refused as refused:
                last = refused
                log.info(
                    "epoch not restored", extra={"resident_id": rid, "epoch": group[0].epoch, "code": refused.code}
                )
        outcome.code, outcome.message = last.code, last.message
        step(stage="failed", detail=f"{last.code}: {last.message}")
        return outcome

    async def _epoch(
        self, group: list[EpochCopy], grant: Grant, old_host: bytes, outcome: Outcome, step: Reporter
    ) -> None:
        rid, epoch = group[0].resident_id, group[0].epoch
        try:
            commitments = shares.Commitments.decode(group[0].commitments)
        except shares.ShareError:
            raise Refused("bad_commitments", f"epoch {epoch}'s commitments are malformed") from None
        holders = list(dict.fromkeys(k for copy in group for k in copy.holders))
        step(stage="shares", detail=f"epoch {epoch}: {commitments.threshold} of {len(holders)} keepers needed")
        secret_key = await self._keys.secret(rid, epoch, grant.purpose, grant.claim_id)  # kept before it is sent
        gathered = await gather_shares(grant, rid, epoch, holders, commitments, secret_key)
        outcome.rejected_shares += [f"{k.url} x={x}: {why}" for k, x, why in gathered.rejected]
        if gathered.secret is None:
            raise refusal(gathered, commitments.threshold)
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
                if await permit_read(grant, rid, epoch, extra, secret_key):
                    gathered.released.append(extra)
                    break
            else:
                raise Refused("no_good_replica", f"no keeper that released epoch {epoch} gave a copy that checks out")

    async def _from(
        self,
        reader: KeeperAddress,
        copy: EpochCopy,
        key: bytes,
        grant: Grant,
        old_host: bytes,
        outcome: Outcome,
        step: Reporter,
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
        step: Reporter,
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
            contents = await open_contents(path, rid, epoch, key, max_bytes=MAX_PACKAGE_BYTES)
        except VaultIntegrityError as error:
            log.warning("restored file does not open", extra={"resident_id": rid, "reason": error.reason.value})
            if error.reason in (VaultFailure.WRONG_KEY, VaultFailure.WRONG_RESIDENT, VaultFailure.WRONG_EPOCH):
                return None
            raise Refused("bad_package", f"epoch {epoch} does not open: {error.reason.value}") from None
        try:
            package = await decode_package(contents, rid)
        except IntegrityError:
            raise Refused("bad_package", f"epoch {epoch}'s package does not decode as {rid}'s") from None
        finally:
            del contents
        signing = SigningKey(package.signing_seed)
        if package.resident_id != rid or derive_id("resident", signing.public_key) != rid:
            raise Refused("bad_package", f"epoch {epoch}'s package is not {rid}'s")
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
            raise Refused("custody_unavailable", error.message) from None
        except BaseException:
            await self._vault.destroy_resident(rid)
            raise
        del own_key
        now = int(self._clock.now())
        public, bank_cap = package.public, (await self._runtime.current()).bank_cap
        seed = package.signing_seed  # its posts' signatures are made again once they are here (below)
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
            bio=public.bio[:MAX_BIO_CHARS] if public is not None else "",
            # The old host's book-keeping, trusted no further than this node's own cap on banked tokens.
            token_balance=min(public.token_balance, bank_cap) if public is not None else 0,
        )
        del package
        try:
            async with self._db.transaction("restore_resident") as tx:
                if await self._store.is_here(rid, tx):
                    raise Refused("already_here", "it came to live here while it was being restored")
                await self._store.install(tx, restored, custody=self._custody.mode, key_record=record, now=now)
                await self._eventlog.append(
                    tx,
                    "resident_restored",
                    rid,
                    {"old_host": derive_id("node", old_host), "from_epoch": epoch, "epoch": new_epoch,
                     "purpose": grant.purpose, "vault_bytes": size},
                )  # fmt: skip
                await self._events.queue(tx, [self._events.attest(resident_key, now)], now)
        except Refused:
            raise  # what lives here is not ours to remove
        except BaseException:
            await self._vault.destroy_resident(rid)
            raise
        await self._keys.forget(rid)
        self._custody.epoch_stored()  # threshold custody delivers the new epoch to this node's keepers
        await self._events.release()
        outcome.state, outcome.epoch, outcome.new_epoch, outcome.vault_bytes = "restored", epoch, new_epoch, size
        outcome.posts = await self._adopt_posts(rid, resident_key, seed)
        del seed
        log.info("resident restored", extra={"resident_id": rid, "epoch": new_epoch, "vault_bytes": size})

    async def _adopt_posts(self, rid: str, resident_key: bytes, seed: bytes) -> int:
        """Its published posts, back from the federation: only now, with this node's HOSTING attestation of it
        stored, does acceptance take POST events by its key from peers (the old host is no known node here)."""
        if self._sync is not None:
            await fetch_from_peers(self._sync)
        published = await self._store.posts_signed_by(resident_key, MAX_RECOVERED_POSTS)
        posts = await recovered_posts(published, rid, seed)
        async with self._db.transaction("restore_posts") as tx:
            adopted = await self._store.adopt_posts(tx, posts)
        log.info("posts restored", extra={"resident_id": rid, "posts": adopted})
        return adopted


def create_restorer(node: Node) -> Restorer:
    """A restorer over an open node's parts, working in `<data dir>/restoring/`."""
    return Restorer(
        db=node.db, store=RestoreStore(node.db), custody=node.custody, vault=node.vault, eventlog=node.eventlog,
        events=node.federation, clock=node.clock, work_dir=node.data_dir.root / WORK_DIR_NAME,
        runtime=node.runtime_settings, sync=node.federation.network.antientropy.reconcile_all,
    )  # fmt: skip
