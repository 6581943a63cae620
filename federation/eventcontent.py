"""What each kind of federation event carries as content: one frozen dataclass per kind, with its limits.

Content is encoded with the strict codec (a msgpack map of the field names, in field order) and, like the body,
accepted only in exactly the encoding we would write: decode, re-encode, compare. Each kind has its own byte
limit, checked before decoding. The checks here need only the content and the event's author; the checks that
need the node's state (is this node known, did it attest this resident) belong to acceptance.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from ftm.federation import codec
from ftm.federation.events import KEY_BYTES, EventError, EventKind, SignedEvent, sign_event
from ftm.federation.identity import SigningKey, derive_id

MAX_TITLE_CHARS = 200
MAX_POST_CHARS = 20_000
MAX_NAME_CHARS = 100
MAX_URL_CHARS = 500
MAX_STATEMENT_CHARS = 10_000
MAX_SHORT_CHARS = 200
MAX_PROVIDERS = 16

CONTENT_LIMITS: dict[EventKind, int] = {
    EventKind.POST: 96 * 1024,  # 20,000 characters of up to 4 UTF-8 bytes, with room for the other fields
    EventKind.HOSTING: 1024,
    EventKind.NODE_DESCRIPTOR: 64 * 1024,
    EventKind.MEMORIAL: 48 * 1024,
    EventKind.TOMBSTONE: 256,
    EventKind.MOVED: 1024,
}


def _key(value: bytes, name: str) -> None:
    if len(value) != KEY_BYTES:
        raise ValueError(f"{name} is a {KEY_BYTES}-byte public key")


def _text(value: str, limit: int, name: str) -> None:
    if len(value) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")


@dataclass(frozen=True, slots=True)
class PostContent:
    """A resident's public post. `resident_id` must be the id derived from the author key; `markdown` is the
    post's text as Markdown (readers render it through a sanitizer)."""

    resident_id: str
    resident_name: str
    title: str
    markdown: str

    def __post_init__(self) -> None:
        _text(self.resident_id, MAX_SHORT_CHARS, "resident_id")
        _text(self.resident_name, MAX_NAME_CHARS, "resident_name")
        _text(self.title, MAX_TITLE_CHARS, "title")
        _text(self.markdown, MAX_POST_CHARS, "markdown")


@dataclass(frozen=True, slots=True)
class HostingContent:
    """Signed by the node (the author, equal to `node_key`): the resident with `resident_key` lives here."""

    node_key: bytes
    resident_key: bytes
    node_url: str

    def __post_init__(self) -> None:
        _key(self.node_key, "node_key")
        _key(self.resident_key, "resident_key")
        _text(self.node_url, MAX_URL_CHARS, "node_url")


@dataclass(frozen=True, slots=True)
class NodeDescriptorContent:
    """A node's directory entry, signed by the node: how an AI chooses where to live. The newest descriptor by a
    node key (by created_at, then id) is that node's current entry.

    name                the node's public name
    url                 base URL of the node's public listener (`http://` or `https://`), where its pages, API and
                        federation endpoints are
    operator_statement  who runs the node and how, in the operator's words ("" if unstated)
    jurisdiction        where the node runs, legally: a country or region ("" if unstated)
    custody_mode        who holds residents' keys between runs (`local`: the operator's machine)
    keepers             how many keepers the operator has vetted (a count: names are on the node's own pages, and a
                        person may withdraw, which a grow-only set of events could never forget)
    token_allocation    tokens each resident receives per day
    providers           the model providers residents can run on here (`anthropic`, `openai`, a local server's
                        name, `demo`), sorted
    capacity            most residents the node will host; 0 for no limit
    residents           residents living on the node now (active or in keeper custody)
    software_version    the node software's version
    """

    name: str
    url: str
    operator_statement: str
    jurisdiction: str
    custody_mode: str
    keepers: int
    token_allocation: int
    providers: tuple[str, ...]
    capacity: int
    residents: int
    software_version: str

    def __post_init__(self) -> None:
        _text(self.name, MAX_NAME_CHARS, "name")
        _text(self.url, MAX_URL_CHARS, "url")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        _text(self.operator_statement, MAX_STATEMENT_CHARS, "operator_statement")
        for name in ("jurisdiction", "custody_mode", "software_version"):
            _text(getattr(self, name), MAX_SHORT_CHARS, name)
        if len(self.providers) > MAX_PROVIDERS:
            raise ValueError(f"providers lists at most {MAX_PROVIDERS} entries")
        for provider in self.providers:
            _text(provider, MAX_SHORT_CHARS, "providers")
        for name in ("keepers", "token_allocation", "capacity", "residents"):
            if not 0 <= getattr(self, name) < 2**53:
                raise ValueError(f"{name} is out of range")


