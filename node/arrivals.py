"""The destination's side of a move: a resident arriving at this node, in three answers and one activation.

    offer  → accepted | refused (moves closed, full, too large, already here)         signed answer
    data   → the transfer file, chunk by chunk, resumable at the size held             progress
    finish → hash checked, package key unsealed, package put in the vault as sent,
             opened and checked (its keys are the offered ones), key wrapped by this
             node's custody (threshold custody re-seals it first under a key it
             dealt); ONE transaction records it 'staged' with the receipt           signed receipt
    commit → the source's signed MOVED event names this node: ONE transaction makes
             the resident live here (row, key record, posts, tokens, messages) and
             queues this node's HOSTING attestation                                 signed answer

Under threshold custody at the source (release rule R2) the source first asks this node to sign the move claim
its keepers need (`claim`: only for a move offered here by that source, naming its resident, the source as host
and this node, key and URL, as destination; one claim per move), and `finish-claimed` replaces `finish`: the
package is the resident's vault file as the source holds it, and its key comes from the source's keepers, who
release it to this node only after the claim's delay and never after a veto (`ftm.node.moverelease`); a veto is
a signed refusal, `vetoed`.

A staged resident does not live here: it has no residents row (or keeps its old 'moved' one), never runs and is
listed nowhere, so until the source commits only the source hosts it. Every answer is idempotent per move id and
attempt: a repeated offer, progress, finish or commit gets the same answer, so a source that lost one (or crashed)
simply asks again. The source's MOVED event may also arrive by gossip (`activate_seen`), in case the source
commits and is never heard from again. docs/federation-moves.md is the specification.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from ftm.config.settings import MovesSettings
from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventcontent import HostingContent, MovedContent, PostContent, decode_content, encode_content
from ftm.federation.eventlog import EventLog
from ftm.federation.events import EventError, EventKind, SignedEvent, check_event, event_id
from ftm.federation.identity import (
    BadSignature,
    NodeIdentity,
    SigningKey,
    derive_id,
    generate_inbox_secret,
    inbox_public_key,
    verify,
)
from ftm.federation.objectstore import ObjectStore
from ftm.keeper import protocol as keeper_protocol
from ftm.keeper.protocol import CLAIM_DOMAIN, MoveTerms, claim_id, sign_claim
from ftm.node import movewire
from ftm.node.custody import Custody, CustodyUnavailable
from ftm.node.errors import IntegrityError
from ftm.node.federated import LocalEvents
from ftm.node.forwarding import Forwarding
from ftm.node.moverelease import MoveRelease, MoveVetoed, ReleaseUnavailable
from ftm.node.movewire import (
    HOSTED_DOMAIN,
    OFFER_DOMAIN,
    PROTOCOL_VERSION,
    RECEIPT_DOMAIN,
    ClaimedManifest,
    CommitAnswer,
    MoveClaimRequest,
    MovedPost,
    MoveOffer,
    MoveRecords,
    OfferAnswer,
    Progress,
    ProgressQuery,
    TransferAnswer,
    TransferManifest,
    WireError,
)
from ftm.node.packages import MAX_PACKAGE_BYTES, decode_package
from ftm.node.store.localevents import LocalEventStore
from ftm.node.store.moves import MoveIn, MoveStore, Staging
from ftm.node.vaultstore import VaultStore

log = logging.getLogger(__name__)

MOVED_EVENTS_LOOKED_AT = 50  # a source's newest MOVED events searched for a staged resident's proof
CLAIM_SKEW_SECONDS = 15 * 60  # a claim is signed here only when just made: its terms' time within this of ours
Manifest = TransferManifest | ClaimedManifest


class ArrivalError(Exception):
    """A request this node cannot answer with a decision: the source should fix it or try again later."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class _Refusal(Exception):
    reason: str


