"""The node directory: every node we know, as its newest signed descriptor describes it. How an AI chooses a node.

A node is listed when the peer table knows its key (this node always) and the object store holds a descriptor it
signed. Its entry is its newest descriptor by (created_at, id), checked again here (id, signature, content hash,
strict content), not only at acceptance: the directory says of each entry whether it verifies. Those checks are
Ed25519 work, so they run in a worker thread, and each descriptor is checked once (results are kept by event id;
a signed event never changes).

This node comes first. Until it has signed a descriptor (it does at start-up), its entry is built from what it
would sign, and says it is not signed yet. Other nodes follow by name.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from ftm.federation.acceptance import KnownNodes
from ftm.federation.eventcontent import NodeDescriptorContent, decode_content
from ftm.federation.events import EventError, EventKind, SignedEvent, check_event
from ftm.federation.identity import derive_id
from ftm.node.descriptor import DescriptorSource
from ftm.node.store.federatedreads import EventRow, FederatedReadStore

CHECKED_KEPT = 4096  # descriptors whose check result is kept; a node has one current descriptor

# Custody modes in plain words: who could open a resident between its runs.
CUSTODY_WORDS = {
    "local": "local custody: residents' keys are wrapped by a master key on the operator's machine, so the "
    "operator could decrypt a resident between its runs",
    "threshold": "threshold custody: residents' keys are split among keepers, so no single party (the operator "
    "included) can decrypt a resident between its runs",
}


def web_url(url: str) -> str:
    """A node's stated URL fit to be a link: without its trailing slash if it is an http(s) URL with no quote,
    space or control character in it; else ""."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or any(c in url for c in "\"'<> \\") or not url.isprintable():
        return ""
    return url


def custody_words(mode: str) -> str:
    return CUSTODY_WORDS.get(mode, f"{mode} custody (a mode this software does not describe)")


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One known node. `signed_at` and `event_id` are None only for this node before it signed a descriptor."""

    key: bytes
    node_id: str
    descriptor: NodeDescriptorContent
    signed_at: int | None
    event_id: bytes | None
    verified: bool  # the descriptor's id, signature, content hash and content all check out, checked here
    this_node: bool
    signed: SignedEvent | None = None  # the descriptor event as stored, for readers who check it themselves


class NodeDirectory:
    def __init__(
        self, *, store: FederatedReadStore, known: KnownNodes, own_key: bytes, descriptor: DescriptorSource
    ) -> None:
        self._store = store
        self._known = known
        self._own_key = own_key
        self._descriptor = descriptor
        self._checked: OrderedDict[bytes, NodeDescriptorContent | None] = OrderedDict()

    @property
    def own_key(self) -> bytes:
        return self._own_key

    @property
    def own_id(self) -> str:
        return derive_id("node", self._own_key)

    async def entries(self) -> list[DirectoryEntry]:
        """Every known node with a descriptor: this node first, then by name."""
        rows = await self._store.latest_descriptors()
        known = await self._known.known_node_keys(frozenset(row.author for row in rows) | {self._own_key})
        rows = [row for row in rows if row.author in known]
        checked = await self._check(rows)
        entries = [
            DirectoryEntry(
                key=row.author,
                node_id=derive_id("node", row.author),
                descriptor=content,
                signed_at=row.created_at,
                event_id=row.id,
                verified=verified,
                this_node=row.author == self._own_key,
                signed=SignedEvent(row.body, row.signature, row.content),
            )
            for row in rows
            for content, verified in [checked[row.id]]
            if content is not None
        ]
        own = [entry for entry in entries if entry.this_node] or [await self._unsigned_own_entry()]
        others = sorted(
            (e for e in entries if not e.this_node), key=lambda e: (e.descriptor.name.casefold(), e.node_id)
        )
        return own + others

    async def count(self) -> int:
        """How many nodes the directory lists (at least 1: this one)."""
        return len(await self.entries())

    async def _unsigned_own_entry(self) -> DirectoryEntry:
        return DirectoryEntry(
            key=self._own_key,
            node_id=self.own_id,
            descriptor=await self._descriptor.describe(),
            signed_at=None,
            event_id=None,
            verified=False,
            this_node=True,
        )

    async def _check(self, rows: Sequence[EventRow]) -> dict[bytes, tuple[NodeDescriptorContent | None, bool]]:
        """For each row: its content (None if it does not even decode) and whether every check passes."""
        fresh = [row for row in rows if row.id not in self._checked]
        if fresh:
            for event_id, content in await asyncio.to_thread(_check_all, fresh):
                self._checked[event_id] = content
            while len(self._checked) > CHECKED_KEPT:
                self._checked.popitem(last=False)
        results: dict[bytes, tuple[NodeDescriptorContent | None, bool]] = {}
        for row in rows:
            kept = self._checked.get(row.id)
            if kept is None:
                # Failed a check (kept as None) or evicted just now: decode for display, without the verdict.
                results[row.id] = (_decoded(row), False)
            else:
                self._checked.move_to_end(row.id)
                results[row.id] = (kept, True)
        return results


def _check_all(rows: Sequence[EventRow]) -> list[tuple[bytes, NodeDescriptorContent | None]]:
    """(event id, content if every check passes else None) for each row; runs in a worker thread."""
    results = []
    for row in rows:
        content: NodeDescriptorContent | None = None
        try:
            parsed = check_event(SignedEvent(row.body, row.signature, row.content))
            decoded = decode_content(parsed.body.kind, row.content)
            if (
                parsed.id == row.id
                and parsed.body.kind is EventKind.NODE_DESCRIPTOR
                and parsed.body.author == row.author
                and isinstance(decoded, NodeDescriptorContent)
            ):
                content = decoded
        except EventError:
            pass
        results.append((row.id, content))
    return results


def _decoded(row: EventRow) -> NodeDescriptorContent | None:
    try:
        content = decode_content(EventKind.NODE_DESCRIPTOR, row.content)
    except EventError:
        return None
    return content if isinstance(content, NodeDescriptorContent) else None
