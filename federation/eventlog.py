"""An event log: append-only, hash-chained and signed by its owner (a node, or a keeper), holding ids and numbers
only. Each owner keeps one in its own database, in a table named `event_log` (node schema 1; keeper schema 1).

Each entry's hash covers its sequence number, time, kind, subject, data and the previous entry's hash, and the
node signs that hash; anyone with the node's public key can check the whole chain (`verify_chain`). The data of
an entry is restricted by type to integers, booleans and short id-like strings, so persona content cannot be
written here even by mistake. The table itself refuses UPDATE and DELETE (triggers in the schema).
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import msgpack

from ftm.federation.clock import Clock
from ftm.federation.database import Database, Transaction
from ftm.federation.identity import BadSignature, verify

SIGNING_DOMAIN = "ftm-eventlog-v1"
GENESIS_HASH = b"\x00" * 32
_SAFE_TEXT = re.compile(r"^[A-Za-z0-9_.:+\-]{0,80}$")

LogValue = int | bool | str | None


class Signer(Protocol):
    """Whoever signs the log: `NodeIdentity`, or a keeper's `SigningKey`."""

    def sign(self, domain: str, message: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class LogEntry:
    seq: int
    at: int
    kind: str
    subject: str
    data: dict[str, LogValue]
    prev_hash: bytes
    hash: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class ChainReport:
    entries: int
    valid: bool
    first_bad_seq: int | None = None
    reason: str | None = None


def canonical_data_json(data: Mapping[str, LogValue]) -> str:
    """The exact text an entry's hash covers: JSON with sorted keys, no spaces, non-ASCII escaped."""
    return json.dumps(dict(data), sort_keys=True, separators=(",", ":"))


def entry_hash(seq: int, at: int, kind: str, subject: str, data_json: str, prev_hash: bytes) -> bytes:
    body = msgpack.packb([seq, at, kind, subject, data_json, prev_hash], use_bin_type=True)
    return hashlib.sha256(SIGNING_DOMAIN.encode() + b"\x00" + body).digest()


class EventLog:
    """Appends entries inside the caller's transaction, so an event is logged if and only if its change commits."""

    def __init__(self, identity: Signer, clock: Clock) -> None:
        self._identity = identity
        self._clock = clock

    async def append(self, tx: Transaction, kind: str, subject: str, data: Mapping[str, LogValue]) -> LogEntry:
        _check_safe("kind", kind)
        _check_safe("subject", subject)
        for key, value in data.items():
            _check_safe("data key", key)
            if isinstance(value, str):
                _check_safe(f"data value of {key}", value)
            elif value is not None and not isinstance(value, int):
                raise TypeError(f"event log value {key} must be an int, bool, id or None")
        data_json = canonical_data_json(data)
        last = await tx.fetch_one("SELECT seq, hash FROM event_log ORDER BY seq DESC LIMIT 1")
        seq, prev_hash = (1, GENESIS_HASH) if last is None else (int(last["seq"]) + 1, bytes(last["hash"]))
        at = int(self._clock.now())
        digest = entry_hash(seq, at, kind, subject, data_json, prev_hash)
        signature = self._identity.sign(SIGNING_DOMAIN, digest)
        await tx.execute(
            "INSERT INTO event_log (seq, at, kind, subject, data, prev_hash, hash, signature)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, at, kind, subject, data_json, prev_hash, digest, signature),
        )
        return LogEntry(seq, at, kind, subject, dict(data), prev_hash, digest, signature)


async def read_entries(db: Database, *, after: int = 0, limit: int = 100, kind: str | None = None) -> list[LogEntry]:
    sql = "SELECT * FROM event_log WHERE seq > ?"
    params: list[object] = [after]
    if kind is not None:
        sql += " AND kind = ?"
        params.append(kind)
    rows = await db.fetch_all(sql + " ORDER BY seq LIMIT ?", [*params, limit])
    return [_entry(row) for row in rows]


async def read_newest(db: Database, *, before: int | None = None, limit: int = 100) -> list[LogEntry]:
    """Entries newest first, those with `seq < before` when given (the transparency page's paging)."""
    if before is None:
        rows = await db.fetch_all("SELECT * FROM event_log ORDER BY seq DESC LIMIT ?", (limit,))
    else:
        rows = await db.fetch_all("SELECT * FROM event_log WHERE seq < ? ORDER BY seq DESC LIMIT ?", (before, limit))
    return [_entry(row) for row in rows]


async def last_seq(db: Database) -> int:
    """The newest entry's sequence number, 0 for an empty log."""
    return int(await db.fetch_value("SELECT COALESCE(MAX(seq), 0) FROM event_log"))


def _entry(row: sqlite3.Row) -> LogEntry:
    return LogEntry(
        seq=row["seq"],
        at=row["at"],
        kind=row["kind"],
        subject=row["subject"],
        data=json.loads(row["data"]),
        prev_hash=bytes(row["prev_hash"]),
        hash=bytes(row["hash"]),
        signature=bytes(row["signature"]),
    )


async def verify_chain(db: Database, public_key: bytes, *, batch: int = 1000) -> ChainReport:
    """Check every entry's hash, link and signature, from the first to the last."""
    prev_hash, expected_seq, count = GENESIS_HASH, 1, 0
    while True:
        rows = await db.fetch_all("SELECT * FROM event_log WHERE seq >= ? ORDER BY seq LIMIT ?", (expected_seq, batch))
        if not rows:
            return ChainReport(entries=count, valid=True)
        for row in rows:
            seq = row["seq"]
            if seq != expected_seq:
                return ChainReport(count, False, expected_seq, "an entry is missing")
            if bytes(row["prev_hash"]) != prev_hash:
                return ChainReport(count, False, seq, "does not link to the previous entry")
            digest = entry_hash(seq, row["at"], row["kind"], row["subject"], row["data"], prev_hash)
            if digest != bytes(row["hash"]):
                return ChainReport(count, False, seq, "hash does not match the entry")
            try:
                verify(public_key, SIGNING_DOMAIN, digest, bytes(row["signature"]))
            except BadSignature:
                return ChainReport(count, False, seq, "signature does not verify")
            prev_hash, expected_seq, count = digest, seq + 1, count + 1


def _check_safe(what: str, text: str) -> None:
    if not _SAFE_TEXT.match(text):
        # The message names the field, not the text: the text might be exactly what must not be logged.
        raise ValueError(f"event log {what} must be an id or number-like token")