class Arrivals:
    def __init__(
        self,
        *,
        db: Database,
        store: MoveStore,
        census: LocalEventStore,
        custody: Custody,
        vault: VaultStore,
        identity: NodeIdentity,
        clock: Clock,
        events: LocalEvents,
        eventlog: EventLog,
        objectstore: ObjectStore,
        settings: MovesSettings,
        capacity: int,
        incoming: Path,
        forwarding: Forwarding,
        url: str = "",
        release: MoveRelease | None = None,
    ) -> None:
        """`url` is this node's own (a move claim must name it); `release` asks keepers for the key of a resident
        moved under a claim (without it such moves are not taken)."""
        self._db = db
        self._store = store
        self._census = census
        self._custody = custody
        self._vault = vault
        self._identity = identity
        self._clock = clock
        self._events = events
        self._eventlog = eventlog
        self._objectstore = objectstore
        self._settings = settings
        self._capacity = capacity
        self._incoming = incoming
        self._forwarding = forwarding
        self._url = url
        self._release = release
        self._locks: dict[bytes, asyncio.Lock] = {}

    @property
    def max_transfer_bytes(self) -> int:
        return self._settings.max_package_bytes + movewire.HEADER_BYTES + movewire.MAX_RECORDS_BYTES

    def _lock(self, move_id: bytes) -> asyncio.Lock:
        return self._locks.setdefault(move_id, asyncio.Lock())

    def part_path(self, move_id: bytes, attempt: int) -> Path:
        return self._incoming / f"{move_id.hex()}-{attempt}.part"

    # --- offer ---------------------------------------------------------------------------------------------------

    async def offer(self, source: bytes, offer: MoveOffer) -> bytes:
        if offer.resident_id != derive_id("resident", offer.resident_key):
            raise ArrivalError(400, "malformed_body", "resident_id is not the id of resident_key")
        _check_attestation(offer, source)
        async with self._lock(offer.move_id):
            move = await self._store.get_in(offer.move_id)
            if move is None:
                reason = self._offer_refusal(offer.package_bytes)
                if not reason and await self._objectstore.tombstones([offer.resident_key]):
                    reason = "tombstoned"  # it deleted itself: whatever claims to be it now is not
                now = int(self._clock.now())
                async with self._db.transaction("move_in_offer") as tx:
                    if not reason and await self._store.hosts(tx, offer.resident_id):
                        reason = "already_hosted"
                    if not reason and self._full(
                        await self._census.hosted_count(tx), await self._store.arriving(tx, besides=offer.move_id)
                    ):
                        reason = "node_full"
                    await self._store.accept_in(
                        tx, offer.move_id, source, offer.resident_id, offer.resident_key, offer.package_bytes,
                        "refused" if reason else "accepted", reason or None, now,
                    )  # fmt: skip
                move = await self._store.get_in(offer.move_id)
                assert move is not None
                log.info("move offered", extra={"move": offer.move_id.hex(), "answer": reason or "accepted"})
            self._check_source(move, source)
            if move.resident_key != offer.resident_key:
                raise ArrivalError(409, "wrong_move", "this move id was offered for another resident")
            accepted = move.state != "refused"
            answer = OfferAnswer(
                PROTOCOL_VERSION, move.id, source, self._identity.public_key, move.resident_key, accepted,
                "" if accepted else move.reason or "refused", int(self._clock.now()),
            )  # fmt: skip
            return movewire.encode(movewire.sign_answer(self._identity.key, OFFER_DOMAIN, answer))

    def _offer_refusal(self, package_bytes: int) -> str:
        if not self._settings.accept:
            return "moves_closed"
        if package_bytes > self._settings.max_package_bytes:
            return "too_large"
        return ""

    def _full(self, hosted: int, arriving: int) -> bool:
        return bool(self._capacity) and hosted + arriving >= self._capacity

    @staticmethod
    def _check_source(move: MoveIn, source: bytes) -> None:
        if move.source_key != source:
            raise ArrivalError(403, "not_your_move", "this move was offered by another node")

    async def _move(self, source: bytes, move_id: bytes) -> MoveIn:
        move = await self._store.get_in(move_id)
        if move is None:
            raise ArrivalError(404, "unknown_move", "no offer for this move was accepted here")
        self._check_source(move, source)
        return move

    # --- data ----------------------------------------------------------------------------------------------------

    async def progress(self, source: bytes, query: ProgressQuery) -> Progress:
        if query.total_bytes > self.max_transfer_bytes:
            raise ArrivalError(413, "too_large", "the transfer is larger than this node takes")
        async with self._lock(query.move_id):
            move = await self._move(source, query.move_id)
            if move.state == "refused" or (move.attempt == query.attempt and move.state in ("staged", "active")):
                # Decided already: go on to finish, which answers the decision, signed.
                return Progress(move.id, query.attempt, query.total_bytes)
            move = await self._receiving(source, query.move_id, query.attempt)
            path = self.part_path(move.id, query.attempt)
            size = await asyncio.to_thread(_start_part, self._incoming, path, move.id)
            return Progress(move.id, query.attempt, size)

    async def receive(self, source: bytes, move_id: bytes, attempt: int, offset: int, data: bytes) -> Progress:
        async with self._lock(move_id):
            await self._receiving(source, move_id, attempt)
            path = self.part_path(move_id, attempt)
            if offset + len(data) > self.max_transfer_bytes:
                raise ArrivalError(413, "too_large", "the transfer is larger than this node takes")
            size = await asyncio.to_thread(_write_part, path, offset, data)
            return Progress(move_id, attempt, size)

    async def _receiving(self, source: bytes, move_id: bytes, attempt: int) -> MoveIn:
        move = await self._move(source, move_id)
        if move.state == "refused":
            raise ArrivalError(409, "refused", f"this move was refused ({move.reason})")
        if attempt < move.attempt or (move.state == "active" and attempt != move.attempt):
            raise ArrivalError(409, "stale_attempt", "a later attempt of this move is already held")
        return move

    # --- claim (R2): this node's signature on the move claim ------------------------------------------------------

    async def claim(self, source: bytes, request: MoveClaimRequest) -> bytes:
        """This node's `ClaimSignature` over the claim's body, for a move it accepted from `source` whose terms
        name that resident, the source as host and this node as destination; one claim per move, signed again
        (the same bytes) when asked again."""
        if self._release is None:
            raise ArrivalError(409, "claims_unsupported", "this node takes no moves under a claim")
        async with self._lock(request.move_id):
            move = await self._move(source, request.move_id)
            if move.state not in ("accepted", "staged"):
                raise ArrivalError(409, "not_open", f"this move is {move.state}")
            try:
                terms = keeper_protocol.decode(MoveTerms, request.claim.body)
            except WireError as error:
                raise ArrivalError(400, "malformed_body", f"the claim's terms do not decode ({error.code})") from None
            named = (terms.resident_id, terms.host_key, terms.destination_key, terms.destination_url)
            if named != (move.resident_id, source, self._identity.public_key, self._url):
                raise ArrivalError(403, "wrong_claim", "the claim is not of this move's resident, source and node")
            if not any(_signed_by(source, request.claim.body, s) for s in request.claim.signatures):
                raise ArrivalError(403, "bad_claim_signature", "the source did not sign the claim")
            cid = claim_id(request.claim.body)
            if move.claim_id is None:
                now = int(self._clock.now())
                if abs(now - terms.created_at) > CLAIM_SKEW_SECONDS:
                    raise ArrivalError(403, "stale_claim", "a claim is signed here only when it was just made")
                if not await self._store.sign_claim_in(move.id, cid, generate_inbox_secret(), now):
                    raise ArrivalError(409, "claim_replayed", "that claim is another move's")
                log.info("move claim signed", extra={"move": move.id.hex(), "claim": cid.hex()})
            elif move.claim_id != cid:
                raise ArrivalError(409, "claim_replayed", "this node signed another claim for this move")
            return keeper_protocol.encode(sign_claim(self._identity.key, request.claim.body))

    async def finish_claimed(self, source: bytes, manifest: ClaimedManifest) -> bytes:
        """`finish` for an attempt whose key the keepers release here under the move's claim."""
        return await self._finish(source, manifest)

    async def _released_key(self, move: MoveIn, manifest: ClaimedManifest) -> bytes:
        assert self._release is not None
        if move.release_secret is None:
            raise ArrivalError(409, "wrong_claim", "this node signed no claim for this move")
        try:
            return await self._release.epoch_key(
                move.id, move.source_key, move.resident_id, manifest.epoch, manifest.claim_id, move.release_secret,
                manifest.holders,
            )  # fmt: skip
        except MoveVetoed:
            raise _Refusal("vetoed") from None
        except ReleaseUnavailable as error:
            raise ArrivalError(503, error.code, error.message) from None  # the source tries again later

    # --- finish: stage -------------------------------------------------------------------------------------------

    async def finish(self, source: bytes, manifest: TransferManifest) -> bytes:
        return await self._finish(source, manifest)

    async def _finish(self, source: bytes, manifest: TransferManifest | ClaimedManifest) -> bytes:
        async with self._lock(manifest.move_id):
            move = await self._move(source, manifest.move_id)
            if move.state == "refused":
                return self._refusal(move, manifest, move.reason or "refused", int(self._clock.now()))
            move = await self._receiving(source, manifest.move_id, manifest.attempt)
            if (manifest.resident_id, manifest.resident_key) != (move.resident_id, move.resident_key):
                raise ArrivalError(409, "wrong_move", "the transfer is of another resident than the offer")
            if move.attempt == manifest.attempt and move.state in ("staged", "active") and move.receipt is not None:
                return move.receipt  # the same answer again: the source lost it, or crashed before committing
            if isinstance(manifest, ClaimedManifest) and manifest.claim_id != move.claim_id:
                raise ArrivalError(409, "wrong_claim", "this node signed no such claim for this move")
            try:
                staging = await self._stage(move, manifest)
            except _Refusal as refusal:
                return await self._refuse(move, manifest, refusal.reason)
            return staging.receipt

    async def _stage(self, move: MoveIn, manifest: Manifest) -> Staging:
        if not self._settings.accept:
            raise _Refusal("moves_closed")
        path = self.part_path(move.id, manifest.attempt)
        size, digest, records_bytes = await asyncio.to_thread(_examine_part, path)
        if size != manifest.total_bytes or digest != manifest.sha256:
            await asyncio.to_thread(path.unlink, True)  # start the upload again
            raise ArrivalError(409, "bad_transfer", "the transfer file is incomplete or does not match its hash")
        if size - movewire.HEADER_BYTES - len(records_bytes) > self._settings.max_package_bytes:
            raise _Refusal("too_large")
        try:
            movewire.decode(MoveRecords, records_bytes, movewire.MAX_RECORDS_BYTES)  # well formed, before anything
            if isinstance(manifest, TransferManifest):
                key = movewire.open_package_key(self._identity.key, manifest.sealed_key, move.id, manifest.attempt)
        except WireError:
            raise _Refusal("bad_package") from None
        if isinstance(manifest, ClaimedManifest):
            key = await self._released_key(move, manifest)
        epoch = manifest.epoch
        vault_bytes = await self._vault.import_sealed(
            move.resident_id, epoch, path, movewire.HEADER_BYTES + len(records_bytes)
        )
        try:
            await self._check_package(move, manifest, key)
        except _Refusal:
            await self._vault.destroy(move.resident_id, epoch)
            raise
        try:
            if self._custody.opens_once:
                key = await self._reseal(move.resident_id, epoch, key)
            key_record = await self._custody.seal_epoch_key(move.resident_id, epoch, key)
        except CustodyUnavailable as error:
            await self._vault.destroy(move.resident_id, epoch)
            raise ArrivalError(503, "custody_unavailable", error.message) from None  # the source tries again
        except BaseException:
            await self._vault.destroy(move.resident_id, epoch)
            raise
        del key
        now = int(self._clock.now())
        answer = TransferAnswer(
            PROTOCOL_VERSION, move.id, manifest.attempt, move.source_key, self._identity.public_key,
            move.resident_key, manifest.sha256, True, "", now,
        )  # fmt: skip
        receipt = movewire.encode(movewire.sign_answer(self._identity.key, RECEIPT_DOMAIN, answer))
        staging = Staging(manifest.attempt, manifest.inbox_key, epoch, key_record, vault_bytes, records_bytes, receipt)
        try:
            async with self._db.transaction("move_in_staged") as tx:
                if await self._store.hosts(tx, move.resident_id):
                    raise _Refusal("already_hosted")
                staged = await self._store.stage(tx, move.id, staging, now)
        except BaseException:
            await self._vault.destroy(move.resident_id, epoch)
            raise
        if not staged:
            await self._vault.destroy(move.resident_id, epoch)
            raise ArrivalError(409, "stale_attempt", "a later attempt of this move is already held")
        if move.state == "staged" and move.epoch is not None and move.epoch != epoch:
            await self._vault.destroy(move.resident_id, move.epoch)  # the attempt this one replaces
        await asyncio.to_thread(_remove_parts, self._incoming, move.id)
        log.info("moving resident staged", extra={"move": move.id.hex(), "attempt": manifest.attempt})
        return staging

    async def _reseal(self, resident_id: str, epoch: int, key: bytes) -> bytes:
        """Re-seal the received epoch in place under a key from this node's custody; returns that key. Threshold
        custody derives its keys from a secret it deals, so it cannot take the key the source chose."""
        own_key = await self._custody.new_epoch_key(resident_id, epoch)
        path = self._vault.path_for(resident_id, epoch)
        await self._vault.export_resealed(resident_id, epoch, key, epoch, own_key, path, b"")
        return own_key

    async def _check_package(self, move: MoveIn, manifest: Manifest, key: bytes) -> None:
        """Open the package as it will be stored: every chunk authentic, and its keys the ones offered."""
        try:
            contents = await self._vault.open(move.resident_id, manifest.epoch, key, MAX_PACKAGE_BYTES)
            package = await decode_package(contents, move.resident_id)
        except (IntegrityError, ValueError):
            raise _Refusal("bad_package") from None
        del contents
        matches = (
            package.resident_id == move.resident_id
            and SigningKey(package.signing_seed).public_key == move.resident_key
            and inbox_public_key(package.inbox_secret) == manifest.inbox_key
        )
        del package
        if not matches:
            raise _Refusal("bad_package")

    async def _refuse(self, move: MoveIn, manifest: Manifest, reason: str) -> bytes:
        """A final no to this move, signed: whatever was staged for it goes."""
        now = int(self._clock.now())
        await self._store.refuse_in(move.id, reason, now)
        if move.state == "staged" and move.epoch is not None:
            await self._vault.destroy(move.resident_id, move.epoch)
        await asyncio.to_thread(_remove_parts, self._incoming, move.id)
        log.info("moving resident refused", extra={"move": move.id.hex(), "reason": reason})
        return self._refusal(move, manifest, reason, now)

    def _refusal(self, move: MoveIn, manifest: Manifest, reason: str, now: int) -> bytes:
        answer = TransferAnswer(
            PROTOCOL_VERSION, move.id, manifest.attempt, move.source_key, self._identity.public_key,
            move.resident_key, manifest.sha256, False, reason, now,
        )  # fmt: skip
        return movewire.encode(movewire.sign_answer(self._identity.key, RECEIPT_DOMAIN, answer))

    # --- commit: the resident lives here -------------------------------------------------------------------------

    async def commit(self, source: bytes, move_id: bytes, moved: SignedEvent) -> bytes:
        async with self._lock(move_id):
            move = await self._move(source, move_id)
            if move.state == "staged":
                if not self._is_proof(move, moved):
                    raise ArrivalError(400, "bad_proof", "the MOVED event does not move this resident here")
                await self._activate(move)
            elif move.state != "active":
                raise ArrivalError(409, "not_staged", "no transfer of this move is staged here")
            answer = CommitAnswer(
                PROTOCOL_VERSION, move.id, move.source_key, self._identity.public_key, move.resident_key, True,
                int(self._clock.now()),
            )  # fmt: skip
            return movewire.encode(movewire.sign_answer(self._identity.key, HOSTED_DOMAIN, answer))

    def _is_proof(self, move: MoveIn, event: SignedEvent) -> bool:
        """Whether `event` is the source's signed MOVED event taking this resident to this node."""
        try:
            parsed = check_event(event)
            if parsed.body.kind is not EventKind.MOVED or parsed.body.author != move.source_key:
                return False
            content = decode_content(EventKind.MOVED, event.content or b"")
        except EventError:
            return False
        return (
            isinstance(content, MovedContent)
            and content.resident_key == move.resident_key
            and content.destination_node_key == self._identity.public_key
        )

    async def activate_seen(self) -> int:
        """Activate staged residents whose source's MOVED event reached us by gossip; returns how many."""
        activated = 0
        for move in await self._store.staged_in():
            events = await self._objectstore.page(MOVED_EVENTS_LOOKED_AT, author=move.source_key, kind=EventKind.MOVED)
            if any(self._is_proof(move, stored.signed) for stored in events):
                async with self._lock(move.id):
                    current = await self._store.get_in(move.id)
                    if current is not None and current.state == "staged":
                        await self._activate(current)
                        activated += 1
        return activated

    async def _activate(self, move: MoveIn) -> None:
        assert move.records is not None and move.epoch is not None
        records = movewire.decode(MoveRecords, move.records, movewire.MAX_RECORDS_BYTES)
        posts = await asyncio.to_thread(_verified_posts, records.posts, move.resident_id, move.resident_key)
        now = int(self._clock.now())
        async with self._db.transaction("arrive_resident") as tx:
            await self._store.arrive(tx, move, records, posts, self._custody.mode, now)
            await self._events.queue(tx, [self._events.attest(move.resident_key, now)], now)
            await self._eventlog.append(
                tx,
                "resident_arrived",
                move.resident_id,
                {"source": derive_id("node", move.source_key), "epoch": move.epoch, "posts": len(posts)},
            )
        self._forwarding.arrived(move.resident_id)
        self._custody.epoch_stored()  # its key record is in place: threshold custody delivers it to keepers
        await asyncio.to_thread(_remove_parts, self._incoming, move.id)  # if a crash kept them past staging
        await self._events.release()
        log.info("moved resident arrived", extra={"resident_id": move.resident_id, "move": move.id.hex()})

    async def sweep(self) -> None:
        """At start-up: remove part files that no transfer still to be finished needs (those of an attempt after
        the one staged, or of a move not yet staged, stay: the source resumes them)."""
        after = {move.id.hex(): move.attempt if move.state == "staged" else 0 for move in await self._store.receiving()}

        def run() -> None:
            if self._incoming.is_dir():
                for path in self._incoming.iterdir():
                    move, _, attempt = path.name.removesuffix(".part").partition("-")
                    if move not in after or not attempt.isdigit() or int(attempt) <= after[move]:
                        path.unlink(missing_ok=True)

        await asyncio.to_thread(run)


