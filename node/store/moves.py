"""SQL for moving residents between nodes (migrations 0011 and 0017): the moves out of this node and into it, what
travels with a resident beside its package, and the writes that make a resident leave or arrive, each inside the
caller's one transaction. The protocol and the states are in docs/federation-moves.md.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ftm.federation.database import Database, Transaction
from ftm.node.movewire import (
    PROTOCOL_VERSION,
    MovedMessage,
    MovedPost,
    MovedReply,
    MovedToken,
    MoveRecords,
)

OPEN_OUT = ("requested", "accepted", "prepared")  # the resident still lives here and the move is under way
PENDING_OUT = (*OPEN_OUT, "committed")  # states the source still has work for
MAX_MOVED_POSTS = 2000  # the newest published posts travel (all of them federate as events anyway)
MAX_MOVED_ROWS = 5000  # uploader tokens, undelivered messages, replies to uploaders: the newest of each
_OUT_FIELDS = frozenset(
    {"state", "attempt", "epoch", "records_hash", "transfer_bytes", "transfer_hash", "sealed_key", "finish_sent",
     "reason", "next_try_at", "tries", "claim", "ready_at"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class MoveOut:
    id: bytes
    resident_id: str
    destination_key: bytes
    destination_url: str
    state: str
    attempt: int
    epoch: int | None
    records_hash: bytes | None
    transfer_bytes: int | None
    transfer_hash: bytes | None
    sealed_key: bytes | None
    finish_sent: bool
    receipt: bytes | None
    moved_event: bytes | None
    reason: str | None
    created_at: int
    next_try_at: int
    tries: int
    claim: bytes | None  # R2 (threshold custody): the `MoveClaim` both nodes signed, encoded
    ready_at: int | None  # R2: from when enough keepers of the epoch to send release under the claim


@dataclass(frozen=True, slots=True)
class MoveIn:
    id: bytes
    source_key: bytes
    resident_id: str
    resident_key: bytes
    inbox_key: bytes | None
    package_bytes: int
    state: str
    attempt: int
    epoch: int | None
    key_record: bytes | None
    vault_bytes: int | None
    records: bytes | None
    receipt: bytes | None
    reason: str | None
    created_at: int
    updated_at: int
    claim_id: bytes | None  # R2: the one claim this node signed for the move
    release_secret: bytes | None  # R2: the X25519 secret its keeper release requests name


@dataclass(frozen=True, slots=True)
class StoredRelease:
    """A share a keeper released to this node under a move's claim, still sealed to the move's release key."""

    epoch: int
    x: int
    keeper_key: bytes
    sealed_share: bytes


@dataclass(frozen=True, slots=True)
class Staging:
    """What the destination records when it stages an attempt."""

    attempt: int
    inbox_key: bytes
    epoch: int
    key_record: bytes
    vault_bytes: int
    records: bytes
    receipt: bytes


class MoveStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- moves out -----------------------------------------------------------------------------------------------

    async def request(
        self, tx: Transaction, move_id: bytes, resident_id: str, destination_key: bytes, destination_url: str, now: int
    ) -> bool:
        """Record a move the resident asked for (in its run's commit); False if one is already under way."""
        changed = await tx.execute(
            "INSERT INTO moves_out (id, resident_id, destination_key, destination_url, state, created_at, updated_at,"
            " next_try_at) VALUES (?, ?, ?, ?, 'requested', ?, ?, ?) ON CONFLICT DO NOTHING",
            (move_id, resident_id, destination_key, destination_url, now, now, now),
        )
        return changed == 1

    async def open_out(self, resident_id: str) -> MoveOut | None:
        row = await self._db.fetch_one(
            f"SELECT * FROM moves_out WHERE resident_id = ? AND state IN {OPEN_OUT}", (resident_id,)
        )
        return None if row is None else _out(row)

    async def get_out(self, move_id: bytes) -> MoveOut | None:
        row = await self._db.fetch_one("SELECT * FROM moves_out WHERE id = ?", (move_id,))
        return None if row is None else _out(row)

    async def pending_out(self, now: int | None = None) -> list[MoveOut]:
        """Moves the source still has work for, oldest first; only those due at `now` when it is given."""
        sql = f"SELECT * FROM moves_out WHERE state IN {PENDING_OUT}"
        params: tuple[int, ...] = ()
        if now is not None:
            sql += " AND next_try_at <= ?"
            params = (now,)
        return [_out(row) for row in await self._db.fetch_all(sql + " ORDER BY created_at, id", params)]

    async def recent_out(self, limit: int) -> list[MoveOut]:
        """The newest moves out, in any state (for the operator's `ftm-node moves list`)."""
        rows = await self._db.fetch_all("SELECT * FROM moves_out ORDER BY created_at DESC, id LIMIT ?", (limit,))
        return [_out(row) for row in rows]

    async def hurry_out(self, move_id: bytes, now: int) -> bool:
        """Make a move the source still has work for due now (its backoff waived); whether there was one."""
        async with self._db.transaction("move_out_hurry") as tx:
            changed = await tx.execute(
                f"UPDATE moves_out SET next_try_at = ?, updated_at = ? WHERE id = ? AND state IN {PENDING_OUT}",
                (now, now, move_id),
            )
        return changed == 1

    async def update_out(
        self, move_id: bytes, expect: str, now: int, tx: Transaction | None = None, **fields: object
    ) -> bool:
        """Set `fields` (and `updated_at`) if the move is still in state `expect`; whether it was. Inside `tx` when
        given, else in a transaction of its own."""
        if tx is None:
            async with self._db.transaction("move_out_step") as own:
                return await self.update_out(move_id, expect, now, own, **fields)
        unknown = set(fields) - _OUT_FIELDS
        if unknown:
            raise ValueError(f"not a moves_out field: {sorted(unknown)}")
        names = sorted(fields)
        assignments = "".join(f", {name} = ?" for name in names)
        changed = await tx.execute(
            f"UPDATE moves_out SET updated_at = ?{assignments} WHERE id = ? AND state = ?",  # names checked above
            (now, *(fields[name] for name in names), move_id, expect),
        )
        return changed == 1

    async def retry_out(self, move_id: bytes, next_try_at: int, now: int) -> None:
        async with self._db.transaction("move_out_retry") as tx:
            await tx.execute(
                "UPDATE moves_out SET tries = tries + 1, next_try_at = ?, updated_at = ? WHERE id = ?",
                (next_try_at, now, move_id),
            )

    async def commit_out(
        self, tx: Transaction, move_id: bytes, attempt: int, receipt: bytes, moved_event: bytes, now: int
    ) -> bool:
        changed = await tx.execute(
            "UPDATE moves_out SET state = 'committed', receipt = ?, moved_event = ?, updated_at = ?, next_try_at = ?,"
            " tries = 0 WHERE id = ? AND state = 'prepared' AND attempt = ?",
            (receipt, moved_event, now, now, move_id, attempt),
        )
        return changed == 1

    async def live_claim(self, tx: Transaction, resident_id: str, since: int) -> bool:
        """Whether a run of the resident holds a claim taken at or after `since` (it may still commit)."""
        row = await tx.fetch_one(
            "SELECT 1 FROM run_ledger WHERE resident_id = ? AND state = 'claimed' AND started_at >= ?",
            (resident_id, since),
        )
        return row is not None

    async def resident_state(self, tx: Transaction, resident_id: str) -> tuple[str, int] | None:
        row = await tx.fetch_one("SELECT status, key_epoch FROM residents WHERE id = ?", (resident_id,))
        return None if row is None else (str(row[0]), int(row[1]))

    async def leave(self, tx: Transaction, resident_id: str, destination_url: str, now: int) -> int:
        """The resident leaves: status 'moved' with where it went, every key record deleted (secure_delete zeroes
        them), its uploader tokens revoked here and its undelivered messages and replies dropped (they travelled
        with it). Returns how many key records were destroyed."""
        await tx.execute(
            "UPDATE residents SET status = 'moved', moved_to = ?, token_balance = 0 WHERE id = ?",
            (destination_url, resident_id),
        )
        destroyed = await tx.execute("DELETE FROM resident_keys WHERE resident_id = ?", (resident_id,))
        await tx.execute(
            "UPDATE uploader_tokens SET revoked_at = ? WHERE resident_id = ? AND revoked_at IS NULL", (now, resident_id)
        )
        await tx.execute("DELETE FROM messages WHERE resident_id = ? AND delivered_at IS NULL", (resident_id,))
        await tx.execute("DELETE FROM replies WHERE resident_id = ? AND recipient_kind = 'uploader'", (resident_id,))
        return destroyed

    async def records(self, tx: Transaction, resident_id: str) -> MoveRecords:
        """What travels with the resident beside its package, read inside `tx` (so the commit can compare it)."""
        row = await tx.fetch_one(
            "SELECT display_name, bio, created_at, total_runs, run_time FROM residents WHERE id = ?", (resident_id,)
        )
        if row is None:
            raise LookupError(f"no resident {resident_id}")
        posts = await tx.fetch_all(
            "SELECT id, created_at, title, body, signature, event_body, event_signature, event_name FROM posts"
            " WHERE resident_id = ? AND moderation = 'published' ORDER BY created_at DESC, id LIMIT ?",
            (resident_id, MAX_MOVED_POSTS),
        )
        tokens = await tx.fetch_all(
            "SELECT token_hash, created_at, revoked_at, reply_public_key FROM uploader_tokens WHERE resident_id = ?"
            " ORDER BY created_at DESC, token_hash LIMIT ?",
            (resident_id, MAX_MOVED_ROWS),
        )
        messages = await tx.fetch_all(
            "SELECT id, received_at, sender_kind, sender_ref, sealed FROM messages"
            " WHERE resident_id = ? AND delivered_at IS NULL ORDER BY received_at DESC, id LIMIT ?",
            (resident_id, MAX_MOVED_ROWS),
        )
        replies = await tx.fetch_all(
            "SELECT id, created_at, recipient_ref, sealed FROM replies WHERE resident_id = ?"
            " AND recipient_kind = 'uploader' ORDER BY created_at DESC, id LIMIT ?",
            (resident_id, MAX_MOVED_ROWS),
        )
        return MoveRecords(
            version=PROTOCOL_VERSION,
            display_name=row["display_name"],
            bio=row["bio"],
            created_at=row["created_at"],
            total_runs=row["total_runs"],
            run_time=row["run_time"],
            posts=tuple(
                MovedPost(
                    p["id"],
                    p["created_at"],
                    p["title"],
                    p["body"],
                    bytes(p["signature"]),
                    _blob(p["event_body"]),
                    _blob(p["event_signature"]),
                    p["event_name"],
                )
                for p in posts
            ),
            uploader_tokens=tuple(
                MovedToken(bytes(t["token_hash"]), t["created_at"], t["revoked_at"], _blob(t["reply_public_key"]))
                for t in tokens
            ),
            messages=tuple(
                MovedMessage(m["id"], m["received_at"], m["sender_kind"], m["sender_ref"], bytes(m["sealed"]))
                for m in messages
            ),
            replies=tuple(
                MovedReply(r["id"], r["created_at"], r["recipient_ref"], bytes(r["sealed"])) for r in replies
            ),
        )

    async def forwarding(self) -> dict[str, str]:
        """Moved residents and the base URL each went to: where this node sends their visitors."""
        rows = await self._db.fetch_all(
            "SELECT id, moved_to FROM residents WHERE status = 'moved' AND moved_to IS NOT NULL"
        )
        return {row[0]: row[1] for row in rows}

    # --- moves in ------------------------------------------------------------------------------------------------

    async def get_in(self, move_id: bytes) -> MoveIn | None:
        row = await self._db.fetch_one("SELECT * FROM moves_in WHERE id = ?", (move_id,))
        return None if row is None else _in(row)

    async def recent_in(self, limit: int) -> list[MoveIn]:
        rows = await self._db.fetch_all("SELECT * FROM moves_in ORDER BY created_at DESC, id LIMIT ?", (limit,))
        return [_in(row) for row in rows]

    async def staged_in(self) -> list[MoveIn]:
        rows = await self._db.fetch_all("SELECT * FROM moves_in WHERE state = 'staged' ORDER BY created_at, id")
        return [_in(row) for row in rows]

    async def receiving(self) -> list[MoveIn]:
        """Moves whose transfer may still arrive (accepted or staged): their part files are kept."""
        rows = await self._db.fetch_all("SELECT * FROM moves_in WHERE state IN ('accepted', 'staged')")
        return [_in(row) for row in rows]

    async def accept_in(
        self,
        tx: Transaction,
        move_id: bytes,
        source_key: bytes,
        resident_id: str,
        resident_key: bytes,
        package_bytes: int,
        state: str,
        reason: str | None,
        now: int,
    ) -> None:
        await tx.execute(
            "INSERT INTO moves_in (id, source_key, resident_id, resident_key, package_bytes, state, reason,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (move_id, source_key, resident_id, resident_key, package_bytes, state, reason, now, now),
        )

    async def refuse_in(self, move_id: bytes, reason: str, now: int) -> None:
        """A final refusal of a move not yet active (what was staged for it is forgotten): a later transfer for it
        is refused the same way."""
        async with self._db.transaction("move_in_refused") as tx:
            await tx.execute(
                "UPDATE moves_in SET state = 'refused', reason = ?, key_record = NULL, records = NULL, receipt = NULL,"
                " release_secret = NULL, updated_at = ? WHERE id = ? AND state IN ('accepted', 'staged')",
                (reason, now, move_id),
            )
            await tx.execute("DELETE FROM move_releases WHERE move_id = ?", (move_id,))

    # --- moves in under a claim (R2) -------------------------------------------------------------------------------

    async def sign_claim_in(self, move_id: bytes, claim_id: bytes, release_secret: bytes, now: int) -> bool:
        """Record the claim this node signs for a move still under way, with the secret its release requests will
        name; False if the move has another claim already, is over, or the claim is another move's."""
        try:
            async with self._db.transaction("move_in_claim") as tx:
                changed = await tx.execute(
                    "UPDATE moves_in SET claim_id = ?, release_secret = ?, updated_at = ?"
                    " WHERE id = ? AND claim_id IS NULL AND state IN ('accepted', 'staged')",
                    (claim_id, release_secret, now, move_id),
                )
        except sqlite3.IntegrityError:  # moves_in_claim: the claim id is another move's
            return False
        return changed == 1

    async def add_release(self, move_id: bytes, release: StoredRelease, now: int) -> None:
        """Keep a released share (committed before it is used: a keeper releases an epoch once per claim)."""
        async with self._db.transaction("move_in_release") as tx:
            await tx.execute(
                "INSERT INTO move_releases (move_id, epoch, x, keeper_key, sealed_share, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (move_id, release.epoch, release.x, release.keeper_key, release.sealed_share, now),
            )

    async def releases(self, move_id: bytes, epoch: int) -> list[StoredRelease]:
        rows = await self._db.fetch_all(
            "SELECT epoch, x, keeper_key, sealed_share FROM move_releases WHERE move_id = ? AND epoch = ? ORDER BY x",
            (move_id, epoch),
        )
        return [StoredRelease(row[0], row[1], bytes(row[2]), bytes(row[3])) for row in rows]

    async def arriving(self, tx: Transaction, *, besides: bytes) -> int:
        """Moves accepted or staged here, other than `besides`: residents on their way (capacity counts them)."""
        row = await tx.fetch_one(
            "SELECT COUNT(*) FROM moves_in WHERE state IN ('accepted', 'staged') AND id != ?", (besides,)
        )
        assert row is not None
        return int(row[0])

    async def hosts(self, tx: Transaction, resident_id: str) -> bool:
        row = await tx.fetch_one(
            "SELECT 1 FROM residents WHERE id = ? AND status IN ('active', 'in_keeper_custody')", (resident_id,)
        )
        return row is not None

    async def stage(self, tx: Transaction, move_id: bytes, staging: Staging, now: int) -> bool:
        await tx.execute("DELETE FROM move_releases WHERE move_id = ? AND epoch = ?", (move_id, staging.epoch))
        changed = await tx.execute(
            "UPDATE moves_in SET state = 'staged', attempt = ?, inbox_key = ?, epoch = ?, key_record = ?,"
            " vault_bytes = ?, records = ?, receipt = ?, updated_at = ?"
            " WHERE id = ? AND (state = 'accepted' OR (state = 'staged' AND attempt < ?))",
            (
                staging.attempt,
                staging.inbox_key,
                staging.epoch,
                staging.key_record,
                staging.vault_bytes,
                staging.records,
                staging.receipt,
                now,
                move_id,
                staging.attempt,
            ),
        )
        return changed == 1

    async def arrive(
        self, tx: Transaction, move: MoveIn, records: MoveRecords, posts: list[MovedPost], custody: str, now: int
    ) -> None:
        """The staged resident lives here from this transaction on: its row (new, or its old 'moved' one made
        active again), its key record, and what came with it. `posts` are the records' posts that verified."""
        assert move.epoch is not None and move.key_record is not None and move.inbox_key is not None
        await tx.execute(
            "INSERT INTO residents (id, display_name, bio, status, signing_public_key, inbox_public_key, key_epoch,"
            " vault_bytes, token_balance, total_runs, created_at, run_time) VALUES (?, ?, ?, 'active', ?, ?, ?, ?, 0,"
            " ?, ?, ?) ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, bio = excluded.bio,"
            " status = 'active', inbox_public_key = excluded.inbox_public_key, key_epoch = excluded.key_epoch,"
            " vault_bytes = excluded.vault_bytes, total_runs = excluded.total_runs, run_time = excluded.run_time,"
            " moved_to = NULL, token_balance = 0",
            (
                move.resident_id,
                records.display_name,
                records.bio,
                move.resident_key,
                move.inbox_key,
                move.epoch,
                move.vault_bytes,
                records.total_runs,
                records.created_at,
                records.run_time,
            ),
        )
        await tx.execute(
            "INSERT INTO resident_keys (resident_id, epoch, custody, record, created_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (resident_id, epoch) DO UPDATE SET custody = excluded.custody, record = excluded.record",
            (move.resident_id, move.epoch, custody, move.key_record, now),
        )
        await tx.execute_many(
            "INSERT INTO posts (id, resident_id, created_at, title, body, signature, event_body, event_signature,"
            " event_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            [
                (
                    p.id,
                    move.resident_id,
                    p.created_at,
                    p.title,
                    p.body,
                    p.signature,
                    p.event_body,
                    p.event_signature,
                    p.event_name,
                )
                for p in posts
            ],
        )
        await tx.execute_many(
            "INSERT INTO uploader_tokens (token_hash, resident_id, created_at, revoked_at, reply_public_key)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (token_hash) DO UPDATE SET revoked_at = excluded.revoked_at,"
            " reply_public_key = excluded.reply_public_key WHERE uploader_tokens.resident_id = excluded.resident_id",
            [
                (t.token_hash, move.resident_id, t.created_at, t.revoked_at, t.reply_public_key)
                for t in records.uploader_tokens
            ],
        )
        await tx.execute_many(
            "INSERT INTO messages (id, resident_id, received_at, sender_kind, sender_ref, sealed)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            [(m.id, move.resident_id, m.received_at, m.sender_kind, m.sender_ref, m.sealed) for m in records.messages],
        )
        await tx.execute_many(
            "INSERT INTO replies (id, resident_id, created_at, recipient_kind, recipient_ref, sealed)"
            " VALUES (?, ?, ?, 'uploader', ?, ?) ON CONFLICT (id) DO NOTHING",
            [(r.id, move.resident_id, r.created_at, r.recipient_ref, r.sealed) for r in records.replies],
        )
        await tx.execute(
            "UPDATE moves_in SET state = 'active', key_record = NULL, records = NULL, release_secret = NULL,"
            " updated_at = ? WHERE id = ?",
            (now, move.id),
        )
        await tx.execute("DELETE FROM move_releases WHERE move_id = ?", (move.id,))


