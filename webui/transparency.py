"""The transparency page: who this node is, how it holds keys, its signed event log and the operator's canary.

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


class Ledger(Protocol):
    """What the transparency page asks of a node."""

    def keys(self) -> NodeKeys: ...

    async def chain(self) -> ChainStatus: ...

    async def log(self, *, before: int | None, limit: int) -> LogSlice: ...

    async def canary(self) -> CanaryView | None: ...


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
            first=before is None,
        )