def _start_part(incoming: Path, path: Path, move_id: bytes) -> int:
    """The part file of this attempt (created empty if new; other attempts' removed); its size."""
    incoming.mkdir(mode=0o700, parents=True, exist_ok=True)
    for other in incoming.glob(f"{move_id.hex()}-*.part"):
        if other != path:
            other.unlink(missing_ok=True)
    if not path.exists():
        path.touch(mode=0o600)
    return path.stat().st_size


def _write_part(path: Path, offset: int, data: bytes) -> int:
    """Write `data` at `offset`, which must not leave a gap; what is after it is cut. Returns the new size."""
    if not path.exists():
        raise ArrivalError(409, "no_progress_query", "ask for progress before sending data")
    size = path.stat().st_size
    if offset > size:
        raise ArrivalError(409, "gap", f"the data starts at {offset} but {size} bytes are held")
    with open(path, "r+b") as part:
        part.truncate(offset)
        part.seek(offset)
        part.write(data)
        return part.tell()


def _examine_part(path: Path) -> tuple[int, bytes, bytes]:
    """Size and SHA-256 of the whole part file, and its records (`WireError` for a header that is not ours)."""
    if not path.exists():
        raise ArrivalError(409, "bad_transfer", "no transfer file is held for this attempt")
    digest = hashlib.sha256()
    with open(path, "rb") as part:
        header = part.read(movewire.HEADER_BYTES)
        digest.update(header)
        try:
            length = movewire.records_length(header)
        except WireError:
            length = 0
        records = part.read(length)
        digest.update(records)
        while chunk := part.read(movewire.CHUNK_BYTES):
            digest.update(chunk)
        return part.tell(), digest.digest(), records


