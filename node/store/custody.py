"""SQL for threshold custody, the host's side (migrations 0013 and 0018): enrolled keeper nodes, each resident's custody
epochs, the delivery of each epoch to each of its keepers (with the keepers' signed holdings and destruction
receipts), the public history of proofs of possession, and the ephemeral key a run asks keepers to release the
current epoch with (kept so that a retry after a crash asks with the same key). Nothing stored here opens a
resident: keepers answer only requests signed with the node's key.

The custody worker (`ftm.node.custodyworker`) drives every row from here, so each step resumes after a crash.
A committed delivery's `sent` is what the keeper is known to hold of the replica: the epoch's length, or 0 once
its copy failed a ciphertext challenge and is to be repaired (`ftm.node.custodyrepair`), until the repair seals.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from ftm.federation.database import Database, Transaction
from ftm.keeper.protocol import DepositBase

KEEPER_STATES = ("active", "suspect", "retired")
EPOCH_STATES = ("pending", "committed", "destroying", "destroyed")
DELIVERY_STATES = ("pending", "deposited", "held", "committed", "skipped", "destroyed")
HOLDING_STATES = ("held", "committed")  # a delivery whose keeper signed a Holding
DELIVERED_STATES = ("deposited", "held", "committed")  # a keeper may hold something of the epoch
_DELIVERY_FIELDS = frozenset(
    {"state", "sent", "holding", "receipt", "tries", "next_try_at", "last_error", "next_challenge_at",
     "containment", "first_failed_at"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ReplicaKeeper:
    keeper_key: bytes
    url: str
    registration_id: str
    state: str
    enrolled_at: int
    updated_at: int
    last_seen_at: int | None
    next_heartbeat_at: int
    bad_shares: int
    warned_at: int | None


@dataclass(frozen=True, slots=True)
class CustodyEpoch:
    resident_id: str
    epoch: int
    state: str
    threshold: int
    commitments: bytes
    root: bytes
    length: int
    reason: str | None
    created_at: int
    committed_at: int | None
    base: DepositBase | None = None  # the previous epoch its vault file begins like (migration 0018)


@dataclass(frozen=True, slots=True)
class Delivery:
    resident_id: str
    epoch: int
    keeper_key: bytes
    x: int
    sealed_share: bytes
    state: str
    sent: int
    holding: bytes | None
    receipt: bytes | None
    tries: int
    next_try_at: int
    last_error: str | None
    next_challenge_at: int | None
    containment: int
    first_failed_at: int | None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    keeper_key: bytes
    x: int
    sealed_share: bytes


@dataclass(frozen=True, slots=True)
class ProofRecord:
    keeper_key: bytes
    resident_id: str
    epoch: int
    at: int
    outcome: str
    reason: str | None
    try_number: int
    counted: bool


class CustodyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- keepers ------------------------------------------------------------------------------------------------

    async def enrol(self, tx: Transaction, keeper_key: bytes, url: str, registration_id: str, now: int) -> None:
        """Record (or refresh) a keeper of a registration; any other keeper of that registration is retired."""
        await tx.execute(
            "UPDATE replica_keepers SET state = 'retired', updated_at = ?"
            " WHERE registration_id = ? AND keeper_key != ? AND state != 'retired'",
            (now, registration_id, keeper_key),
        )
        await tx.execute(
            "INSERT INTO replica_keepers (keeper_key, url, registration_id, state, enrolled_at, updated_at)"
            " VALUES (?, ?, ?, 'active', ?, ?) ON CONFLICT (keeper_key) DO UPDATE SET url = excluded.url,"
            " updated_at = excluded.updated_at,"
            " state = CASE WHEN state = 'retired' THEN 'active' ELSE state END",
            (keeper_key, url, registration_id, now, now),
        )

    async def keeper(self, keeper_key: bytes) -> ReplicaKeeper | None:
        row = await self._db.fetch_one("SELECT * FROM replica_keepers WHERE keeper_key = ?", (keeper_key,))
        return None if row is None else _keeper(row)

    async def keepers(self) -> list[ReplicaKeeper]:
        rows = await self._db.fetch_all("SELECT * FROM replica_keepers ORDER BY enrolled_at, keeper_key")
        return [_keeper(row) for row in rows]

    async def dealable(self) -> list[ReplicaKeeper]:
        """Keepers that may be dealt new epochs: not retired, of a registration the operator vetted; active ones
        first, then suspect ones, fewest bad shares first within each."""
        rows = await self._db.fetch_all(
            "SELECT replica_keepers.* FROM replica_keepers JOIN keepers ON keepers.id = replica_keepers.registration_id"
            " WHERE keepers.status = 'vetted' AND replica_keepers.state IN ('active', 'suspect')"
            " ORDER BY replica_keepers.state = 'suspect', replica_keepers.bad_shares, replica_keepers.enrolled_at,"
            " replica_keepers.keeper_key"
        )
        return [_keeper(row) for row in rows]

    async def set_keeper_state(self, tx: Transaction, keeper_key: bytes, state: str, now: int) -> bool:
        if state not in KEEPER_STATES:
            raise ValueError(f"a keeper's state is one of {', '.join(KEEPER_STATES)}")
        warned = ", warned_at = ?" if state == "suspect" else ""
        params: list[object] = [state, now] + ([now] if warned else []) + [keeper_key, state]
        sql = f"UPDATE replica_keepers SET state = ?, updated_at = ?{warned} WHERE keeper_key = ? AND state != ?"
        return await tx.execute(sql, params) == 1

    async def seen(self, keeper_key: bytes, now: int) -> None:
        async with self._db.transaction("keeper_seen") as tx:
            await tx.execute("UPDATE replica_keepers SET last_seen_at = ? WHERE keeper_key = ?", (now, keeper_key))

    async def count_bad_share(self, keeper_key: bytes) -> None:
        async with self._db.transaction("keeper_bad_share") as tx:
            await tx.execute(
                "UPDATE replica_keepers SET bad_shares = bad_shares + 1 WHERE keeper_key = ?", (keeper_key,)
            )

    async def due_heartbeats(self, now: int) -> list[ReplicaKeeper]:
        rows = await self._db.fetch_all(
            "SELECT * FROM replica_keepers WHERE state != 'retired' AND next_heartbeat_at <= ? ORDER BY keeper_key",
            (now,),
        )
        return [_keeper(row) for row in rows]

    async def heartbeat_at(self, keeper_key: bytes, at: int) -> None:
        async with self._db.transaction("keeper_heartbeat") as tx:
            await tx.execute("UPDATE replica_keepers SET next_heartbeat_at = ? WHERE keeper_key = ?", (at, keeper_key))

    # --- epochs -------------------------------------------------------------------------------------------------

    async def unrecorded(self, custody: str, limit: int) -> list[tuple[str, int, bytes]]:
        """Key records of `custody` with no custody epoch yet: (resident, epoch, record), oldest first. A run, an
        intake or an arrival wrote them; the worker records their epochs here."""
        rows = await self._db.fetch_all(
            "SELECT resident_id, epoch, record FROM resident_keys WHERE custody = ? AND NOT EXISTS ("
            " SELECT 1 FROM custody_epochs WHERE custody_epochs.resident_id = resident_keys.resident_id"
            " AND custody_epochs.epoch = resident_keys.epoch) ORDER BY created_at, resident_id LIMIT ?",
            (custody, limit),
        )
        return [(row[0], int(row[1]), bytes(row[2])) for row in rows]

    async def add_epoch(
        self,
        tx: Transaction,
        epoch: CustodyEpoch,
        deliveries: Iterable[NewDelivery],
        now: int,
    ) -> bool:
        """Record an epoch and its deliveries (each pending); False if it was recorded already."""
        base = epoch.base
        added = await tx.execute(
            "INSERT OR IGNORE INTO custody_epochs (resident_id, epoch, state, threshold, commitments, root, length,"
            " base_epoch, base_root, base_prefix, created_at, updated_at)"
            " VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                epoch.resident_id, epoch.epoch, epoch.threshold, epoch.commitments, epoch.root, epoch.length,
                None if base is None else base.epoch, None if base is None else base.root,
                None if base is None else base.prefix, now, now,
            ),
        )  # fmt: skip
        if added != 1:
            return False
        await tx.execute_many(
            "INSERT INTO custody_deliveries (resident_id, epoch, keeper_key, x, sealed_share, state, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 'pending', ?)",
            [(epoch.resident_id, epoch.epoch, d.keeper_key, d.x, d.sealed_share, now) for d in deliveries],
        )
        return True

    async def epoch(self, resident_id: str, epoch: int) -> CustodyEpoch | None:
        row = await self._db.fetch_one(
            "SELECT * FROM custody_epochs WHERE resident_id = ? AND epoch = ?", (resident_id, epoch)
        )
        return None if row is None else _epoch(row)

    async def epochs_of(self, resident_id: str) -> list[CustodyEpoch]:
        rows = await self._db.fetch_all(
            "SELECT * FROM custody_epochs WHERE resident_id = ? ORDER BY epoch", (resident_id,)
        )
        return [_epoch(row) for row in rows]

    async def residents_with_work(self, limit: int) -> list[str]:
        """Residents with an epoch not yet destroyed, in a stable order."""
        rows = await self._db.fetch_all(
            "SELECT DISTINCT resident_id FROM custody_epochs WHERE state != 'destroyed' ORDER BY resident_id LIMIT ?",
            (limit,),
        )
        return [row[0] for row in rows]

    async def set_epoch_state(
        self, tx: Transaction, resident_id: str, epoch: int, was: str, state: str, now: int, reason: str | None = None
    ) -> bool:
        if state not in EPOCH_STATES:
            raise ValueError(f"an epoch's state is one of {', '.join(EPOCH_STATES)}")
        committed = ", committed_at = ?" if state == "committed" else ""
        params: list[object] = [state, now, reason] + ([now] if committed else []) + [resident_id, epoch, was]
        sql = (
            f"UPDATE custody_epochs SET state = ?, updated_at = ?, reason = coalesce(?, reason){committed}"
            " WHERE resident_id = ? AND epoch = ? AND state = ?"
        )
        return await tx.execute(sql, params) == 1

    # --- deliveries ---------------------------------------------------------------------------------------------

    async def deliveries(self, resident_id: str, epoch: int) -> list[Delivery]:
        rows = await self._db.fetch_all(
            "SELECT * FROM custody_deliveries WHERE resident_id = ? AND epoch = ? ORDER BY x", (resident_id, epoch)
        )
        return [_delivery(row) for row in rows]

    async def holdings_of(self, keeper_key: bytes) -> list[Delivery]:
        """What one keeper holds or is being given (for the transparency page: ids and states)."""
        rows = await self._db.fetch_all(
            "SELECT * FROM custody_deliveries WHERE keeper_key = ? AND state IN ('deposited', 'held', 'committed')"
            " ORDER BY resident_id, epoch",
            (keeper_key,),
        )
        return [_delivery(row) for row in rows]

    async def update_delivery(
        self, resident_id: str, epoch: int, keeper_key: bytes, now: int, tx: Transaction | None = None, **fields: object
    ) -> None:
        unknown = set(fields) - _DELIVERY_FIELDS
        if unknown:
            raise ValueError(f"not a delivery field: {sorted(unknown)[0]}")
        if "state" in fields and fields["state"] not in DELIVERY_STATES:
            raise ValueError(f"a delivery's state is one of {', '.join(DELIVERY_STATES)}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        sql = f"UPDATE custody_deliveries SET {assignments}, updated_at = ? WHERE resident_id = ? AND epoch = ?"
        sql += " AND keeper_key = ?"
        params = [*fields.values(), now, resident_id, epoch, keeper_key]
        if tx is not None:
            await tx.execute(sql, params)
            return
        async with self._db.transaction("custody_delivery") as own:
            await own.execute(sql, params)

    async def due_challenges(self, now: int, limit: int) -> list[Delivery]:
        """Committed holdings of committed epochs whose challenge (or containment retry) is due."""
        rows = await self._db.fetch_all(
            "SELECT custody_deliveries.* FROM custody_deliveries JOIN custody_epochs USING (resident_id, epoch)"
            " WHERE custody_epochs.state = 'committed' AND custody_deliveries.state = 'committed'"
            " AND custody_deliveries.next_challenge_at IS NOT NULL AND custody_deliveries.next_challenge_at <= ?"
            " ORDER BY custody_deliveries.next_challenge_at LIMIT ?",
            (now, limit),
        )
        return [_delivery(row) for row in rows]

    async def due_repairs(self, now: int | None, limit: int) -> list[Delivery]:
        """Holdings of an active resident's current, committed epoch marked for repair (`sent` below the epoch's length:
        the keeper's copy failed its challenges; `ftm.node.custodyrepair`) whose try is due (any, with None)."""
        rows = await self._db.fetch_all(
            "SELECT d.* FROM custody_deliveries AS d JOIN custody_epochs AS e USING (resident_id, epoch)"
            " JOIN residents AS r ON r.id = d.resident_id AND r.key_epoch = d.epoch AND r.status = 'active'"
            " WHERE d.state = 'committed' AND e.state = 'committed' AND d.sent < e.length"
            " AND (? IS NULL OR d.next_try_at <= ?) ORDER BY d.next_try_at, d.resident_id, d.x LIMIT ?",
            (now, now, limit),
        )
        return [_delivery(row) for row in rows]

    # --- proofs -------------------------------------------------------------------------------------------------

    async def record_proof(self, tx: Transaction, proof: ProofRecord) -> None:
        await tx.execute(
            "INSERT INTO custody_proofs (keeper_key, resident_id, epoch, at, outcome, reason, try_number, counted)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                proof.keeper_key,
                proof.resident_id,
                proof.epoch,
                proof.at,
                proof.outcome,
                proof.reason,
                proof.try_number,
                int(proof.counted),
            ),
        )

    async def counted_failures(self, tx: Transaction, keeper_key: bytes, since: int) -> int:
        row = await tx.fetch_one(
            "SELECT count(*) FROM custody_proofs WHERE keeper_key = ? AND counted = 1 AND at >= ?", (keeper_key, since)
        )
        return 0 if row is None else int(row[0])

    async def counted_reasons(self, tx: Transaction, keeper_key: bytes, resident_id: str, epoch: int) -> list[str]:
        """The reasons of every counted failure of one keeper's holding of one epoch, oldest first."""
        rows = await tx.fetch_all(
            "SELECT coalesce(reason, '') FROM custody_proofs WHERE keeper_key = ? AND resident_id = ? AND epoch = ?"
            " AND counted = 1 ORDER BY id",
            (keeper_key, resident_id, epoch),
        )
        return [row[0] for row in rows]

    async def proofs(self, keeper_key: bytes, limit: int) -> list[ProofRecord]:
        """A keeper's proof history, newest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM custody_proofs WHERE keeper_key = ? ORDER BY at DESC, id DESC LIMIT ?", (keeper_key, limit)
        )
        return [
            ProofRecord(
                bytes(row["keeper_key"]),
                row["resident_id"],
                row["epoch"],
                row["at"],
                row["outcome"],
                row["reason"],
                row["try_number"],
                bool(row["counted"]),
            )
            for row in rows
        ]

    # --- run keys -----------------------------------------------------------------------------------------------

    async def run_key(self, resident_id: str, epoch: int, fresh: bytes) -> bytes | None:
        """The ephemeral X25519 secret that runs ask keepers to release (resident, epoch) with: the one kept
        already, else `fresh`, kept now and committed before this returns. None when the epoch has no key record
        (it moved on): a kept secret never outlives its epoch's record, which it is deleted with."""
        async with self._db.transaction("custody_run_key") as tx:
            await tx.execute(
                "INSERT OR IGNORE INTO custody_run_keys (resident_id, epoch, secret) SELECT ?, ?, ?"
                " WHERE EXISTS (SELECT 1 FROM resident_keys WHERE resident_id = ? AND epoch = ?)",
                (resident_id, epoch, fresh, resident_id, epoch),
            )
            row = await tx.fetch_one(
                "SELECT secret FROM custody_run_keys WHERE resident_id = ? AND epoch = ?", (resident_id, epoch)
            )
        return None if row is None else bytes(row[0])

    # --- the node's own facts -----------------------------------------------------------------------------------

    async def active_epoch(self, resident_id: str) -> int | None:
        """The current key epoch of an active resident; None for any other resident."""
        value = await self._db.fetch_value(
            "SELECT key_epoch FROM residents WHERE id = ? AND status = 'active'", (resident_id,)
        )
        return None if value is None else int(value)

    async def rotate_key(
        self,
        tx: Transaction,
        resident_id: str,
        *,
        old_epoch: int,
        new_epoch: int,
        custody: str,
        record: bytes,
        vault_bytes: int,
        now: int,
    ) -> bool:
        """Point a resident at a new epoch without anything else changing (an opened epoch that could not run
        moves on). Deleting the old key record deletes its kept run key too (`custody_run_keys`, ON DELETE
        CASCADE). False if the resident is no longer at `old_epoch`."""
        changed = await tx.execute(
            "UPDATE residents SET key_epoch = ?, vault_bytes = ? WHERE id = ? AND key_epoch = ? AND status = 'active'",
            (new_epoch, vault_bytes, resident_id, old_epoch),
        )
        if changed != 1:
            return False
        await tx.execute(
            "INSERT INTO resident_keys (resident_id, epoch, custody, record, created_at) VALUES (?, ?, ?, ?, ?)",
            (resident_id, new_epoch, custody, record, now),
        )
        await tx.execute("DELETE FROM resident_keys WHERE resident_id = ? AND epoch = ?", (resident_id, old_epoch))
        return True


