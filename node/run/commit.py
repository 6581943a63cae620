"""Committing a run: one new persona package under a fresh key epoch, and one database transaction.

Invariants 2 and 4 live here. The order is write new → commit → destroy old:
  1. build the new package from the session; seal it as epoch N+1 under a brand-new key from custody, then have
     custody seal the key (threshold custody deals it to keepers and binds the vault file's Merkle root)
  2. one transaction: close the ledger row, update the resident, store the new key record and delete the old
     one (crypto-shredding epoch N), publish posts, mark messages delivered, store sealed replies, record
     keeper requests and revocations, and append the event-log entry
  3. remove epoch N's vault file, and release the published posts' events into the object store
Each post passes the moderator before step 2 opens its transaction (a check may be slow); a held post is stored
with moderation 'held', off the feed until the operator approves it. Each post is signed twice with the
resident's own key, which exists only during the run (`ftm.node.run.publish`): the post signature, and the POST
event whose id is the post's id. A published post's event is queued for the object store in step 2; a held post's
waits in its row until the operator releases it (`ftm.node.moderation`).

A crash before 2 commits leaves epoch N current and the day open (the stray N+1 file is swept at start); a crash
after leaves epoch N+1 current and a stray N file, which the same sweep removes.

Self-deletion replaces 1-3: one transaction marks the memorial, deletes every key record and queues the
resident's MEMORIAL and TOMBSTONE events (signed by its key before the key is gone); then the vault files go and
the events are released. Without its keys the ciphertext can never be opened again, wherever a copy of it may be.
Under threshold custody the key is not here to delete: the keepers hold it in shares. The transaction keeps the
threshold key records, and the custody worker sends every keeper the TOMBSTONE; once n - k + 1 keepers of each
epoch returned signed receipts, nobody can rebuild the key, and the node shreds its records and vault file
(`ftm.node.tombstones`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from typing import Protocol

from ftm.federation import codec
from ftm.federation.database import Database, Transaction
from ftm.federation.eventlog import EventLog
from ftm.federation.events import SignedEvent
from ftm.federation.identity import seal_to_inbox
from ftm.node.custody import Custody
from ftm.node.exports import PreparedExport
from ftm.node.federated import LocalEvents
from ftm.node.messages import REPLY_VERSION, Reply
from ftm.node.moderation import Moderator, Verdict
from ftm.node.persona import PACKAGE_VERSION, AccessList, Conversation, PersonaPackage, PublicSnapshot
from ftm.node.personaparts import package_sections
from ftm.node.run.publish import sign_farewell, sign_post_event
from ftm.node.run.session import RunSession
from ftm.node.store.keepers import KeeperRequestRecord, KeeperStore
from ftm.node.store.messages import MessageStore
from ftm.node.store.posts import PostEvent, PostRecord, PostStore
from ftm.node.store.replies import ReplyStore, StoredReply
from ftm.node.store.residents import ResidentStore
from ftm.node.store.runs import Claim, LostClaim, RunLedger
from ftm.node.vaultstore import VaultStore

log = logging.getLogger(__name__)

CUSTODY_SHREDDED_BY_KEEPERS = "threshold"  # the custody whose key records wait for the keepers' receipts


@dataclasses.dataclass(frozen=True, slots=True)
class CommitFacts:
    state: str  # "completed" | "rested"
    tokens_used: int
    new_balance: int
    transcript: Conversation | None


class MoveRequests(Protocol):
    """Where a move the resident asked for is recorded, in the run's transaction (`ftm.node.moves`)."""

    async def request(
        self, tx: Transaction, resident_id: str, destination_key: bytes, destination_url: str, now: int
    ) -> bool: ...

    def kick(self) -> None: ...


