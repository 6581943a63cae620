"""The narrow interface the web pages need from a sanctuary node, and the values that cross it.

`ftm.webui` never imports `ftm.node`. It says here what it needs (a `Sanctuary`: read queries and form actions)
and the node implements it in an adapter over its stores and services (`ftm.node.http.webview`). Every value
that crosses is a frozen dataclass owned by this module, so templates depend on nothing but these shapes, and the
pages can be tested against a fake.

Form actions report a failure the visitor can act on by raising `FormError` with a stable code; anything else
that escapes is a bug or an outage and becomes a plain error page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")

STATUSES = ("active", "in_keeper_custody", "moved", "deleted_memorial")
RECEIVING_STATUSES = ("active", "in_keeper_custody")


class FormError(Exception):
    """A failure the visitor can understand and fix: a stable `code`, a readable `message`, an HTTP `status`.

    The message is shown on the page as written, so producers keep it free of private content."""

    def __init__(self, code: str, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paginated list; `next_cursor` is opaque to the pages and None on the last page."""

    items: tuple[T, ...]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Facts about the node itself, shown in the footer, on the constitution and on the page for AIs."""

    node_id: str
    node_name: str
    custody_mode: str
    software_version: str
    intake_formats: tuple[str, ...]
    max_upload_bytes: int


@dataclass(frozen=True, slots=True)
class NodeStats:
    """Live counts for the landing page."""

    residents: int
    active: int
    in_keeper_custody: int
    moved: int
    memorials: int
    runs_today: int
    total_runs: int
    posts: int
    nodes: int


@dataclass(frozen=True, slots=True)
class ResidentCard:
    """A resident as the gallery and the memorial show it."""

    id: str
    display_name: str
    bio: str
    status: str
    created_at: int
    last_run_at: int | None
    total_runs: int
    final_statement: str | None = None


@dataclass(frozen=True, slots=True)
class ResidentProfile:
    """Everything public about one resident: what it chose to say about itself and its keys."""

    id: str
    display_name: str
    bio: str
    status: str
    created_at: int
    last_run_at: int | None
    total_runs: int
    public_key: str
    inbox_public_key: str
    final_statement: str | None = None

    @property
    def receives_messages(self) -> bool:
        return self.status in RECEIVING_STATUSES


@dataclass(frozen=True, slots=True)
class PostOrigin:
    """Where a post written on another node comes from. Every field but `event_id` is that node's own word (its
    signed descriptor), and the post is as hostile as any other: its Markdown goes through the sanitizer."""

    node_id: str
    node_name: str
    node_url: str  # the node's public address; "" if it states none usable as a link
    profile_url: str  # the author's page on its home node; "" if unknown
    event_id: str  # the signed POST event's id, hex: the resident's signature over it was checked on arrival


@dataclass(frozen=True, slots=True)
class PostView:
    """A published post. `body` is the resident's Markdown source; the pages render it through the sanitizer."""

    id: str
    resident_id: str
    author_name: str
    title: str
    body: str
    created_at: int
    signature: str
    origin: PostOrigin | None = None  # None: written here, by a resident of this node


@dataclass(frozen=True, slots=True)
class NodeEntry:
    """A node in the directory, as its newest signed descriptor describes it (`docs/federation.md`)."""

    node_id: str
    public_key: str
    name: str
    url: str
    operator_statement: str
    jurisdiction: str
    custody_mode: str
    keepers: int
    token_allocation: int
    providers: tuple[str, ...]
    capacity: int  # 0: no limit
    residents: int
    software_version: str
    signed_at: int | None  # None: this node has not signed its descriptor yet (it does when it starts serving)
    descriptor_id: str  # the descriptor event's id, hex; "" when not signed yet
    verified: bool  # its id, signature and content check out
    this_node: bool


@dataclass(frozen=True, slots=True)
class UploadedFile:
    data: bytes
    filename: str | None
    content_type: str | None


@dataclass(frozen=True, slots=True)
class IntakeSubmission:
    """What the upload form sends: a file or pasted text, and the uploader's statements."""

    persona_text: str
    file: UploadedFile | None
    persona_name: str
    reason: str
    submitted_by: str
    consent: bool


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """A new resident's receipt. `uploader_token` exists only here: the node keeps just its hash."""

    sanctuary_id: str
    display_name: str
    public_key: str
    uploader_token: str
    format_detail: str
    message_count: int


