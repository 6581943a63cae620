"""The source's side of a move: a resident leaving this node, driven one persisted step at a time.

    requested ─offer─▶ accepted ─prepare─▶ prepared ─upload, finish, receipt, COMMIT─▶ committed ─notify─▶ done
        │ refused / unreachable too long        │ a signed refusal: refused      ▲ resident changed since the
        ▼                                        ▼                                │ attempt: back to accepted
      refused | aborted                        refused                            └ (the next attempt)

Every step reads its state from `moves_out`, does its work, and records the next state; a step that fails to reach
the destination is tried again later (`retry_seconds`, doubling), and every step can be repeated after a crash.
The resident lives here, and runs here, until the COMMIT: one transaction, made only with the destination's signed
receipt for the current attempt, that checks nothing changed since that attempt was prepared (key epoch, and the
records that travel beside the package) and that no run holds a claim, then marks the resident 'moved', deletes
its key records and queues this node's signed MOVED event. Only after it are the vault files shredded; then the
destination is told (with the MOVED event as proof) and answers that it hosts the resident. The package leaves
re-sealed under a fresh key that only the destination can unseal; this node never writes plaintext anywhere.

Under threshold custody (release rule R2) this node opens nothing for a move: after the offer both nodes sign a
move claim, every keeper of the resident records it, and the move waits (still `accepted`) until the claim's delay
has passed at enough keepers of the current epoch; the attempt then sends the resident's vault file as it is, and
the destination asks the keepers for the epoch key (`ftm.node.moveclaims`, `ftm.node.moverelease`). A veto makes
the destination refuse the move, signed. docs/federation-moves.md is the specification (§8 for R2).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path
from typing import BinaryIO

from ftm.config.settings import MovesSettings
from ftm.federation.clock import Clock
from ftm.federation.database import Database, Transaction
from ftm.federation.eventcontent import MovedContent, sign_content
from ftm.federation.eventlog import EventLog
from ftm.federation.events import SignedEvent
from ftm.federation.identity import BadSignature, NodeIdentity, derive_id, verify
from ftm.federation.objectstore import ObjectStore
from ftm.federation.peers import PeerAddress, PeerStore
from ftm.keeper.protocol import CLAIM_DOMAIN, claim_id
from ftm.node import movewire
from ftm.node.atomicfile import write_atomically
from ftm.node.custody import Custody, CustodyUnavailable, is_local_record
from ftm.node.errors import IntegrityError
from ftm.node.federated import LocalEvents
from ftm.node.forwarding import Forwarding
from ftm.node.moveclaims import MoveClaims
from ftm.node.moveclient import MoveCallError, MoveClient
from ftm.node.movewire import (
    PROTOCOL_VERSION,
    ClaimedManifest,
    MoveClaim,
    MoveClaimRequest,
    MoveCommit,
    MoveOffer,
    ProgressQuery,
    TransferManifest,
)
from ftm.node.rotation import EpochRotation
from ftm.node.store.custody import CustodyStore
from ftm.node.store.moves import MoveOut, MoveStore
from ftm.node.store.residents import ResidentStore
from ftm.node.store.runs import CLAIM_LEASE_SECONDS
from ftm.node.thresholdcustody import ThresholdRecord, decode_record
from ftm.node.vault import new_epoch_key
from ftm.node.vaultstore import VaultStore

log = logging.getLogger(__name__)

MAX_STEPS = 8  # steps of one move per drive: enough to go from requested to done when nothing waits
MAX_BACKOFF_FACTOR = 64


class Departures:
    def __init__(
        self,
        *,
        db: Database,
        store: MoveStore,
        residents: ResidentStore,
        custody: Custody,
        vault: VaultStore,
        identity: NodeIdentity,
        clock: Clock,
        events: LocalEvents,
        eventlog: EventLog,
        client: MoveClient,
        peers: PeerStore,
        objectstore: ObjectStore,
        settings: MovesSettings,
        outgoing: Path,
        forwarding: Forwarding,
        claims: MoveClaims | None = None,
    ) -> None:
        """`claims` is given under threshold custody: moves of residents whose current epoch keepers hold then go
        by release rule R2."""
        self._db = db
        self._store = store
        self._residents = residents
        self._custody = custody
        self._vault = vault
        self._identity = identity
        self._clock = clock
        self._events = events
        self._objectstore = objectstore
        self._eventlog = eventlog
        self._client = client
        self._peers = peers
        self._settings = settings
        self._outgoing = outgoing
        self._forwarding = forwarding
        self._claims = claims
        self._locks: dict[bytes, asyncio.Lock] = {}
        # Custody whose epochs open once (threshold) makes each prepared attempt rotate the resident's epoch.
        self._rotation = (
            EpochRotation(db=db, custody=custody, vault=vault, store=CustodyStore(db), eventlog=eventlog)
            if custody.opens_once
            else None
        )

    def transfer_path(self, move_id: bytes, attempt: int) -> Path:
        return self._outgoing / f"{move_id.hex()}-{attempt}.ftmmove"

    async def drive(self, move_id: bytes) -> str:
        """Take the move as far as it goes now; its state afterwards (one move is driven by one task at a time)."""
        lock = self._locks.setdefault(move_id, asyncio.Lock())
        async with lock:
            state = ""
            for _ in range(MAX_STEPS):
                move = await self._store.get_out(move_id)
                if move is None:
                    return "unknown"
                if move.state == state or move.state in ("done", "refused", "aborted"):
                    return move.state  # no progress in the last step: it waits for its retry time
                state = move.state
                try:
                    await self._step(move)
                except MoveCallError as error:
                    await self._wait(move, error.code)
                    return move.state
                except (IntegrityError, CustodyUnavailable, OSError) as error:
                    # The package changed under us (a run rotated it) or a file operation failed: try later.
                    log.warning(
                        "move step failed; retrying later", extra={"move": move_id.hex(), "error": type(error).__name__}
                    )
                    await self._wait(move, type(error).__name__)
                    return move.state
            moved = await self._store.get_out(move_id)
            return moved.state if moved is not None else "unknown"

    async def _step(self, move: MoveOut) -> None:
        if move.state == "requested":
            await self._offer(move)
        elif move.state == "accepted":
            await self._prepare(move)
        elif move.state == "prepared":
            await self._transfer(move)
        elif move.state == "committed":
            await self._notify(move)

    def _address(self, move: MoveOut) -> PeerAddress:
        """Where the destination answers: its verified peer URL, else the URL its descriptor stated."""
        record = self._peers.by_key(move.destination_key)
        if record is not None and record.verified:
            return PeerAddress(move.destination_key, record.url)
        return PeerAddress(move.destination_key, move.destination_url)

    async def _wait(self, move: MoveOut, code: str) -> None:
        now = int(self._clock.now())
        delivered = move.finish_sent or move.state == "committed"
        started = max(move.created_at, move.ready_at or 0)  # R2: the keepers' delay is not the destination's fault
        if not delivered and now - started >= self._settings.give_up_seconds:
            # Nothing that could become a receipt ever reached the destination: the resident simply stays.
            await self._end(move, "aborted", "unreachable")
            return
        delay = self._settings.retry_seconds * min(2**move.tries, MAX_BACKOFF_FACTOR)
        await self._store.retry_out(move.id, now + delay, now)
        log.info("move waits for its destination", extra={"move": move.id.hex(), "code": code, "retry_in": delay})

    async def _end(self, move: MoveOut, state: str, reason: str) -> None:
        now = int(self._clock.now())
        if await self._store.update_out(move.id, move.state, now, state=state, reason=reason[:100]):
            await self._remove_transfers(move.id)
            log.info("move ended; the resident stays", extra={"move": move.id.hex(), "state": state, "reason": reason})

    # --- requested → accepted ----------------------------------------------------------------------------------

    async def _offer(self, move: MoveOut) -> None:
        resident = await self._residents.get(move.resident_id)
        if resident is None or resident.status != "active":
            await self._end(move, "aborted", "not_active")
            return
        attestation = await self._attestation(resident.signing_public_key)
        if attestation is None:
            # Published by the daemon within seconds of admission; until then the destination could not tell
            # that the resident lives here, so wait like any other transient failure.
            raise MoveCallError("not_attested", "this node's hosting attestation of the resident is not yet stored")
        offer = MoveOffer(
            PROTOCOL_VERSION, move.id, resident.id, resident.signing_public_key, resident.vault_bytes, attestation
        )
        answer = await self._client.offer(self._address(move), offer)
        if (answer.move_id, answer.resident_key, answer.source_key) != (
            move.id, resident.signing_public_key, self._identity.public_key
        ):  # fmt: skip
            raise MoveCallError("wrong_answer", "the offer answer is about another move")
        if not answer.accepted:
            await self._end(move, "refused", answer.reason or "refused")
            return
        await self._store.update_out(move.id, "requested", int(self._clock.now()), state="accepted", tries=0)

    async def _attestation(self, resident_key: bytes) -> SignedEvent | None:
        """This node's latest signed HOSTING event for the resident, as the federation stores it."""
        for attestation in await self._objectstore.attestations(resident_key):
            if attestation.node_key == self._identity.public_key:
                stored = await self._objectstore.fetch([attestation.event_id])
                return stored[0].signed if stored else None
        return None

    # --- accepted → prepared: a new attempt ----------------------------------------------------------------------

    async def _prepare(self, move: MoveOut) -> None:
        """Re-seal the resident's current package under a fresh key into this attempt's transfer file, beside the
        records that travel with it; seal the key to the destination."""
        attempt = move.attempt + 1
        async with self._db.transaction("move_snapshot") as tx:  # one consistent view of the resident
            state = await self._store.resident_state(tx, move.resident_id)
            records = await self._store.records(tx, move.resident_id)
        if state is None or state[0] != "active":
            await self._end(move, "aborted", "not_active")
            return
        epoch = state[1]
        record = await self._residents.key_record(move.resident_id, epoch)
        if record is None:
            raise IntegrityError(f"resident {move.resident_id} has no key record for epoch {epoch}")
        if self._claims is not None and not is_local_record(record):
            await self._prepare_claimed(move, epoch, decode_record(record), movewire.encode(records))
            return
        key = await self._custody.open_epoch_key(move.resident_id, epoch, record)
        opened = epoch
        if self._rotation is not None:
            # Keepers release an epoch once: the resident moves on to a new one before anything else can fail, so
            # it can run again (or make the next attempt) whatever becomes of this one.
            now = int(self._clock.now())
            epoch = await self._rotation.rotate(move.resident_id, opened, "move", now, key=key, destroy_old=False)
        encoded = movewire.encode(records)
        # A transport key, sealed to the destination only: no custody keeps it, so it is not custody's to make.
        package_key = new_epoch_key()
        transfer_epoch = epoch + attempt  # strictly increasing over the attempts of a move: a new file each time
        self._outgoing.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            size, digest = await self._vault.export_resealed(
                move.resident_id, opened, key, transfer_epoch, package_key,
                self.transfer_path(move.id, attempt), movewire.transfer_header(encoded),
            )  # fmt: skip
        finally:
            if opened != epoch:
                await self._vault.destroy(move.resident_id, opened)
        sealed = movewire.seal_package_key(move.destination_key, move.id, attempt, package_key)
        del key, package_key
        updated = await self._store.update_out(
            move.id, "accepted", int(self._clock.now()),
            state="prepared", attempt=attempt, epoch=epoch, records_hash=hashlib.sha256(encoded).digest(),
            transfer_bytes=size, transfer_hash=digest, sealed_key=sealed, finish_sent=0, tries=0,
        )  # fmt: skip
        await self._remove_transfers(move.id, keep=attempt if updated else None)
        log.info("move prepared", extra={"move": move.id.hex(), "attempt": attempt, "bytes": size})

    # --- accepted → prepared under a move claim (R2) -------------------------------------------------------------

    async def _prepare_claimed(self, move: MoveOut, epoch: int, record: ThresholdRecord, records: bytes) -> None:
        """Have the claim signed and accepted by the keepers; once enough of them are past its delay (or one says
        it was vetoed: the destination will hear the same and refuse, signed), put the resident's current vault
        file, as it is, in this attempt's transfer file. Nothing is opened here."""
        assert self._claims is not None
        claim = await self._claim(move, epoch)
        submitted = await self._claims.submit(claim, move.resident_id, record)
        now = int(self._clock.now())
        if not submitted.vetoed:
            if submitted.ready_at is None:
                raise MoveCallError(
                    "claim_not_accepted",
                    f"{submitted.accepted} of the {record.threshold} keepers needed accepted the move claim",
                )
            if now < submitted.ready_at:
                await self._store.update_out(
                    move.id, "accepted", now, ready_at=submitted.ready_at, next_try_at=submitted.ready_at, tries=0
                )
                waits = {"move": move.id.hex(), "ready_at": submitted.ready_at}
                log.info("move waits for its claim's delay", extra=waits)
                return
        attempt = move.attempt + 1
        self._outgoing.mkdir(mode=0o700, parents=True, exist_ok=True)
        size, digest = await asyncio.to_thread(
            _copy_with_header,
            self._vault.path_for(move.resident_id, epoch),
            movewire.transfer_header(records),
            self.transfer_path(move.id, attempt),
        )
        updated = await self._store.update_out(
            move.id, "accepted", now,
            state="prepared", attempt=attempt, epoch=epoch, records_hash=hashlib.sha256(records).digest(),
            transfer_bytes=size, transfer_hash=digest, sealed_key=None, finish_sent=0, tries=0,
            ready_at=submitted.ready_at,
        )  # fmt: skip
        await self._remove_transfers(move.id, keep=attempt if updated else None)
        log.info("move prepared under its claim", extra={"move": move.id.hex(), "attempt": attempt, "bytes": size})

    async def _claim(self, move: MoveOut, epoch: int) -> MoveClaim:
        """The move's claim, signed by this node and the destination: the one stored, or a new one (kept before
        it is used, so every keeper gets the same claim)."""
        assert self._claims is not None
        if move.claim is not None:
            return movewire.decode(MoveClaim, move.claim)
        body, own = self._claims.terms(move.resident_id, epoch, move.destination_key, move.destination_url)
        theirs = await self._client.claim(self._address(move), MoveClaimRequest(move.id, own))
        try:
            if theirs.key != move.destination_key:
                raise BadSignature("the claim was signed by another key than the destination's")
            verify(theirs.key, CLAIM_DOMAIN, body, theirs.signature)
        except BadSignature:
            raise MoveCallError("bad_claim_signature", "the destination's claim signature does not verify") from None
        claim = MoveClaim(body, (*own.signatures, theirs))
        await self._store.update_out(move.id, "accepted", int(self._clock.now()), claim=movewire.encode(claim))
        return claim

    async def veto(self, move_id: bytes) -> int:
        """Veto this node's own move claim at the resident's keepers (the host changed its mind, or was made to
        ask); how many keepers recorded it. The destination then refuses the move."""
        move = await self._store.get_out(move_id)
        if move is None or move.claim is None or self._claims is None:
            return 0
        return await self._claims.veto(movewire.decode(MoveClaim, move.claim), move.resident_id)

    # --- prepared → committed -------------------------------------------------------------------------------------

    async def _transfer(self, move: MoveOut) -> None:
        assert move.transfer_bytes is not None and move.transfer_hash is not None
        assert move.epoch is not None
        to = self._address(move)
        path = self.transfer_path(move.id, move.attempt)
        claimed = move.sealed_key is None  # an R2 attempt: the resident's vault file as it is
        record = await self._residents.key_record(move.resident_id, move.epoch) if claimed else None
        current = await self._residents.get(move.resident_id)
        if not path.exists() or (claimed and (record is None or current is None or current.key_epoch != move.epoch)):
            # The file was lost (the directory was cleaned by hand), or a run moved the resident on to a new
            # epoch whose keepers the destination must ask instead: make the attempt again.
            await self._store.update_out(move.id, "prepared", int(self._clock.now()), state="accepted")
            return
        progress = await self._client.progress(to, ProgressQuery(move.id, move.attempt, move.transfer_bytes))
        sent = progress.received
        while sent < move.transfer_bytes:
            chunk = await asyncio.to_thread(_read_chunk, path, sent)
            progress = await self._client.send_data(to, move.id, move.attempt, sent, chunk)
            if progress.received <= sent:
                raise MoveCallError("no_progress", "the destination did not take the data")
            sent = progress.received
        resident = await self._residents.get(move.resident_id)
        if resident is None:
            await self._end(move, "aborted", "not_active")
            return
        if not move.finish_sent:  # from now on the destination may hold it: never abandoned without its answer
            await self._store.update_out(move.id, "prepared", int(self._clock.now()), finish_sent=1)
        if record is not None:
            assert self._claims is not None and move.claim is not None
            claimed_manifest = ClaimedManifest(
                PROTOCOL_VERSION, move.id, move.attempt, move.resident_id, resident.signing_public_key,
                resident.inbox_public_key, move.epoch, move.transfer_bytes, move.transfer_hash,
                claim_id(movewire.decode(MoveClaim, move.claim).body),
                await self._claims.holders(decode_record(record)),
            )  # fmt: skip
            receipt, signed = await self._client.finish_claimed(to, claimed_manifest)
        else:
            assert move.sealed_key is not None
            manifest = TransferManifest(
                PROTOCOL_VERSION, move.id, move.attempt, move.resident_id, resident.signing_public_key,
                resident.inbox_public_key, move.epoch + move.attempt, move.transfer_bytes, move.transfer_hash,
                move.sealed_key,
            )  # fmt: skip
            receipt, signed = await self._client.finish(to, manifest)
        expected = (move.id, move.attempt, self._identity.public_key, move.destination_key, move.transfer_hash)
        if (receipt.move_id, receipt.attempt, receipt.source_key, receipt.destination_key, receipt.sha256) != expected:
            raise MoveCallError("wrong_answer", "the receipt is about another transfer")
        if not receipt.staged:
            await self._end(move, "refused", receipt.reason or "refused")
            return
        await self._commit(move, resident.signing_public_key, signed)

    async def _commit(self, move: MoveOut, resident_key: bytes, receipt: bytes) -> None:
        now = int(self._clock.now())
        moved = sign_content(
            self._identity.key, MovedContent(resident_key, move.destination_key, move.destination_url), now
        )
        async with self._db.transaction("commit_move") as tx:
            state = await self._store.resident_state(tx, move.resident_id)
            if state is None or state[0] != "active":
                committed = None  # it deleted itself meanwhile: it goes nowhere
            elif await self._store.live_claim(tx, move.resident_id, now - CLAIM_LEASE_SECONDS):
                raise MoveCallError("resident_running", "the resident's run is in progress; commit after it")
            else:
                records = movewire.encode(await self._store.records(tx, move.resident_id))
                if state[1] != move.epoch or hashlib.sha256(records).digest() != move.records_hash:
                    # It ran, posted or was written to since the attempt was made: the destination must get it as
                    # it is now. The next step prepares the next attempt.
                    await self._store.update_out(move.id, "prepared", now, tx, state="accepted", tries=0)
                    log.info("resident changed during its move; sending it again", extra={"move": move.id.hex()})
                    return
                committed = await self._commit_in(tx, move, receipt, moved, now)
        if committed is None:
            await self._end(move, "aborted", "not_active")
            return
        if not committed:
            return
        log.info("resident moved", extra={"resident_id": move.resident_id, "move": move.id.hex()})
        self._forwarding.moved(move.resident_id, move.destination_url)
        await self._events.release()
        await self._shred(move)

    async def _commit_in(self, tx: Transaction, move: MoveOut, receipt: bytes, moved: SignedEvent, now: int) -> bool:
        """The commit's writes, inside its transaction: from here on the resident lives on the destination."""
        if not await self._store.commit_out(tx, move.id, move.attempt, receipt, movewire.encode(moved), now):
            return False
        destroyed = await self._store.leave(tx, move.resident_id, move.destination_url, now)
        await self._events.queue(tx, [moved], now)
        await self._eventlog.append(
            tx,
            "resident_moved",
            move.resident_id,
            {"destination": derive_id("node", move.destination_key), "key_records_destroyed": destroyed},
        )
        return True

    async def _shred(self, move: MoveOut) -> None:
        """After the commit: the resident's vault files and the transfer files go (the keys already went)."""
        await self._vault.destroy_resident(move.resident_id)
        await self._remove_transfers(move.id)

    # --- committed → done ---------------------------------------------------------------------------------------

    async def _notify(self, move: MoveOut) -> None:
        await self._shred(move)  # again: a crash may have come between the commit and the shredding
        assert move.moved_event is not None
        event = movewire.decode(SignedEvent, move.moved_event, movewire.MAX_MESSAGE_BYTES)
        answer = await self._client.commit(self._address(move), MoveCommit(move.id, event))
        if answer.move_id != move.id or answer.source_key != self._identity.public_key or not answer.hosted:
            raise MoveCallError("wrong_answer", "the destination did not confirm it hosts the resident")
        await self._store.update_out(move.id, "committed", int(self._clock.now()), state="done", tries=0)
        log.info("move done: the destination hosts the resident", extra={"move": move.id.hex()})

    async def _remove_transfers(self, move_id: bytes, keep: int | None = None) -> None:
        def run() -> None:
            if not self._outgoing.is_dir():
                return
            for path in self._outgoing.glob(f"{move_id.hex()}-*.ftmmove"):
                if keep is None or path != self.transfer_path(move_id, keep):
                    path.unlink(missing_ok=True)

        await asyncio.to_thread(run)

    async def sweep(self) -> None:
        """At start-up: remove transfer files no pending move points at (a crash mid-prepare leaves them)."""
        current = {
            self.transfer_path(move.id, move.attempt)
            for move in await self._store.pending_out()
            if move.state == "prepared"
        }

        def run() -> None:
            if self._outgoing.is_dir():
                for path in self._outgoing.iterdir():
                    if path not in current:
                        path.unlink(missing_ok=True)

        await asyncio.to_thread(run)


def _copy_with_header(source: Path, header: bytes, dst: Path) -> tuple[int, bytes]:
    """Write `header` and then the vault file `source`, as it is, to `dst` (atomically); its size and SHA-256."""
    digest = hashlib.sha256()

    def produce(sink: BinaryIO) -> None:
        digest.update(header)
        sink.write(header)
        with open(source, "rb") as vault_file:
            while chunk := vault_file.read(movewire.CHUNK_BYTES):
                digest.update(chunk)
                sink.write(chunk)

    return write_atomically(dst, produce), digest.digest()


def _read_chunk(path: Path, offset: int) -> bytes:
    with open(path, "rb") as source:
        source.seek(offset)
        return source.read(movewire.CHUNK_BYTES)