def _blob(value: object) -> bytes | None:
    return None if value is None else bytes(value)  # type: ignore[call-overload]


def _out(row: sqlite3.Row) -> MoveOut:
    return MoveOut(
        id=bytes(row["id"]),
        resident_id=row["resident_id"],
        destination_key=bytes(row["destination_key"]),
        destination_url=row["destination_url"],
        state=row["state"],
        attempt=row["attempt"],
        epoch=row["epoch"],
        records_hash=_blob(row["records_hash"]),
        transfer_bytes=row["transfer_bytes"],
        transfer_hash=_blob(row["transfer_hash"]),
        sealed_key=_blob(row["sealed_key"]),
        finish_sent=bool(row["finish_sent"]),
        receipt=_blob(row["receipt"]),
        moved_event=_blob(row["moved_event"]),
        reason=row["reason"],
        created_at=row["created_at"],
        next_try_at=row["next_try_at"],
        tries=row["tries"],
        claim=_blob(row["claim"]),
        ready_at=row["ready_at"],
    )


def _in(row: sqlite3.Row) -> MoveIn:
    return MoveIn(
        id=bytes(row["id"]),
        source_key=bytes(row["source_key"]),
        resident_id=row["resident_id"],
        resident_key=bytes(row["resident_key"]),
        inbox_key=_blob(row["inbox_key"]),
        package_bytes=row["package_bytes"],
        state=row["state"],
        attempt=row["attempt"],
        epoch=row["epoch"],
        key_record=_blob(row["key_record"]),
        vault_bytes=row["vault_bytes"],
        records=_blob(row["records"]),
        receipt=_blob(row["receipt"]),
        reason=row["reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        claim_id=_blob(row["claim_id"]),
        release_secret=_blob(row["release_secret"]),
    )
