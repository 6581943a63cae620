"""The peer table: every node we may talk to, its pinned key, where we learnt it, and when it last answered.

Rows live in `federation_peers` (node migration `0009_peers.sql`) and, because the table is small and bounded, in
memory too, so the questions asked on every request (is this key a verified peer? which nodes do we know?) cost
no query. Writes go to both. A row is keyed by base URL:

- a **bootstrap** URL starts without a key; the first checked hello answer from it pins the key it gave;
- a **candidate** carries a key someone claimed for a URL (peer exchange, mDNS, a node introducing itself) and is
  trusted only once a hello from that URL, signed by that key, proves it (`record_verified`);
- a **verified** row's key is pinned to its URL: a later hello there with another key raises `KeyPinned`. A key
  that proves itself at a new URL moves there (a node that changed address), keeping its history.

Bounds: at most `max_candidates` unverified rows (the least recently seen non-bootstrap one is evicted first) and
`max_peers` rows in all (then the verified peer longest without success goes). `last_success` is written at most
once a minute per peer, since it is touched by every successful request.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.discovery import check_url
from ftm.federation.gossipwire import MAX_PEER_ENTRIES, PeerEntry

log = logging.getLogger(__name__)
_COLUMNS = "url, node_key, verified, source, first_seen, last_seen, last_success, last_failure, failures"


class PeerSource(StrEnum):
    BOOTSTRAP = "bootstrap"
    EXCHANGE = "exchange"
    MDNS = "mdns"
    INBOUND = "inbound"


class KeyPinned(Exception):
    """A URL whose key is pinned answered with another key."""


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """A verified peer: whom to sign requests for, and where to send them."""

    node_key: bytes
    url: str


@dataclass(frozen=True, slots=True)
class PeerRecord:
    url: str
    node_key: bytes | None
    verified: bool
    source: PeerSource
    first_seen: int
    last_seen: int
    last_success: int | None
    last_failure: int | None
    failures: int

    @property
    def address(self) -> PeerAddress | None:
        return PeerAddress(self.node_key, self.url) if self.verified and self.node_key is not None else None


@dataclass(frozen=True, slots=True)
class PeerLimits:
    max_peers: int = 1000
    max_candidates: int = 256
    max_candidate_failures: int = 3  # a candidate that failed verification this many times in a row is dropped
    recent_seconds: int = 86400  # peers offered in exchange: those we succeeded with within this time
    success_write_interval: int = 60

    def __post_init__(self) -> None:
        if not 1 <= self.max_candidates <= self.max_peers:
            raise ValueError("PeerLimits needs 1 <= max_candidates <= max_peers")


def normalize_url(url: str) -> str:
    """A base URL as stored and compared: checked (http or https, a host, no credentials, query or fragment),
    without trailing slashes. Raises ValueError."""
    url = url.rstrip("/")
    check_url(url)
    return url


class PeerStore:
    def __init__(self, db: Database, clock: Clock, own_key: bytes, limits: PeerLimits | None = None) -> None:
        self._db = db
        self._clock = clock
        self.own_key = own_key
        self.own_url: str | None = None  # set once the node listens; never stored as a peer
        self.limits = limits or PeerLimits()
        self._rows: dict[str, PeerRecord] = {}
        self._by_key: dict[bytes, str] = {}
        self._success_written: dict[bytes, int] = {}

    @classmethod
    async def open(cls, db: Database, clock: Clock, own_key: bytes, limits: PeerLimits | None = None) -> PeerStore:
        store = cls(db, clock, own_key, limits)
        for row in await db.fetch_all(f"SELECT {_COLUMNS} FROM federation_peers"):
            store._remember(_record(row))
        return store

    async def adopt_new_rows(self) -> int:
        """Take in rows another process added (`ftm-node peers add` beside the daemon); returns how many. Rows
        already in memory are this process's to keep current, so only unknown URLs are read."""
        rows = [_record(row) for row in await self._db.fetch_all(f"SELECT {_COLUMNS} FROM federation_peers")]
        fresh = [row for row in rows if row.url not in self._rows]
        for row in fresh:
            self._remember(row)
        return len(fresh)

    # Reads (from memory).

    async def known_node_keys(self, keys: frozenset[bytes]) -> frozenset[bytes]:
        """`KnownNodes` for acceptance: our own key and every verified peer's."""
        return frozenset(key for key in keys if key == self.own_key or self.is_verified(key))

    def is_verified(self, key: bytes) -> bool:
        url = self._by_key.get(key)
        return url is not None and self._rows[url].verified

    def get(self, url: str) -> PeerRecord | None:
        return self._rows.get(url)

    def by_key(self, key: bytes) -> PeerRecord | None:
        url = self._by_key.get(key)
        return None if url is None else self._rows[url]

    def records(self) -> list[PeerRecord]:
        return list(self._rows.values())

    def verified(self) -> list[PeerAddress]:
        return [address for row in self._rows.values() if (address := row.address) is not None]

    def unverified(self, limit: int) -> list[PeerRecord]:
        """Rows to try to verify: never-failed first, then those that failed longest ago."""
        rows = [row for row in self._rows.values() if not row.verified]
        rows.sort(key=lambda row: (row.last_failure or 0, row.last_seen))
        return rows[:limit]

    def recent(self, exclude: bytes | None = None) -> tuple[PeerEntry, ...]:
        """What we offer in peer exchange: verified peers we succeeded with lately, most recent first."""
        since = self._now() - self.limits.recent_seconds
        rows = [
            row
            for row in self._rows.values()
            if row.verified and row.node_key not in (None, exclude) and (row.last_success or 0) >= since
        ]
        rows.sort(key=lambda row: row.last_success or 0, reverse=True)
        return tuple(
            PeerEntry(row.node_key, row.url, row.last_success or 0)
            for row in rows[:MAX_PEER_ENTRIES]
            if row.node_key is not None
        )

    # Writes.

    async def add_bootstrap(self, urls: Sequence[str]) -> list[str]:
        """Add bootstrap URLs not yet known; returns every bootstrap URL, normalized."""
        normalized = [normalize_url(url) for url in urls]
        now = self._now()
        fresh = [url for url in dict.fromkeys(normalized) if url not in self._rows and url != self.own_url]
        if fresh:
            rows = [PeerRecord(url, None, False, PeerSource.BOOTSTRAP, now, now, None, None, 0) for url in fresh]
            async with self._db.transaction("federation_peers_bootstrap") as tx:
                await tx.execute_many(
                    "INSERT INTO federation_peers (url, source, first_seen, last_seen) VALUES (?, ?, ?, ?)",
                    [(row.url, row.source.value, now, now) for row in rows],
                )
            for row in rows:
                self._remember(row)
        return normalized

    async def add_candidates(self, entries: Iterable[tuple[bytes, str]], source: PeerSource) -> list[PeerRecord]:
        """Store claimed (key, URL) pairs we do not know yet, as unverified; returns the rows added. A claim about
        a key or URL we already know is ignored: only the node itself can move its key (`record_verified`)."""
        now = self._now()
        added: list[PeerRecord] = []
        for key, raw_url in entries:
            try:
                url = normalize_url(raw_url)
            except ValueError:
                continue
            if key == self.own_key or url == self.own_url or key in self._by_key or url in self._rows:
                continue
            if not await self._make_room_for_candidate():
                break
            row = PeerRecord(url, key, False, source, now, now, None, None, 0)
            async with self._db.transaction("federation_peers_candidate") as tx:
                await tx.execute(
                    "INSERT INTO federation_peers (url, node_key, source, first_seen, last_seen)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (url, key, source.value, now, now),
                )
            self._remember(row)
            added.append(row)
        return added

    async def record_verified(self, url: str, key: bytes, source: PeerSource) -> PeerAddress:
        """A hello from `url` signed by `key` checked out: pin the key there. Raises KeyPinned if `url` is pinned
        to another key, ValueError for our own key or URL."""
        url = normalize_url(url)
        if key == self.own_key or url == self.own_url:
            raise ValueError("a node is not its own peer")
        now = self._now()
        at_url = self._rows.get(url)
        if at_url is not None and at_url.verified and at_url.node_key != key:
            raise KeyPinned(f"{url} is pinned to another key")
        old_url = self._by_key.get(key)
        old = self._rows.get(old_url) if old_url is not None else None
        base = old or at_url
        row = PeerRecord(
            url,
            key,
            True,
            base.source if base is not None else source,
            min(r.first_seen for r in (old, at_url) if r is not None) if base is not None else now,
            now,
            now,
            base.last_failure if base is not None else None,
            0,
        )
        stale_urls = {url} if old_url is None else {url, old_url}
        async with self._db.transaction("federation_peers_verified") as tx:
            for stale in stale_urls:
                await tx.execute("DELETE FROM federation_peers WHERE url = ?", (stale,))
            await tx.execute(
                f"INSERT INTO federation_peers ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", _params(row)
            )
        for stale in stale_urls:
            self._forget_row(stale)
        self._remember(row)
        self._success_written[key] = now
        await self._trim()
        return PeerAddress(key, url)

    async def record_success(self, key: bytes) -> None:
        url = self._by_key.get(key)
        if url is None:
            return
        now = self._now()
        self._rows[url] = replace(self._rows[url], last_success=now, last_seen=now)
        if now - self._success_written.get(key, 0) < self.limits.success_write_interval:
            return
        self._success_written[key] = now
        async with self._db.transaction("federation_peers_success") as tx:
            await tx.execute(
                "UPDATE federation_peers SET last_success = ?, last_seen = ? WHERE url = ?", (now, now, url)
            )

    async def record_failure(self, url: str) -> None:
        """A failed attempt to verify `url`; a candidate failing too often is dropped (a bootstrap URL never is)."""
        row = self._rows.get(url)
        if row is None:
            return
        now = self._now()
        failures = row.failures + 1
        drop = (
            not row.verified
            and row.source is not PeerSource.BOOTSTRAP
            and failures >= self.limits.max_candidate_failures
        )
        async with self._db.transaction("federation_peers_failure") as tx:
            if drop:
                await tx.execute("DELETE FROM federation_peers WHERE url = ?", (url,))
            else:
                await tx.execute(
                    "UPDATE federation_peers SET last_failure = ?, failures = ? WHERE url = ?", (now, failures, url)
                )
        if drop:
            self._forget_row(url)
        else:
            self._rows[url] = replace(row, last_failure=now, failures=failures)

    async def forget(self, url: str) -> bool:
        """Remove a row (an operator un-pinning a key, or removing a peer); False if there was none."""
        if url not in self._rows:
            return False
        async with self._db.transaction("federation_peers_forget") as tx:
            await tx.execute("DELETE FROM federation_peers WHERE url = ?", (url,))
        self._forget_row(url)
        return True

    # Internals.

    def _now(self) -> int:
        return int(self._clock.now())

    def _remember(self, row: PeerRecord) -> None:
        self._rows[row.url] = row
        if row.node_key is not None:
            self._by_key[row.node_key] = row.url

    def _forget_row(self, url: str) -> None:
        row = self._rows.pop(url, None)
        if row is not None and row.node_key is not None and self._by_key.get(row.node_key) == url:
            del self._by_key[row.node_key]
            self._success_written.pop(row.node_key, None)

    async def _make_room_for_candidate(self) -> bool:
        unverified = [row for row in self._rows.values() if not row.verified]
        if len(unverified) < self.limits.max_candidates and len(self._rows) < self.limits.max_peers:
            return True
        evictable = [row for row in unverified if row.source is not PeerSource.BOOTSTRAP]
        if not evictable:
            return False
        await self.forget(min(evictable, key=lambda row: row.last_seen).url)
        return True

    async def _trim(self) -> None:
        while len(self._rows) > self.limits.max_peers:
            rows = [row for row in self._rows.values() if row.source is not PeerSource.BOOTSTRAP]
            if not rows:
                return
            victim = min(rows, key=lambda row: (row.verified, row.last_success or row.first_seen))
            log.info("peer table full: forgetting the longest-silent peer")
            await self.forget(victim.url)


def _record(row: sqlite3.Row) -> PeerRecord:
    return PeerRecord(
        row["url"],
        row["node_key"],
        bool(row["verified"]),
        PeerSource(row["source"]),
        row["first_seen"],
        row["last_seen"],
        row["last_success"],
        row["last_failure"],
        row["failures"],
    )


def _params(row: PeerRecord) -> tuple[object, ...]:
    return (
        row.url,
        row.node_key,
        int(row.verified),
        row.source.value,
        row.first_seen,
        row.last_seen,
        row.last_success,
        row.last_failure,
        row.failures,
    )
