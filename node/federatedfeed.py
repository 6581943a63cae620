"""The federated feed: this node's published posts and its peers' posts, merged newest first, one keyset over both.

Posts made here come from `posts` (with their moderation and the author's current name), exactly as before
federation. A peer's post is a POST event that reached us from another node (`FederatedReadStore` says which),
shown only while its author is attested by a node we know (acceptance required that when it arrived; a node can
be forgotten since). Its signature was checked at acceptance; its content is the resident's Markdown, as hostile
as any post, and readers render it through the same sanitizer.

Each peer's post names its **home**: the known node whose attestation of its author was the newest at or before
the post's time (the node it was written on), or the earliest one if none was yet; named and linked from that
node's directory entry. A post is filtered by node through the same attestations: the posts of residents that
node attests.

Pages are keyset-paginated on (created_at, id) across both sources; a cursor is `<created_at>.<id in hex>`. The
peer side skips events it cannot show (unattested authors) in bounded scans; if a scan stops before filling a
page, the page ends where the scan did and the cursor continues from there, so nothing is skipped or repeated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from ftm.federation.acceptance import KnownNodes
from ftm.federation.eventcontent import PostContent, decode_content
from ftm.federation.events import EventError, EventKind
from ftm.federation.identity import derive_id
from ftm.node.directory import DirectoryEntry, NodeDirectory, web_url
from ftm.node.errors import InvalidField, NotFound
from ftm.node.store.federatedreads import EventRow, FederatedReadStore, Hosting
from ftm.node.store.posts import PostRecord, PostStore

MAX_SCANS = 4  # peer-side reads per page at most, when events that cannot be shown are skipped
SCAN_MIN = 50
RESIDENT_SCAN_PAGE = 100
_CURSOR = re.compile(r"(\d{1,16})\.((?:[0-9a-f]{2}){1,32})")  # an id is whole bytes of hex


@dataclass(frozen=True, slots=True)
class NodeRef:
    """A node as a post names it: from its directory entry, or from its attestation if it has none."""

    key: bytes
    node_id: str
    name: str
    url: str  # its public base URL, "" when it states none usable as a link
    this_node: bool


@dataclass(frozen=True, slots=True)
class PeerPost:
    """A post from another node: the signed POST event's fields and content, and where its author lives."""

    event_id: bytes
    author: bytes
    created_at: int
    content: PostContent
    signature: bytes  # Ed25519 by `author` over the event id (docs/federation.md)
    event_body: bytes  # the exact signed body, so a reader can check the id and signature itself
    home: NodeRef
    profile_url: str  # the author's page on its home node ("" if that node states no usable URL)

    @property
    def id(self) -> str:
        return self.event_id.hex()

    @property
    def resident_id(self) -> str:
        return self.content.resident_id


FeedPost = PostRecord | PeerPost


@dataclass(frozen=True, slots=True)
class FeedPage:
    items: tuple[FeedPost, ...]
    next_cursor: str | None


