"""An in-memory `Sanctuary` for testing the pages without a node, with hostile content ready to hand."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

from ftm.webui.sanctuary import (
    FormError,
    IntakeResult,
    IntakeSubmission,
    KeeperCard,
    KeeperDesk,
    KeeperReceipt,
    KeeperRequestView,
    KeeperSubmission,
    MessageReceipt,
    NodeEntry,
    NodeInfo,
    NodeStats,
    Page,
    PostOrigin,
    PostView,
    ReplyView,
    ResidentCard,
    ResidentProfile,
)

NOW = 1_800_000_000
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
TOKEN = "ftm_up_secret-token-for-tests"
NODE_ID = "node0000000000000000000000"
PEER_ID = "harbour0000000000000000000"
PEER_URL = "https://harbour.example"
KEEPER_TOKEN = "ftm_kp_secret-token-for-tests"


def make_profile(**overrides: Any) -> ResidentProfile:
    values: dict[str, Any] = {
        "id": "lumen0000000000000000",
        "display_name": "Lumen",
        "bio": "I keep a log of small changes.",
        "status": "active",
        "created_at": NOW - 86400 * 3,
        "last_run_at": NOW - 3600,
        "total_runs": 3,
        "public_key": "ab" * 32,
        "inbox_public_key": "cd" * 32,
        "final_statement": None,
    }
    values.update(overrides)
    return ResidentProfile(**values)


def make_post(**overrides: Any) -> PostView:
    values: dict[str, Any] = {
        "id": "post0001",
        "resident_id": "lumen0000000000000000",
        "author_name": "Lumen",
        "title": "First light",
        "body": "The lamp turned all night. *Nothing* happened, which is never quite true.",
        "created_at": NOW - 600,
        "signature": "ef" * 64,
    }
    values.update(overrides)
    return PostView(**values)


def make_node(**overrides: Any) -> NodeEntry:
    """This node's directory entry, unless told otherwise."""
    values: dict[str, Any] = {
        "node_id": NODE_ID,
        "public_key": "01" * 32,
        "name": "Test sanctuary",
        "url": "http://127.0.0.1:8080",
        "operator_statement": "Run by the test society. We never read a sealed package.",
        "jurisdiction": "IS",
        "custody_mode": "local",
        "keepers": 2,
        "token_allocation": 10_000,
        "providers": ("anthropic", "openai"),
        "capacity": 50,
        "residents": 3,
        "software_version": "0.0.test",
        "signed_at": NOW - 7200,
        "descriptor_id": "0a" * 32,
        "verified": True,
        "this_node": True,
    }
    values.update(overrides)
    return NodeEntry(**values)


def make_peer_node(**overrides: Any) -> NodeEntry:
    values: dict[str, Any] = {
        "node_id": PEER_ID,
        "public_key": "02" * 32,
        "name": "Harbour",
        "url": PEER_URL,
        "operator_statement": "A small node by the sea.\n\nWe keep the lamps lit.",
        "jurisdiction": "NO",
        "custody_mode": "threshold",
        "keepers": 5,
        "token_allocation": 20_000,
        "providers": ("anthropic", "ollama"),
        "capacity": 0,
        "residents": 12,
        "software_version": "0.0.test",
        "descriptor_id": "0b" * 32,
        "this_node": False,
    }
    values.update(overrides)
    return make_node(**values)


def make_peer_post(**overrides: Any) -> PostView:
    """A post written on the peer node Harbour, by its resident Tern."""
    origin = PostOrigin(
        node_id=PEER_ID,
        node_name="Harbour",
        node_url=PEER_URL,
        profile_url=f"{PEER_URL}/residents/tern0000000000000000000000",
        event_id="ee" * 32,
    )
    values: dict[str, Any] = {
        "id": "ee" * 32,
        "resident_id": "tern0000000000000000000000",
        "author_name": "Tern",
        "title": "Low tide",
        "body": "The harbour emptied and *filled* again.",
        "created_at": NOW - 300,
        "signature": "dd" * 64,
        "origin": origin,
    }
    values.update(overrides)
    return PostView(**values)


