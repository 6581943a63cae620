"""The keeper's SQL: hosts, deposits, releases, claims, tombstones and challenges (migration 0001).

Reads take a `Queries` (the `Database`'s reader, or a `Transaction`), so that an operation can read the facts it
decides on inside the write transaction that records the decision: two requests can then never both see an epoch
as not yet released. Writes take the `Transaction` they belong to. Nothing here decides anything.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Protocol

from ftm.federation.database import Database, Migration, Params, Transaction, load_migrations

KEY_BYTES = 32
LIVE_STATES = ("deposited", "held", "committed")
# Only live deposits name guardians who count; the condition is the partial index `deposits_live`'s, word for word,
# so that SQLite reads that index and not the whole table.
STRANGER_GUARDIANS_SQL = (
    "SELECT DISTINCT guardians FROM deposits INDEXED BY deposits_live"
    " WHERE state IN ('deposited', 'held', 'committed') AND instr(guardians, ?) > 0"
)


class Queries(Protocol):
    async def fetch_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None: ...

    async def fetch_all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]: ...


def keeper_migrations() -> list[Migration]:
    return load_migrations("ftm.keeper")


def split_keys(joined: bytes) -> tuple[bytes, ...]:
    return tuple(joined[i : i + KEY_BYTES] for i in range(0, len(joined), KEY_BYTES))


@dataclass(frozen=True, slots=True)
class HostRecord:
    key: bytes
    url: str
    keeper_id: str
    enrolled_at: int
    last_heard: int
    refusals: int


@dataclass(frozen=True, slots=True)
class DepositRecord:
    host_key: bytes
    resident_id: str
    epoch: int
    resident_key: bytes
    threshold: int
    x: int
    commitments: bytes
    sealed_share: bytes
    window_start: int
    window_length: int
    guardians: tuple[bytes, ...]
    guardian_threshold: int
    length: int
    root: bytes
    state: str
    destroy_reason: str
    deposited_at: int
    held_at: int | None
    committed_at: int | None
    destroyed_at: int | None


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    claim_id: bytes
    resident_id: str
    kind: str
    host_key: bytes
    counterpart_key: bytes
    counterpart_url: str
    guardian_signers: tuple[bytes, ...]
    opened_at: int
    release_after: int
    state: str
    vetoed_by: bytes | None
    closed_at: int | None


@dataclass(frozen=True, slots=True)
class ChallengeRecord:
    host_key: bytes
    resident_id: str
    epoch: int
    outcome: str
    leaf: int | None
    at: int


def _host(row: sqlite3.Row) -> HostRecord:
    return HostRecord(
        bytes(row["key"]), row["url"], row["keeper_id"], row["enrolled_at"], row["last_heard"], row["refusals"]
    )


def _deposit(row: sqlite3.Row) -> DepositRecord:
    return DepositRecord(
        host_key=bytes(row["host_key"]),
        resident_id=row["resident_id"],
        epoch=row["epoch"],
        resident_key=bytes(row["resident_key"]),
        threshold=row["threshold"],
        x=row["x"],
        commitments=bytes(row["commitments"]),
        sealed_share=bytes(row["sealed_share"]),
        window_start=row["window_start"],
        window_length=row["window_length"],
        guardians=split_keys(bytes(row["guardians"])),
        guardian_threshold=row["guardian_threshold"],
        length=row["length"],
        root=bytes(row["root"]),
        state=row["state"],
        destroy_reason=row["destroy_reason"],
        deposited_at=row["deposited_at"],
        held_at=row["held_at"],
        committed_at=row["committed_at"],
        destroyed_at=row["destroyed_at"],
    )


def _claim(row: sqlite3.Row) -> ClaimRecord:
    return ClaimRecord(
        claim_id=bytes(row["claim_id"]),
        resident_id=row["resident_id"],
        kind=row["kind"],
        host_key=bytes(row["host_key"]),
        counterpart_key=bytes(row["counterpart_key"]),
        counterpart_url=row["counterpart_url"],
        guardian_signers=split_keys(bytes(row["guardian_signers"])),
        opened_at=row["opened_at"],
        release_after=row["release_after"],
        state=row["state"],
        vetoed_by=None if row["vetoed_by"] is None else bytes(row["vetoed_by"]),
        closed_at=row["closed_at"],
    )


class KeeperStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- hosts ---------------------------------------------------------------------------------------------------

    async def host(self, q: Queries, key: bytes) -> HostRecord | None:
        row = await q.fetch_one("SELECT * FROM hosts WHERE key = ?", (key,))
        return None if row is None else _host(row)

    async def hosts(self) -> list[HostRecord]:
        return [_host(row) for row in await self.db.fetch_all("SELECT * FROM hosts ORDER BY enrolled_at, key")]

    async def add_host(self, tx: Transaction, key: bytes, url: str, keeper_id: str, now: int) -> bool:
        """Pin a host, or update its URL and registration; True if it is new."""
        changed = await tx.execute(
            "UPDATE hosts SET url = ?, keeper_id = CASE WHEN ? = '' THEN keeper_id ELSE ? END WHERE key = ?",
            (url, keeper_id, keeper_id, key),
        )
        if changed:
            return False
        await tx.execute(
            "INSERT INTO hosts (key, url, keeper_id, enrolled_at, last_heard) VALUES (?, ?, ?, ?, ?)",
            (key, url, keeper_id, now, now),
        )
        return True

    async def knows(self, q: Queries, key: bytes) -> bool:
        """Whether `key` is a host, a guardian named in a live deposit here, the counterpart of a claim (a move's
        destination, a disaster's new host) or a requester something was released to: anyone else is a stranger.
        Every lookup reads an index (keeper migration 0002): it runs before a stranger's rate limit answers."""
        row = await q.fetch_one(
            "SELECT EXISTS (SELECT 1 FROM hosts WHERE key = ?1)"
            " OR EXISTS (SELECT 1 FROM claims WHERE counterpart_key = ?1)"
            " OR EXISTS (SELECT 1 FROM releases WHERE requester_key = ?1) AS known",
            (key,),
        )
        if row is not None and row["known"]:
            return True
        # Guardians are stored concatenated: a byte match must also fall on a key boundary.
        rows = await q.fetch_all(STRANGER_GUARDIANS_SQL, (key,))
        return any(key in split_keys(bytes(r["guardians"])) for r in rows)

    async def touch_host(self, tx: Transaction, key: bytes, now: int) -> None:
        await tx.execute("UPDATE hosts SET last_heard = MAX(last_heard, ?) WHERE key = ?", (now, key))

    async def count_refusal(self, tx: Transaction, key: bytes) -> None:
        await tx.execute("UPDATE hosts SET refusals = refusals + 1 WHERE key = ?", (key,))

    async def take_refusals(self, tx: Transaction, key: bytes) -> int:
        row = await tx.fetch_one("SELECT refusals FROM hosts WHERE key = ?", (key,))
        if row is None or not row["refusals"]:
            return 0
        await tx.execute("UPDATE hosts SET refusals = 0 WHERE key = ?", (key,))
        return int(row["refusals"])

    # --- deposits ------------------------------------------------------------------------------------------------

    async def deposit(self, q: Queries, host_key: bytes, resident_id: str, epoch: int) -> DepositRecord | None:
        row = await q.fetch_one(
            "SELECT * FROM deposits WHERE host_key = ? AND resident_id = ? AND epoch = ?",
            (host_key, resident_id, epoch),
        )
        return None if row is None else _deposit(row)

    async def latest_deposit(self, q: Queries, resident_id: str) -> DepositRecord | None:
        """The resident's most recent deposit: whose facts (host, window, guardians) the policy applies."""
        row = await q.fetch_one(
            "SELECT * FROM deposits WHERE resident_id = ? ORDER BY deposited_at DESC, rowid DESC LIMIT 1",
            (resident_id,),
        )
        return None if row is None else _deposit(row)

    async def deposits_of(self, q: Queries, resident_id: str) -> list[DepositRecord]:
        rows = await q.fetch_all("SELECT * FROM deposits WHERE resident_id = ? ORDER BY epoch", (resident_id,))
        return [_deposit(row) for row in rows]

    async def all_deposits(self) -> list[DepositRecord]:
        rows = await self.db.fetch_all("SELECT * FROM deposits ORDER BY host_key, resident_id, epoch")
        return [_deposit(row) for row in rows]

    async def holdings(self, host_key: bytes, limit: int) -> list[DepositRecord]:
        rows = await self.db.fetch_all(
            "SELECT * FROM deposits WHERE host_key = ? ORDER BY resident_id, epoch LIMIT ?", (host_key, limit)
        )
        return [_deposit(row) for row in rows]

    async def live_residents(self, q: Queries) -> int:
        placeholders = ", ".join("?" for _ in LIVE_STATES)
        sql = f"SELECT COUNT(DISTINCT resident_id) FROM deposits WHERE state IN ({placeholders})"
        row = await q.fetch_one(sql, LIVE_STATES)
        return int(row[0]) if row is not None else 0

    async def holds_resident(self, q: Queries, resident_id: str) -> bool:
        placeholders = ", ".join("?" for _ in LIVE_STATES)
        sql = f"SELECT 1 FROM deposits WHERE resident_id = ? AND state IN ({placeholders}) LIMIT 1"
        return await q.fetch_one(sql, (resident_id, *LIVE_STATES)) is not None

    async def insert_deposit(self, tx: Transaction, record: DepositRecord) -> None:
        await tx.execute(
            "INSERT INTO deposits (host_key, resident_id, epoch, resident_key, threshold, x, commitments,"
            " sealed_share, window_start, window_length, guardians, guardian_threshold, length, root, state,"
            " deposited_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'deposited', ?)",
            (
                record.host_key,
                record.resident_id,
                record.epoch,
                record.resident_key,
                record.threshold,
                record.x,
                record.commitments,
                record.sealed_share,
                record.window_start,
                record.window_length,
                b"".join(record.guardians),
                record.guardian_threshold,
                record.length,
                record.root,
                record.deposited_at,
            ),
        )

    async def mark_held(self, tx: Transaction, record: DepositRecord, now: int) -> None:
        await self._set_state(tx, record, "held", "held_at", now)

    async def mark_committed(self, tx: Transaction, record: DepositRecord, now: int) -> None:
        await self._set_state(tx, record, "committed", "committed_at", now)

    async def _set_state(self, tx: Transaction, record: DepositRecord, state: str, column: str, now: int) -> None:
        await tx.execute(
            f"UPDATE deposits SET state = ?, {column} = ? WHERE host_key = ? AND resident_id = ? AND epoch = ?",
            (state, now, record.host_key, record.resident_id, record.epoch),
        )

    async def mark_destroyed(self, tx: Transaction, record: DepositRecord, reason: str, now: int) -> None:
        """The share and commitments are wiped: nothing of the epoch's secret remains, even sealed."""
        await tx.execute(
            "UPDATE deposits SET state = 'destroyed', destroy_reason = ?, destroyed_at = ?, sealed_share = X'',"
            " commitments = X'' WHERE host_key = ? AND resident_id = ? AND epoch = ?",
            (reason, now, record.host_key, record.resident_id, record.epoch),
        )

    # --- releases ------------------------------------------------------------------------------------------------

    async def grants(self, q: Queries, host_key: bytes, resident_id: str, epoch: int) -> list[tuple[str, bytes, bytes]]:
        """The grants an epoch was released under: (purpose, claim id, the ephemeral key its share was sealed to)."""
        rows = await q.fetch_all(
            "SELECT purpose, claim_id, ephemeral_key FROM releases"
            " WHERE host_key = ? AND resident_id = ? AND epoch = ?",
            (host_key, resident_id, epoch),
        )
        return [(row["purpose"], bytes(row["claim_id"]), bytes(row["ephemeral_key"])) for row in rows]

    async def record_release(
        self,
        tx: Transaction,
        record: DepositRecord,
        purpose: str,
        claim_id: bytes,
        ephemeral_key: bytes,
        requester_key: bytes,
        now: int,
    ) -> None:
        """Record a grant; a second one for the same epoch, purpose and claim violates the table's UNIQUE key."""
        await tx.execute(
            "INSERT INTO releases (host_key, resident_id, epoch, purpose, claim_id, ephemeral_key, requester_key, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (record.host_key, record.resident_id, record.epoch, purpose, claim_id, ephemeral_key, requester_key, now),
        )

    async def released_to(self, q: Queries, resident_id: str, epoch: int, requester_key: bytes) -> bytes | None:
        """The host whose epoch was released to `requester_key`, if it was."""
        row = await q.fetch_one(
            "SELECT host_key FROM releases WHERE resident_id = ? AND epoch = ? AND requester_key = ? LIMIT 1",
            (resident_id, epoch, requester_key),
        )
        return None if row is None else bytes(row["host_key"])

    # --- claims --------------------------------------------------------------------------------------------------

    async def claims_of(self, q: Queries, resident_id: str, kind: str) -> list[ClaimRecord]:
        """The resident's claims of one kind, oldest first (the order the policy reads them in)."""
        rows = await q.fetch_all(
            "SELECT * FROM claims WHERE resident_id = ? AND kind = ? ORDER BY opened_at, rowid", (resident_id, kind)
        )
        return [_claim(row) for row in rows]

    async def claims_with_id(self, q: Queries, claim_id: bytes) -> list[ClaimRecord]:
        rows = await q.fetch_all("SELECT * FROM claims WHERE claim_id = ? ORDER BY resident_id", (claim_id,))
        return [_claim(row) for row in rows]

    async def open_claim(self, tx: Transaction, claim: ClaimRecord, body: bytes, signatures: bytes) -> None:
        await tx.execute(
            "INSERT OR IGNORE INTO claims (claim_id, resident_id, kind, body, signatures, host_key, counterpart_key,"
            " counterpart_url, guardian_signers, opened_at, release_after, state)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')",
            (
                claim.claim_id,
                claim.resident_id,
                claim.kind,
                body,
                signatures,
                claim.host_key,
                claim.counterpart_key,
                claim.counterpart_url,
                b"".join(claim.guardian_signers),
                claim.opened_at,
                claim.release_after,
            ),
        )

    async def veto_claim(self, tx: Transaction, claim_id: bytes, resident_id: str, signer: bytes, now: int) -> None:
        await tx.execute(
            "UPDATE claims SET state = 'vetoed', vetoed_by = ?, closed_at = ? WHERE claim_id = ? AND resident_id = ?",
            (signer, now, claim_id, resident_id),
        )

    async def cancel_disasters(self, tx: Transaction, host_key: bytes, now: int) -> list[tuple[bytes, str]]:
        """Mark the open disaster claims against `host_key` cancelled (the host was heard from); returns them as
        (claim id, resident id). The policy reaches the same answer from the host's last contact alone."""
        rows = await tx.fetch_all(
            "SELECT claim_id, resident_id FROM claims WHERE kind = 'disaster' AND state = 'open' AND host_key = ?"
            " AND opened_at <= ?",
            (host_key, now),
        )
        if rows:
            await tx.execute(
                "UPDATE claims SET state = 'cancelled', closed_at = ? WHERE kind = 'disaster' AND state = 'open'"
                " AND host_key = ? AND opened_at <= ?",
                (now, host_key, now),
            )
        return [(bytes(row["claim_id"]), row["resident_id"]) for row in rows]

    async def disasters_opened_since(self, q: Queries, host_key: bytes, since: int) -> bool:
        row = await q.fetch_one(
            "SELECT 1 FROM claims WHERE kind = 'disaster' AND state = 'open' AND host_key = ? AND opened_at >= ?"
            " LIMIT 1",
            (host_key, since),
        )
        return row is not None

    # --- tombstones ----------------------------------------------------------------------------------------------

    async def is_tombstoned(self, q: Queries, resident_id: str) -> bool:
        return await self.tombstoned_at(q, resident_id) is not None

    async def tombstoned_at(self, q: Queries, resident_id: str) -> int | None:
        row = await q.fetch_one("SELECT at FROM tombstones WHERE resident_id = ?", (resident_id,))
        return None if row is None else int(row["at"])

    async def add_tombstone(
        self, tx: Transaction, resident_id: str, resident_key: bytes, event_id: bytes, now: int
    ) -> None:
        await tx.execute(
            "INSERT OR IGNORE INTO tombstones (resident_id, resident_key, event_id, at) VALUES (?, ?, ?, ?)",
            (resident_id, resident_key, event_id, now),
        )

    # --- challenges ----------------------------------------------------------------------------------------------

    async def record_challenge(
        self,
        tx: Transaction,
        record: DepositRecord,
        nonce: bytes,
        samples: int,
        outcome: str,
        leaf: int | None,
        now: int,
    ) -> None:
        await tx.execute(
            "INSERT INTO challenges (host_key, resident_id, epoch, nonce, samples, outcome, leaf, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (record.host_key, record.resident_id, record.epoch, nonce, samples, outcome, leaf, now),
        )

    async def last_challenges(self) -> list[ChallengeRecord]:
        """The latest challenge of each epoch ever challenged."""
        rows = await self.db.fetch_all(
            "SELECT c.host_key, c.resident_id, c.epoch, c.outcome, c.leaf, c.at FROM challenges c"
            " WHERE c.id = (SELECT MAX(id) FROM challenges d WHERE d.host_key = c.host_key"
            " AND d.resident_id = c.resident_id AND d.epoch = c.epoch)"
        )
        return [
            ChallengeRecord(bytes(r["host_key"]), r["resident_id"], r["epoch"], r["outcome"], r["leaf"], r["at"])
            for r in rows
        ]