def _keeper(row: sqlite3.Row) -> ReplicaKeeper:
    return ReplicaKeeper(
        keeper_key=bytes(row["keeper_key"]),
        url=row["url"],
        registration_id=row["registration_id"],
        state=row["state"],
        enrolled_at=row["enrolled_at"],
        updated_at=row["updated_at"],
        last_seen_at=row["last_seen_at"],
        next_heartbeat_at=row["next_heartbeat_at"],
        bad_shares=row["bad_shares"],
        warned_at=row["warned_at"],
    )


def _epoch(row: sqlite3.Row) -> CustodyEpoch:
    return CustodyEpoch(
        resident_id=row["resident_id"],
        epoch=row["epoch"],
        state=row["state"],
        threshold=row["threshold"],
        commitments=bytes(row["commitments"]),
        root=bytes(row["root"]),
        length=row["length"],
        reason=row["reason"],
        created_at=row["created_at"],
        committed_at=row["committed_at"],
        base=(
            None
            if row["base_epoch"] is None
            else DepositBase(row["base_epoch"], bytes(row["base_root"]), row["base_prefix"])
        ),
    )


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(
        resident_id=row["resident_id"],
        epoch=row["epoch"],
        keeper_key=bytes(row["keeper_key"]),
        x=row["x"],
        sealed_share=bytes(row["sealed_share"]),
        state=row["state"],
        sent=row["sent"],
        holding=None if row["holding"] is None else bytes(row["holding"]),
        receipt=None if row["receipt"] is None else bytes(row["receipt"]),
        tries=row["tries"],
        next_try_at=row["next_try_at"],
        last_error=row["last_error"],
        next_challenge_at=row["next_challenge_at"],
        containment=row["containment"],
        first_failed_at=row["first_failed_at"],
    )