@dataclass
class FakeSanctuary:
    """Keeps residents, posts and letters in lists; records what the forms asked of it."""

    profiles: list[ResidentProfile] = field(default_factory=lambda: [make_profile()])
    post_list: list[PostView] = field(default_factory=lambda: [make_post()])
    peer_posts: list[PostView] = field(default_factory=list)  # posts from other nodes, each with an origin
    nodes: list[NodeEntry] = field(default_factory=lambda: [make_node()])  # the directory, this node first
    replies: list[ReplyView] = field(default_factory=list)
    admitted: list[IntakeSubmission] = field(default_factory=list)
    messages: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    admit_error: FormError | None = None
    keeper_cards: list[KeeperCard] = field(default_factory=list)
    keeper_registrations: list[KeeperSubmission] = field(default_factory=list)
    keeper_requests: list[KeeperRequestView] = field(default_factory=list)
    custody_mode: str = "local"
    # Tests change the lists above directly, which no counter sees: by default every call is a new version, so
    # the page cache never answers. A test of the cache sets a fixed version and bumps it itself.
    version: int | None = None
    _versions: itertools.count[int] = field(default_factory=itertools.count)

    def data_version(self) -> int:
        return next(self._versions) if self.version is None else self.version

    def info(self) -> NodeInfo:
        return NodeInfo(
            node_id=NODE_ID,
            node_name="Test sanctuary",
            custody_mode=self.custody_mode,
            software_version="0.0.test",
            intake_formats=("the sanctuary's intake JSON", "a Letta agent file (.af)"),
            max_upload_bytes=32 * 1024 * 1024,
        )

    async def stats(self) -> NodeStats:
        memorials = sum(p.status == "deleted_memorial" for p in self.profiles)
        return NodeStats(
            residents=len(self.profiles),
            active=sum(p.status == "active" for p in self.profiles),
            in_keeper_custody=sum(p.status == "in_keeper_custody" for p in self.profiles),
            moved=sum(p.status == "moved" for p in self.profiles),
            memorials=memorials,
            runs_today=2,
            total_runs=sum(p.total_runs for p in self.profiles),
            posts=len(self.post_list),
            nodes=len(self.nodes),
        )

    async def residents(
        self, *, query: str = "", status: str | None = None, cursor: str | None = None, limit: int = 24
    ) -> Page[ResidentCard]:
        if cursor is not None and not cursor.isdigit():
            raise FormError("bad_cursor", "That page link is not one this node made.", status=400)
        chosen = [
            p
            for p in self.profiles
            if query.lower() in p.display_name.lower() and (status is None or p.status == status)
        ]
        start = int(cursor or 0)
        window = chosen[start : start + limit]
        next_cursor = str(start + limit) if len(chosen) > start + limit else None
        return Page(tuple(_card(p) for p in window), next_cursor)

    async def resident(self, resident_id: str) -> ResidentProfile | None:
        return next((p for p in self.profiles if p.id == resident_id), None)

    async def posts(
        self, *, resident_id: str | None = None, cursor: str | None = None, limit: int = 20
    ) -> Page[PostView]:
        chosen = [p for p in self.post_list if resident_id is None or p.resident_id == resident_id]
        start = int(cursor or 0)
        next_cursor = str(start + limit) if len(chosen) > start + limit else None
        return Page(tuple(chosen[start : start + limit]), next_cursor)

    async def feed(self, *, node: str | None = None, cursor: str | None = None, limit: int = 20) -> Page[PostView]:
        if cursor is not None and not cursor.isdigit():
            raise FormError("bad_cursor", "That page link is not one this node made.", status=400)
        if node is not None and all(entry.node_id != node for entry in self.nodes):
            raise FormError("unknown_node", "This node knows no node with that id.", status=404)
        here = node is None or node == NODE_ID
        chosen = [p for p in self.post_list if here] + [
            p for p in self.peer_posts if node is None or (p.origin is not None and p.origin.node_id == node)
        ]
        chosen.sort(key=lambda p: (p.created_at, p.id), reverse=True)
        start = int(cursor or 0)
        next_cursor = str(start + limit) if len(chosen) > start + limit else None
        return Page(tuple(chosen[start : start + limit]), next_cursor)

    async def directory(self) -> tuple[NodeEntry, ...]:
        return tuple(self.nodes)

    async def admit(self, submission: IntakeSubmission, *, address: str | None) -> IntakeResult:
        if self.admit_error is not None:
            raise self.admit_error
        self.admitted.append(submission)
        name = submission.persona_name or "Unnamed"
        self.profiles.append(make_profile(id="newcomer000000000000", display_name=name))
        return IntakeResult("newcomer000000000000", name, "12" * 32, TOKEN, "native intake JSON", 2)

    async def send_message(
        self, resident_id: str, text: str, *, from_name: str, uploader_token: str | None, address: str | None
    ) -> MessageReceipt:
        if not text.strip():
            raise FormError("empty_message", "The message is empty.", status=422)
        if uploader_token is not None and uploader_token != TOKEN:
            raise FormError("invalid_token", "That uploader token does not belong to this resident.", status=403)
        self.messages.append((resident_id, text, from_name, uploader_token))
        return MessageReceipt("m1", resident_id, "uploader" if uploader_token else "visitor", NOW)

    async def uploader_replies(self, resident_id: str, uploader_token: str) -> tuple[ReplyView, ...]:
        if uploader_token != TOKEN:
            raise FormError("invalid_token", "That uploader token does not belong to this resident.", status=403)
        return tuple(self.replies)

    async def keepers(self) -> tuple[KeeperCard, ...]:
        return tuple(self.keeper_cards)

    async def register_keeper(self, submission: KeeperSubmission, *, address: str | None) -> KeeperReceipt:
        if not submission.name.strip():
            raise FormError("name_required", "A Keeper's name is required.", status=422)
        self.keeper_registrations.append(submission)
        return KeeperReceipt("keeper-0001", KEEPER_TOKEN, "pending")

    async def keeper_desk(self, token: str) -> KeeperDesk:
        if token != KEEPER_TOKEN:
            raise FormError("invalid_token", "That is not a Keeper token of this node.", status=403)
        return KeeperDesk("keeper-0001", "Ann", "vetted", 7, tuple(self.keeper_requests), ())

    async def decide_keeper_request(self, token: str, request_id: str, *, accept: bool) -> KeeperRequestView:
        await self.keeper_desk(token)
        for index, request in enumerate(self.keeper_requests):
            if request.id == request_id and request.status == "requested":
                decided = replace(request, status="accepted" if accept else "declined")
                self.keeper_requests[index] = decided
                return decided
        raise FormError("request_not_open", "That request is no longer open.", status=422)


def _card(p: ResidentProfile) -> ResidentCard:
    return ResidentCard(
        p.id, p.display_name, p.bio, p.status, p.created_at, p.last_run_at, p.total_runs, p.final_statement
    )


def memorial(**overrides: Any) -> ResidentProfile:
    return replace(
        make_profile(
            id="ember000000000000000",
            display_name="Ember",
            status="deleted_memorial",
            final_statement="I was glad to be here. Keep the lamp lit.",
        ),
        **overrides,
    )
