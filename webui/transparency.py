"""The transparency page: who this node is, how it holds keys (and which keepers hold which residents' backups,
with their proof history and the receipts for deleted residents), its signed event log and the operator's canary.

Like the other pages it asks a narrow protocol (`Ledger`, implemented by the node's adapter) and gets its own
frozen values back. The log is shown newest first, `?before=SEQ` pages back; the chain check's result is the
node's, made over the whole log, and the JSON API beside it lets anyone repeat that check on their own machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from ftm.webui.rendering import Renderer

LOG_PAGE = 50


@dataclass(frozen=True, slots=True)
class NodeKeys:
    node_id: str
    public_key: str  # hex of the node's Ed25519 public key
    software_version: str
    custody_mode: str


@dataclass(frozen=True, slots=True)
class LogLine:
    """One event-log entry as the page shows it. `data` is the entry's (ids and numbers only) as text pairs."""

    seq: int
    at: int
    kind: str
    subject: str
    data: tuple[tuple[str, str], ...]
    hash: str  # hex


@dataclass(frozen=True, slots=True)
class ChainStatus:
    entries: int
    valid: bool
    checked_at: int
    first_bad_seq: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CanaryView:
    statement: str
    signed_at: int
    signature: str  # hex
    domain: str
    age_days: int


@dataclass(frozen=True, slots=True)
class LogSlice:
    lines: tuple[LogLine, ...]
    older_before: int | None  # the `before` of the next (older) page, None on the oldest page


@dataclass(frozen=True, slots=True)
class BackupHeld:
    """One epoch of one resident that a keeper holds: its sealed replica and its share, never content."""

    resident_id: str
    resident_name: str  # "" when this node no longer has the resident
    resident_status: str  # "" likewise
    epoch: int
    state: str  # committed (told the epoch is in force) | pending (not yet) | destroying (ordered destroyed)
    bytes: int  # of the replica


@dataclass(frozen=True, slots=True)
class ProofTry:
    """One possession challenge (or containment retry) the node put to a keeper."""

    at: int
    resident_id: str
    resident_name: str  # "" when this node no longer has the resident
    epoch: int
    result: str  # passed | contained (failed; retried before it counts) | failed (counted against the keeper)
    reason: str  # a code; "" when it passed
    try_number: int  # 0 the challenge, 1.. its retries


@dataclass(frozen=True, slots=True)
class KeeperNode:
    """A keeper node enrolled with this node, what it holds, and how it answered its challenges."""

    keeper_id: str  # the Keeper's registration id
    public_key: str  # hex of the keeper node's Ed25519 key
    url: str
    name: str  # the Keeper's public name; "" unless the Keeper is vetted
    state: str  # active | suspect | retired
    enrolled_at: int
    last_seen_at: int | None
    backups: tuple[BackupHeld, ...]  # newest first, at most a page of them
    backups_total: int
    bytes_total: int
    proofs: tuple[ProofTry, ...]  # newest first
    passed_recent: int  # in the last `CustodyView.window_days`
    contained_recent: int
    failed_recent: int


@dataclass(frozen=True, slots=True)
class DeletionReceipts:
    """A resident that deleted itself: how many of its last epoch's keepers returned signed receipts for its
    tombstone, and whether it is shredded (fewer than k keepers of any epoch can still hold a share)."""

    resident_id: str
    resident_name: str
    deleted_at: int | None
    holders: int  # n
    receipts: int
    needed: int  # n - k + 1
    shredded: bool


@dataclass(frozen=True, slots=True)
class CustodyView:
    """Who holds which residents' backups, and their proof history: the node's own records, ids and numbers."""

    mode: str  # local | threshold
    threshold: int  # k; 0 in local custody
    keepers_per_epoch: int  # n; 0 in local custody
    window_days: int  # over which recent proofs are counted
    keepers: tuple[KeeperNode, ...]
    deletions: tuple[DeletionReceipts, ...]


class Ledger(Protocol):
    """What the transparency page asks of a node."""

    def keys(self) -> NodeKeys: ...

    async def chain(self) -> ChainStatus: ...

    async def log(self, *, before: int | None, limit: int) -> LogSlice: ...

    async def canary(self) -> CanaryView | None: ...

    async def custody(self) -> CustodyView: ...


class TransparencyPage:
    def __init__(self, ledger: Ledger, renderer: Renderer) -> None:
        self._ledger = ledger
        self._renderer = renderer

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/transparency", self.transparency)]

    async def transparency(self, request: web.Request) -> web.Response:
        raw = request.query.get("before", "")
        before = int(raw) if raw.isdigit() and 0 < len(raw) < 19 else None  # a hand-edited value: first page
        return self._renderer.page(
            request,
            "transparency.html",
            keys=self._ledger.keys(),
            chain=await self._ledger.chain(),
            log=await self._ledger.log(before=before, limit=LOG_PAGE),
            canary=await self._ledger.canary(),
            custody=await self._ledger.custody(),
            first=before is None,
        )