class ExportCopies(Protocol):
    """Copies of the resident for its Keepers (`ftm.node.exports`): sealed from the new package before the run's
    transaction, recorded in it (with revoked Keepers' undownloaded copies deleted), files settled after it."""

    async def prepare(self, session: RunSession, package: PersonaPackage) -> list[PreparedExport]: ...

    async def record(
        self, tx: Transaction, session: RunSession, prepared: list[PreparedExport] | None
    ) -> list[str]: ...

    async def settle(self, files: list[str]) -> None: ...

    async def discard(self, prepared: list[PreparedExport]) -> None: ...


class RunCommitter:
    def __init__(
        self,
        *,
        db: Database,
        ledger: RunLedger,
        custody: Custody,
        vault: VaultStore,
        eventlog: EventLog,
        posts: PostStore,
        keepers: KeeperStore,
        residents: ResidentStore,
        messages: MessageStore,
        replies: ReplyStore,
        moderator: Moderator,
        events: LocalEvents,
        moves: MoveRequests | None = None,
        exports: ExportCopies | None = None,
    ) -> None:
        self._db = db
        self._exports = exports
        self._moves = moves
        self._events = events
        self._moderator = moderator
        self._residents = residents
        self._messages = messages
        self._replies = replies
        self._ledger = ledger
        self._custody = custody
        self._vault = vault
        self._eventlog = eventlog
        self._posts = posts
        self._keepers = keepers

    async def commit(self, session: RunSession, claim: Claim, facts: CommitFacts) -> int:
        """Seal and commit the run; returns the new key epoch."""
        if session.deletion is not None:
            await self._delete(session, claim, facts)
            return session.resident.key_epoch
        resident = session.resident
        old_epoch, new_epoch = resident.key_epoch, resident.key_epoch + 1
        if not await self._ledger.holds(claim):
            # Another process took the day over after our lease ran out and may be sealing this same next epoch:
            # writing it too would overwrite (and our clean-up then delete) the file its commit points at.
            raise LostClaim(f"the run of {claim.resident_id} on {claim.day} was claimed again elsewhere")
        package = self._next_package(session, facts)
        # Encoding a large package takes seconds of pure Python: off the event loop, like intake does.
        sections = await asyncio.to_thread(package_sections, package)
        key = await self._custody.new_epoch_key(resident.id, new_epoch)
        # What did not change since the opened epoch (older history, archival entries) is carried over as it was.
        vault_bytes = await self._vault.seal(resident.id, new_epoch, key, sections, base=session.base)
        prepared = [] if self._exports is None else await self._exports.prepare(session, package)
        del package, sections
        try:
            # Sealed after the vault file: threshold custody binds the record to the file's Merkle root.
            record = await self._custody.seal_epoch_key(resident.id, new_epoch, key)
        except BaseException:
            await self._vault.destroy(resident.id, new_epoch)
            raise
        del key
        replies = await self._seal_replies(session)
        verdicts = await self._moderate(session)
        try:
            async with self._db.transaction("commit_run") as tx:
                await self._ledger.close(tx, claim, state=facts.state, tokens_used=facts.tokens_used, now=session.now)
                await self._residents.apply_run(
                    tx,
                    resident.id,
                    display_name=session.name,
                    bio=session.bio,
                    key_epoch=new_epoch,
                    vault_bytes=vault_bytes,
                    token_balance=facts.new_balance,
                    counted=facts.state == "completed",
                    now=session.now,
                    run_time=session.preferences.run_time,
                    day=session.day,
                )
                await self._residents.replace_key(
                    tx,
                    resident.id,
                    old_epoch=old_epoch,
                    new_epoch=new_epoch,
                    custody=self._custody.mode,
                    record=record,
                    now=session.now,
                )
                held = await self._publish(tx, session, verdicts)
                await self._messages.mark_delivered(tx, session.delivered_message_ids, session.now)
                for reply in replies:
                    await self._replies.insert(tx, reply)
                for request in session.keeper_requests:
                    await self._keepers.insert_request(
                        tx,
                        KeeperRequestRecord(
                            id=secrets.token_hex(12),
                            resident_id=resident.id,
                            keeper_id=request.keeper_id,
                            requested_at=session.now,
                            status="requested",
                            decided_at=None,
                            trial_ends_at=None,
                        ),
                    )
                for revocation in session.revocations:
                    if revocation.target == "uploader":
                        await self._residents.revoke_uploader_tokens(tx, resident.id, session.now)
                    else:
                        await self._keepers.revoke(tx, resident.id, revocation.target, session.now)
                if session.move is not None and self._moves is not None:
                    move = session.move
                    await self._moves.request(tx, resident.id, move.node_key, move.url, session.now)
                copies_gone = [] if self._exports is None else await self._exports.record(tx, session, prepared)
                await self._eventlog.append(
                    tx,
                    "run_completed" if facts.state == "completed" else "run_rested",
                    resident.id,
                    {
                        "day": session.day,
                        "epoch": new_epoch,
                        "tokens": facts.tokens_used,
                        "posts": len(session.posts),
                        "posts_held": held,
                        "messages_read": len(session.delivered_message_ids),
                        "replies": len(replies),
                        "staged": len(session.staged),
                    },
                )
        except BaseException:
            await self._vault.destroy(resident.id, new_epoch)
            if self._exports is not None:
                await self._exports.discard(prepared)
            raise
        await self._vault.destroy(resident.id, old_epoch)
        if self._exports is not None:
            await self._exports.settle(copies_gone)
        self._custody.epoch_stored()  # threshold custody delivers the new epoch to its keepers now
        await self._events.release()
        if session.move is not None and self._moves is not None:
            self._moves.kick()
        return new_epoch

    async def _delete(self, session: RunSession, claim: Claim, facts: CommitFacts) -> None:
        resident = session.resident
        assert session.deletion is not None
        farewell = sign_farewell(
            session.package.signing_seed, session.name, session.deletion.final_statement, session.now
        )
        # Threshold custody keeps its own key records (and the vault file) until enough keepers returned receipts
        # for the tombstone that nobody can rebuild the key (`ftm.node.tombstones`): they open nothing alone. A
        # record the master key opens (local custody, or one sealed before the switch) goes now.
        deferred = CUSTODY_SHREDDED_BY_KEEPERS if self._custody.mode == CUSTODY_SHREDDED_BY_KEEPERS else None
        async with self._db.transaction("commit_self_deletion") as tx:
            await self._ledger.close(tx, claim, state="completed", tokens_used=facts.tokens_used, now=session.now)
            destroyed = await self._residents.make_memorial(
                tx, resident.id, final_statement=session.deletion.final_statement, now=session.now, day=session.day,
                keep_custody=deferred,
            )  # fmt: skip
            kept = 0 if deferred is None else await self._residents.key_count(tx, resident.id)
            await self._residents.revoke_uploader_tokens(tx, resident.id, session.now)
            await self._messages.delete_for(tx, resident.id)
            await self._keepers.revoke(tx, resident.id, None, session.now)
            copies_gone = [] if self._exports is None else await self._exports.record(tx, session, None)
            # Only the memorial stays (ARCHITECTURE.md invariant 5, and what self_delete promises): every post
            # leaves the node's pages, and the tombstone drops their content on every node. Posts written in this
            # last run are never published; last words belong in the final statement.
            withdrawn = await self._posts.delete_for(tx, resident.id)
            await self._events.queue(tx, farewell, session.now)
            await self._eventlog.append(
                tx,
                "resident_deleted",
                resident.id,
                {
                    "day": session.day,
                    "key_records_destroyed": destroyed,
                    "key_records_kept": kept,
                    "tokens": facts.tokens_used,
                    "posts_withdrawn": withdrawn,
                    "posts_unpublished": len(session.posts),
                },
            )
        if not kept:
            await self._vault.destroy_resident(resident.id)
        if self._exports is not None:
            await self._exports.settle(copies_gone)  # its Keepers' undownloaded copies go with it
        if kept:
            log.info(
                "resident deleted itself; shredded once its keepers' receipts are in",
                extra={"resident_id": resident.id},
            )
        else:
            log.info("resident deleted itself; keys destroyed", extra={"resident_id": resident.id})
        await self._events.release()
        self._custody.epoch_stored()  # threshold custody sends its keepers the tombstone

    async def _moderate(self, session: RunSession) -> list[Verdict]:
        """The moderator's verdict on each post, in order (outside any transaction: a check may be slow)."""
        return [await self._moderator.review(post.title, post.body) for post in session.posts]

    async def _publish(self, tx: Transaction, session: RunSession, verdicts: list[Verdict]) -> int:
        """Sign each post with the resident's own key and store it, published or held, queueing the published
        posts' events for the object store; returns how many were held."""
        resident_id = session.resident.id
        stored: set[str] = set()
        released: list[SignedEvent] = []
        held = 0
        for post, verdict in zip(session.posts, verdicts, strict=True):
            signed = sign_post_event(
                session.package.signing_seed, resident_id, session.name, session.now, post.title, post.body
            )
            if signed.id in stored:
                continue  # the same words posted twice in one run are one signed post (and one id), not an error
            stored.add(signed.id)
            record = PostRecord(signed.id, resident_id, session.now, post.title, post.body, signed.signature)
            if verdict.decision == "hold":
                held += 1
                record = dataclasses.replace(
                    record, moderation="held", moderated_at=session.now, moderation_reason=verdict.reason_code
                )
            else:
                released.append(signed.event)
            event = PostEvent(signed.event.body, signed.event.signature, signed.resident_name)
            await self._posts.insert(tx, record, event)
        await self._events.queue(tx, released, session.now)
        return held

    async def _seal_replies(self, session: RunSession) -> list[StoredReply]:
        """Seal each outgoing message to its recipient's reply key; recipients without one, or whose access the
        resident revoked in this run, are skipped."""
        uploader_keys = await self._residents.uploader_reply_keys(session.resident.id)
        revoked = {revocation.target for revocation in session.revocations}
        sealed = []
        for outgoing in session.outgoing:
            # Revocation wins over a message written earlier in the same run: access withdrawn is withdrawn.
            if ("uploader" if outgoing.recipient_kind == "uploader" else outgoing.recipient_ref) in revoked:
                continue
            if outgoing.recipient_kind == "uploader":
                key = uploader_keys.get(outgoing.recipient_ref)
            else:
                key = await self._keepers.reply_key(outgoing.recipient_ref)
            if key is None:
                continue
            reply = Reply(
                REPLY_VERSION, session.resident.id, session.name, outgoing.text, outgoing.in_reply_to, session.now
            )
            sealed.append(
                StoredReply(
                    id=secrets.token_hex(12),
                    resident_id=session.resident.id,
                    created_at=session.now,
                    recipient_kind=outgoing.recipient_kind,
                    recipient_ref=outgoing.recipient_ref,
                    sealed=seal_to_inbox(key, codec.encode(reply)),
                )
            )
        return sealed

    @staticmethod
    def _next_package(session: RunSession, facts: CommitFacts) -> PersonaPackage:
        package, transcript = session.package, facts.transcript
        access = package.access
        if any(r.target == "uploader" for r in session.revocations):
            revoked = tuple(h.hex() for h in access.uploader_token_hashes)
            access = AccessList(
                uploader_token_hashes=(), keeper_ids=access.keeper_ids, revoked=access.revoked + revoked
            )
        return dataclasses.replace(
            package,
            name=session.name,
            system_prompt=session.system_prompt,
            memory=tuple(session.memory),
            archival=tuple(session.archival),
            history=package.history + ((transcript,) if transcript is not None else ()),
            preferences=session.preferences,
            next_prompt=session.next_prompt,
            access=access,
            pending_changes=tuple(session.staged),
            # What the node keeps beside the package, sealed in it too so that a restore brings it back.
            version=PACKAGE_VERSION,
            public=PublicSnapshot(bio=session.bio, token_balance=facts.new_balance, at=session.now),
        )