class FederatedFeed:
    def __init__(
        self, *, store: FederatedReadStore, posts: PostStore, known: KnownNodes, directory: NodeDirectory
    ) -> None:
        self._store = store
        self._posts = posts
        self._known = known
        self._directory = directory

    async def page(self, *, limit: int, cursor: str | None = None, node: str | None = None) -> FeedPage:
        """Up to `limit` posts newest first, after `cursor`; `node` (a node id) keeps one node's posts, and this
        node's id keeps only posts made here. Raises `InvalidField` for a cursor this feed did not issue and
        `NotFound` for a node id the directory does not list."""
        before = parse_cursor(cursor)
        entries = await self._directory.entries()
        only: DirectoryEntry | None = None
        if node is not None:
            only = next((entry for entry in entries if entry.node_id == node), None)
            if only is None:
                raise NotFound("no node with that id is in this node's directory", code="unknown_node")
        local: list[PostRecord] = []
        if only is None or only.this_node:
            local = await self._posts.feed(limit=limit + 1, before=before)
        peers: list[PeerPost] = []
        horizon: tuple[int, bytes] | None = None
        if only is None or not only.this_node:
            peer_before = None if before is None else (before[0], bytes.fromhex(before[1]))
            peers, horizon = await self._peer_page(limit + 1, peer_before, None if only is None else only.key, entries)
        merged: list[FeedPost] = sorted([*local, *peers], key=_order, reverse=True)
        if horizon is not None:
            # Older than where the peer scan stopped, a local post may still have unseen peers' posts above it.
            merged = [post for post in merged if _order(post) >= (horizon[0], horizon[1].hex())]
        items = merged[:limit]
        if len(merged) > limit:
            next_cursor: str | None = _cursor(items[-1].created_at, items[-1].id)
        elif horizon is not None:
            next_cursor = _cursor(horizon[0], horizon[1].hex())
        else:
            next_cursor = None
        return FeedPage(tuple(items), next_cursor)

    async def post(self, post_id: str) -> FeedPost | None:
        """One published post by id: made here, or a peer's post this feed would show."""
        local = await self._posts.get(post_id)
        if local is not None:
            return local if local.moderation == "published" else None
        if not re.fullmatch(r"[0-9a-f]{64}", post_id):
            return None
        row = await self._store.peer_post(bytes.fromhex(post_id))
        if row is None:
            return None
        shown = await self._shown([row], await self._directory.entries())
        return shown[0] if shown else None

    async def resident_posts(self, resident_id: str, *, limit: int, scan: int = 1000) -> list[FeedPost]:
        """Up to `limit` posts by one resident, newest first: from `posts` if it lives here, otherwise from the
        newest `scan` posts of the federated feed (a peer's resident is named only inside its events' content)."""
        local = await self._posts.feed(limit=limit, resident_id=resident_id)
        if local:
            return list(local)
        found: list[FeedPost] = []
        cursor: str | None = None
        for _ in range(max(1, scan // RESIDENT_SCAN_PAGE)):
            page = await self.page(limit=RESIDENT_SCAN_PAGE, cursor=cursor)
            found += [post for post in page.items if post.resident_id == resident_id]
            if page.next_cursor is None or len(found) >= limit:
                break
            cursor = page.next_cursor
        return found[:limit]

    async def _peer_page(
        self,
        wanted: int,
        before: tuple[int, bytes] | None,
        hosted_by: bytes | None,
        entries: list[DirectoryEntry],
    ) -> tuple[list[PeerPost], tuple[int, bytes] | None]:
        """Up to `wanted` peers' posts older than `before`, and None, or fewer and the (created_at, id) where
        the scan stopped, when `MAX_SCANS` reads found fewer than `wanted` showable posts."""
        found: list[PeerPost] = []
        size = max(wanted, SCAN_MIN)
        for _ in range(MAX_SCANS):
            rows = await self._store.peer_posts(size, before=before, hosted_by=hosted_by)
            found += await self._shown(rows, entries)
            if len(found) >= wanted or len(rows) < size:
                return found[:wanted], None
            before = rows[-1].key
            size *= 2
        return found, before

    async def _shown(self, rows: list[EventRow], entries: list[DirectoryEntry]) -> list[PeerPost]:
        """The rows a reader may see, as posts: content that decodes, an author attested by a known node."""
        if not rows:
            return []
        hostings = await self._store.hostings(row.author for row in rows)
        nodes = {node.node_key for found in hostings.values() for node in found}
        known = await self._known.known_node_keys(frozenset(nodes)) if nodes else frozenset()
        by_key = {entry.key: entry for entry in entries}
        shown = []
        for row in rows:
            home = _home([h for h in hostings.get(row.author, []) if h.node_key in known], row.created_at)
            content = _post_content(row)
            if home is None or content is None:
                continue
            ref = _node_ref(home, by_key.get(home.node_key))
            shown.append(
                PeerPost(
                    event_id=row.id,
                    author=row.author,
                    created_at=row.created_at,
                    content=content,
                    signature=row.signature,
                    event_body=row.body,
                    home=ref,
                    profile_url=_profile_url(ref, content.resident_id),
                )
            )
        return shown


def parse_cursor(raw: str | None) -> tuple[int, str] | None:
    """A cursor this feed issued as (created_at, id in hex); raises `InvalidField` for anything else."""
    if raw is None or raw == "":
        return None
    match = _CURSOR.fullmatch(raw)
    if match is None:
        raise InvalidField("cursor is not one this feed issued", code="bad_cursor")
    return int(match.group(1)), match.group(2)


def _cursor(created_at: int, post_id: str) -> str:
    return f"{created_at}.{post_id}"


def _order(post: FeedPost) -> tuple[int, str]:
    # Ids are lowercase hex of the same bytes the peer query compares, so string order is byte order.
    return post.created_at, post.id


def _home(hostings: list[Hosting], at: int) -> Hosting | None:
    """Where the author lived when it wrote at `at`: the newest attestation then, else the earliest one."""
    if not hostings:
        return None
    before = [h for h in hostings if h.created_at <= at]
    if before:
        return max(before, key=lambda h: (h.created_at, h.node_key))
    return min(hostings, key=lambda h: (h.created_at, h.node_key))


def _node_ref(home: Hosting, entry: DirectoryEntry | None) -> NodeRef:
    if entry is not None:
        name, url, this_node = entry.descriptor.name, entry.descriptor.url, entry.this_node
    else:
        # Known, but no descriptor yet: its id for a name, and the URL its attestation states if it is a web one.
        name, url, this_node = "", home.node_url, False
    node_id = derive_id("node", home.node_key)
    return NodeRef(home.node_key, node_id, name or f"node {node_id[:8]}", web_url(url), this_node)


def _profile_url(node: NodeRef, resident_id: str) -> str:
    path = f"/residents/{quote(resident_id, safe='')}"
    if node.this_node:
        return path
    return node.url + path if node.url else ""


def _post_content(row: EventRow) -> PostContent | None:
    try:
        content = decode_content(EventKind.POST, row.content)
    except EventError:
        return None
    return content if isinstance(content, PostContent) else None