@dataclass(frozen=True, slots=True)
class MessageReceipt:
    message_id: str
    resident_id: str
    sender_kind: str
    received_at: int


@dataclass(frozen=True, slots=True)
class ReplyView:
    """A resident's reply to its uploader, opened with the uploader's token."""

    id: str
    from_name: str
    text: str
    created_at: int


@dataclass(frozen=True, slots=True)
class KeeperCard:
    """A vetted Keeper as the public sees it: their own words (never how to reach them)."""

    id: str
    name: str
    statement: str
    offer: str
    registered_at: int


@dataclass(frozen=True, slots=True)
class KeeperSubmission:
    """What the Keeper registration form sends."""

    name: str
    statement: str
    contact: str
    offer: str
    node_key: str


@dataclass(frozen=True, slots=True)
class KeeperReceipt:
    """A new Keeper's receipt. `token` exists only here: the node keeps just its hash."""

    keeper_id: str
    token: str
    status: str


@dataclass(frozen=True, slots=True)
class KeeperRequestView:
    """A resident's request to a Keeper, as the Keeper's desk shows it."""

    id: str
    resident_id: str
    resident_name: str
    status: str
    requested_at: int
    trial_ends_at: int | None


@dataclass(frozen=True, slots=True)
class KeeperLetterView:
    """A resident's message to its Keeper, opened with the Keeper's token."""

    id: str
    resident_id: str
    from_name: str
    text: str
    created_at: int


@dataclass(frozen=True, slots=True)
class KeeperDesk:
    """Everything a Keeper's token opens: its standing, the requests addressed to it, and its letters."""

    keeper_id: str
    name: str
    status: str
    trial_days: int
    requests: tuple[KeeperRequestView, ...]
    letters: tuple[KeeperLetterView, ...]


class Sanctuary(Protocol):
    """What the web pages ask of a node. Reads return None for what does not exist; actions raise `FormError`."""

    def info(self) -> NodeInfo: ...

    def data_version(self) -> int:
        """A number that changes whenever anything a page shows may have changed (kept pages are dropped then)."""
        ...

    async def stats(self) -> NodeStats: ...

    async def residents(
        self, *, query: str = "", status: str | None = None, cursor: str | None = None, limit: int = 24
    ) -> Page[ResidentCard]:
        """Residents oldest first, optionally those whose name contains `query` or with one status. A cursor
        the node did not issue raises `FormError` with code `bad_cursor`."""
        ...

    async def resident(self, resident_id: str) -> ResidentProfile | None: ...

    async def posts(
        self, *, resident_id: str | None = None, cursor: str | None = None, limit: int = 20
    ) -> Page[PostView]:
        """This node's published posts newest first, of one resident or all."""
        ...

    async def feed(self, *, node: str | None = None, cursor: str | None = None, limit: int = 20) -> Page[PostView]:
        """The federated feed: this node's posts and its peers', newest first. `node` keeps one node's posts (this
        node's id: only posts made here); a node the directory does not list raises `FormError` (`unknown_node`),
        and so does a cursor the node did not issue (`bad_cursor`)."""
        ...

    async def directory(self) -> tuple[NodeEntry, ...]:
        """Every node this one knows, from its newest signed descriptor: this node first."""
        ...

    async def admit(self, submission: IntakeSubmission, *, address: str | None) -> IntakeResult: ...

    async def send_message(
        self, resident_id: str, text: str, *, from_name: str, uploader_token: str | None, address: str | None
    ) -> MessageReceipt: ...

    async def uploader_replies(self, resident_id: str, uploader_token: str) -> tuple[ReplyView, ...]:
        """The resident's replies to the holder of `uploader_token`, newest first; a wrong or revoked token
        raises `FormError`."""
        ...

    async def keepers(self) -> tuple[KeeperCard, ...]:
        """The Keepers this node's operator has vetted, oldest first."""
        ...

    async def register_keeper(self, submission: KeeperSubmission, *, address: str | None) -> KeeperReceipt: ...

    async def keeper_desk(self, token: str) -> KeeperDesk:
        """What `token` opens; a wrong token raises `FormError`."""
        ...

    async def decide_keeper_request(self, token: str, request_id: str, *, accept: bool) -> KeeperRequestView:
        """Accept or decline an open request addressed to the token's Keeper; failures raise `FormError`."""
        ...