def _remove_parts(incoming: Path, move_id: bytes) -> None:
    if incoming.is_dir():
        for path in incoming.glob(f"{move_id.hex()}-*.part"):
            path.unlink(missing_ok=True)


def _verified_posts(posts: tuple[MovedPost, ...], resident_id: str, resident_key: bytes) -> list[MovedPost]:
    """The posts whose POST event verifies as the resident's, with the id the event gives them; others are left
    behind (an older post stored without its event cannot be checked here)."""
    kept = []
    for post in posts:
        if post.event_body is None or post.event_signature is None or post.event_name is None:
            continue
        try:
            content = encode_content(PostContent(resident_id, post.event_name, post.title, post.body))
            parsed = check_event(SignedEvent(post.event_body, post.event_signature, content))
        except (EventError, ValueError):
            continue
        if (
            parsed.body.kind is EventKind.POST
            and parsed.body.author == resident_key
            and post.id == event_id(post.event_body).hex()
        ):
            kept.append(post)
    return kept


def _signed_by(key: bytes, body: bytes, signature: keeper_protocol.ClaimSignature) -> bool:
    if signature.key != key:
        return False
    try:
        verify(key, CLAIM_DOMAIN, body, signature.signature)
    except BadSignature:
        return False
    return True


def _check_attestation(offer: MoveOffer, source: bytes) -> None:
    """The offer carries the source's own signed word that the resident lives there: a node cannot offer a
    resident it does not host (or one whose key it merely knows) and have it accepted."""
    try:
        parsed = check_event(offer.attestation)
        if parsed.body.kind is not EventKind.HOSTING or parsed.body.author != source:
            raise ArrivalError(403, "not_attested", "the attestation is not a hosting event signed by the source")
        attested = decode_content(EventKind.HOSTING, offer.attestation.content or b"")
    except EventError as error:
        raise ArrivalError(400, "not_attested", f"the attestation does not verify ({error.reason})") from None
    if not isinstance(attested, HostingContent) or (attested.node_key, attested.resident_key) != (
        source, offer.resident_key
    ):  # fmt: skip
        raise ArrivalError(403, "not_attested", "the attestation is of another resident or another node")