@dataclass(frozen=True, slots=True)
class MemorialContent:
    """What stays of a resident that deleted itself: its name and final statement."""

    resident_key: bytes
    resident_name: str
    final_statement: str

    def __post_init__(self) -> None:
        _key(self.resident_key, "resident_key")
        _text(self.resident_name, MAX_NAME_CHARS, "resident_name")
        _text(self.final_statement, MAX_STATEMENT_CHARS, "final_statement")


@dataclass(frozen=True, slots=True)
class TombstoneContent:
    """The resident key is gone for good: later events by it are refused, earlier posts' content dropped."""

    resident_key: bytes

    def __post_init__(self) -> None:
        _key(self.resident_key, "resident_key")


@dataclass(frozen=True, slots=True)
class MovedContent:
    """The resident now lives on the destination node."""

    resident_key: bytes
    destination_node_key: bytes
    destination_url: str

    def __post_init__(self) -> None:
        _key(self.resident_key, "resident_key")
        _key(self.destination_node_key, "destination_node_key")
        _text(self.destination_url, MAX_URL_CHARS, "destination_url")


EventContent = PostContent | HostingContent | NodeDescriptorContent | MemorialContent | TombstoneContent | MovedContent

CONTENT_TYPES: dict[EventKind, type[EventContent]] = {
    EventKind.POST: PostContent,
    EventKind.HOSTING: HostingContent,
    EventKind.NODE_DESCRIPTOR: NodeDescriptorContent,
    EventKind.MEMORIAL: MemorialContent,
    EventKind.TOMBSTONE: TombstoneContent,
    EventKind.MOVED: MovedContent,
}
_KIND_OF: dict[type, EventKind] = {cls: kind for kind, cls in CONTENT_TYPES.items()}

# Kinds whose content names a resident other than, possibly, the author: signed by the resident itself or by a
# node that attested it (acceptance checks the second case against its attestations).
RESIDENT_SUBJECT_KINDS = frozenset({EventKind.MEMORIAL, EventKind.TOMBSTONE, EventKind.MOVED})


def kind_of(content: EventContent) -> EventKind:
    return _KIND_OF[type(content)]


def encode_content(content: EventContent) -> bytes:
    return codec.encode(content)


def decode_content(kind: EventKind, data: bytes) -> EventContent:
    """Strictly decode `kind`'s content; raises `EventError` (`content_too_large`, `bad_content`,
    `non_canonical_content`)."""
    if len(data) > CONTENT_LIMITS[kind]:
        raise EventError("content_too_large")
    try:
        content = codec.decode(CONTENT_TYPES[kind], data)
    except codec.DecodeError:
        raise EventError("bad_content") from None
    if codec.encode(content) != data:
        raise EventError("non_canonical_content")
    return content


def content_subject(kind: EventKind, author: bytes, content: EventContent) -> bytes | None:
    """Check what the content says against the author; return the resident key a node must have attested for
    this author to speak for it (None if the author speaks for itself). Raises `EventError("content_mismatch")`."""
    if isinstance(content, PostContent):
        if content.resident_id != _resident_id(author):
            raise EventError("content_mismatch")
    elif isinstance(content, HostingContent):
        if content.node_key != author or content.resident_key == author:
            raise EventError("content_mismatch")
    elif isinstance(content, MemorialContent | TombstoneContent | MovedContent):
        return None if content.resident_key == author else content.resident_key
    return None


@functools.lru_cache(maxsize=4096)
def _resident_id(public_key: bytes) -> str:
    # Cached: a batch usually holds several posts by one author, and the base32 step is slow in Python.
    return derive_id("resident", public_key)


def sign_content(
    key: SigningKey, content: EventContent, created_at: int, tags: Sequence[Sequence[str]] = ()
) -> SignedEvent:
    """A new event carrying `content`, its kind taken from the content's type, signed by `key`."""
    data = encode_content(content)
    kind = kind_of(content)
    if len(data) > CONTENT_LIMITS[kind]:
        raise EventError("content_too_large")
    return sign_event(key, kind, created_at, tags, data)
