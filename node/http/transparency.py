"""`/api/v1/transparency`: the node's identity, custody (which keepers hold which residents' backups, their proof
history, the receipts for deleted residents), chain check and canary, and its event log with every hash and
signature in hex, so anyone can verify the chain on their own machine (docs/transparency.md).

`TransparencyApi` serves the JSON; `NodeLedger` implements the transparency page's `Ledger` over the same parts.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web

from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import GENESIS_HASH, SIGNING_DOMAIN, LogEntry, canonical_data_json, read_entries
from ftm.federation.eventlog import read_newest as read_newest_entries
from ftm.federation.identity import NodeIdentity
from ftm.node.http.api import NodeFacts, int_param
from ftm.node.store.canaries import CanaryRecord
from ftm.node.transparency import CANARY_DOMAIN, CanaryService, ChainCheck, CheckedChain, CustodyReporter
from ftm.webui.transparency import CanaryView, ChainStatus, CustodyView, LogLine, LogSlice, NodeKeys

MAX_LOG_PAGE = 1000
DEFAULT_LOG_PAGE = 100
DAY = 86400
CUSTODY_STATEMENTS = {
    "local": "this node's operator holds the master key and could decrypt residents between runs",
    "threshold": "residents' keys are split among Keepers: no single party can decrypt them between runs",
}
RUN_LIMIT = "during a run the host holds the resident's plaintext in memory"
NO_KEEPERS = (
    "local custody: no keeper nodes hold shares or replicas of residents, so there are no proofs of possession "
    "to show; each resident's key is wrapped with a master key this node's operator holds, and its only sealed "
    "copy is this node's"
)


class TransparencyApi:
    def __init__(
        self,
        *,
        db: Database,
        identity: NodeIdentity,
        facts: NodeFacts,
        chain: ChainCheck,
        canary: CanaryService,
        custody: CustodyReporter,
        clock: Clock,
    ) -> None:
        self._db = db
        self._identity = identity
        self._facts = facts
        self._chain = chain
        self._canary = canary
        self._custody = custody
        self._clock = clock

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/transparency", self.summary),
            web.get("/api/v1/transparency/log", self.log),
        ]

    async def summary(self, request: web.Request) -> web.Response:
        canary = await self._canary.current()
        return web.json_response(
            {
                "node_id": self._facts.node_id,
                "node_name": self._facts.node_name,
                "public_key": self._identity.public_key.hex(),
                "software_version": self._facts.software_version,
                "custody_mode": self._facts.custody_mode,
                "custody_statement": CUSTODY_STATEMENTS.get(self._facts.custody_mode, ""),
                "run_limit": RUN_LIMIT,
                "chain": chain_json(await self._chain.result()),
                "canary": None if canary is None else canary_json(canary, int(self._clock.now())),
                "custody": custody_json(await self._custody.report()),
                "log_url": "/api/v1/transparency/log",
            }
        )

    async def log(self, request: web.Request) -> web.Response:
        """Entries oldest first from `after` (a sequence number; 0 starts at the beginning)."""
        after = int_param(request.query, "after", 0, 0, 2**62)
        limit = int_param(request.query, "limit", DEFAULT_LOG_PAGE, 1, MAX_LOG_PAGE)
        entries = await read_entries(self._db, after=after, limit=limit + 1)
        more = len(entries) > limit
        entries = entries[:limit]
        return web.json_response(
            {
                "node_id": self._facts.node_id,
                "public_key": self._identity.public_key.hex(),
                "signing_domain": SIGNING_DOMAIN,
                "genesis_hash": GENESIS_HASH.hex(),
                "entries": [entry_json(e) for e in entries],
                "next_after": entries[-1].seq if more else None,
            }
        )


def entry_json(entry: LogEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at,
        "kind": entry.kind,
        "subject": entry.subject,
        "data": entry.data,
        "data_json": canonical_data_json(entry.data),
        "prev_hash": entry.prev_hash.hex(),
        "hash": entry.hash.hex(),
        "signature": entry.signature.hex(),
    }


def chain_json(checked: CheckedChain) -> dict[str, Any]:
    report = checked.report
    return {
        "entries": report.entries,
        "valid": report.valid,
        "first_bad_seq": report.first_bad_seq,
        "reason": report.reason,
        "checked_at": checked.checked_at,
    }


def custody_json(view: CustodyView) -> dict[str, Any]:
    """The custody report as the API gives it: the page's values, field for field, and a plain statement."""
    body = asdict(view)
    body["statement"] = CUSTODY_STATEMENTS.get(view.mode, "") if view.keepers_per_epoch else NO_KEEPERS
    return body


def canary_json(record: CanaryRecord, now: int) -> dict[str, Any]:
    return {
        "statement": record.statement,
        "signed_at": record.signed_at,
        "age_days": max(0, now - record.signed_at) // DAY,
        "signature": record.signature.hex(),
        "signing_domain": CANARY_DOMAIN,
        "signed_message": "msgpack([signed_at, statement])",
    }


class NodeLedger:
    """Implements `ftm.webui.transparency.Ledger` over the node's event log, chain check and canary."""

    def __init__(
        self,
        *,
        db: Database,
        identity: NodeIdentity,
        facts: NodeFacts,
        chain: ChainCheck,
        canary: CanaryService,
        custody: CustodyReporter,
        clock: Clock,
    ) -> None:
        self._db = db
        self._chain = chain
        self._canary = canary
        self._custody = custody
        self._clock = clock
        self._keys = NodeKeys(
            node_id=facts.node_id,
            public_key=identity.public_key.hex(),
            software_version=facts.software_version,
            custody_mode=facts.custody_mode,
        )

    def keys(self) -> NodeKeys:
        return self._keys

    async def chain(self) -> ChainStatus:
        checked = await self._chain.result()
        report = checked.report
        return ChainStatus(report.entries, report.valid, checked.checked_at, report.first_bad_seq, report.reason)

    async def log(self, *, before: int | None, limit: int) -> LogSlice:
        entries = await read_newest_entries(self._db, before=before, limit=limit + 1)
        lines = tuple(
            LogLine(
                seq=e.seq,
                at=e.at,
                kind=e.kind,
                subject=e.subject,
                data=tuple((key, "null" if value is None else str(value)) for key, value in sorted(e.data.items())),
                hash=e.hash.hex(),
            )
            for e in entries[:limit]
        )
        return LogSlice(lines, lines[-1].seq if len(entries) > limit else None)

    async def canary(self) -> CanaryView | None:
        record = await self._canary.current()
        if record is None:
            return None
        return CanaryView(
            statement=record.statement,
            signed_at=record.signed_at,
            signature=record.signature.hex(),
            domain=CANARY_DOMAIN,
            age_days=max(0, int(self._clock.now()) - record.signed_at) // DAY,
        )

    async def custody(self) -> CustodyView:
        return await self._custody.report()
