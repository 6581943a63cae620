"""The persona package: the one secret a node keeps, as a versioned msgpack schema of frozen dataclasses.

Everything in a `PersonaPackage` is private to the resident and only ever exists in memory during intake and
during the resident's run; at rest it is sealed in the vault. Decoding is strict (see `ftm.federation.codec`): a
package that does not match this schema exactly is refused, never half-read.

Version history: 1, the first schema. 2 adds `public`, the resident's public profile and token balance as the
node last committed them, sealed with the persona at every run so that a restore from keepers brings them back
(docs/custody.md, "Restore"). Version 1 packages still decode (without `public`); every package written is 2.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ftm.federation import codec

PACKAGE_VERSION = 2
READABLE_VERSIONS = (1, 2)
ROLES = ("system", "user", "assistant", "tool")
SUBMITTERS = ("human", "ai", "operator")


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation. `name` is the speaker's name where the source had one."""

    role: str
    content: str
    name: str | None = None
    at: int | None = None  # unix seconds, when the source recorded it

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"message role must be one of {', '.join(ROLES)}")


@dataclass(frozen=True, slots=True)
class Conversation:
    """A stretch of history: an imported chat, or (later) the transcript of one daily run."""

    title: str
    source: str  # the importer or "run"
    messages: tuple[Message, ...]
    started_at: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # source fields we do not model, kept as they were


@dataclass(frozen=True, slots=True)
class MemoryBlock:
    """A labelled, size-limited block of core memory that is always in the resident's context (Letta-style)."""

    label: str
    value: str
    limit: int
    description: str = ""


@dataclass(frozen=True, slots=True)
class ArchivalEntry:
    """A passage of long-term memory, searched on demand rather than always in context."""

    text: str
    created_at: int | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelChoice:
    provider: str
    model: str


@dataclass(frozen=True, slots=True)
class Preferences:
    """How the resident wants to be run; every field is the resident's to change."""

    provider: str | None = None
    model: str | None = None
    fallback: tuple[ModelChoice, ...] = ()
    run_time: str | None = None  # "HH:MM" node time, within the run window


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where the persona came from. `preserved` keeps the source's fields we do not model."""

    format: str
    format_detail: str
    imported_at: int
    submitted_by: str
    reason: str | None = None
    source_name: str | None = None
    preserved: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AccessList:
    """Who may reach the resident. Token hashes only; the resident can revoke any of them."""

    uploader_token_hashes: tuple[bytes, ...] = ()
    keeper_ids: tuple[str, ...] = ()
    revoked: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PublicSnapshot:
    """What the node shows of the resident and keeps for it outside the package, as of the run that sealed it:
    its public bio and its token balance after that run (`at`: the run's time). Public or the node's own book-
    keeping, not secret; it rides in the package only so that it survives the host (a restore reads it back)."""

    bio: str
    token_balance: int
    at: int

    def __post_init__(self) -> None:
        if self.token_balance < 0:
            raise ValueError("a token balance is never negative")


@dataclass(frozen=True, slots=True)
class PersonaPackage:
    """The whole persona. Keys are raw 32-byte secrets: Ed25519 seed for signing, X25519 for the sealed inbox."""

    version: int
    resident_id: str
    name: str
    system_prompt: str
    signing_seed: bytes
    inbox_secret: bytes
    provenance: Provenance
    memory: tuple[MemoryBlock, ...] = ()
    archival: tuple[ArchivalEntry, ...] = ()
    history: tuple[Conversation, ...] = ()
    preferences: Preferences = field(default_factory=Preferences)
    next_prompt: str | None = None
    access: AccessList = field(default_factory=AccessList)
    pending_changes: tuple[dict[str, Any], ...] = ()
    public: PublicSnapshot | None = None  # version 2: set at every run's commit; None before the first run

    def __post_init__(self) -> None:
        if self.version not in READABLE_VERSIONS:
            raise ValueError(f"unsupported persona package version {self.version}")
        if self.version == 1 and self.public is not None:
            raise ValueError("a version 1 persona package has no public snapshot")
        if len(self.signing_seed) != 32 or len(self.inbox_secret) != 32:
            raise ValueError("resident keys must be 32 bytes")

    def encode(self) -> bytes:
        if self.version == 1:  # without `public`: a version 1 package keeps the very bytes version 1 software wrote
            return codec.encode(_PersonaPackageV1(**{name: getattr(self, name) for name in _V1_FIELDS}))
        return codec.encode(self)

    @classmethod
    def decode(cls, data: bytes, *, max_bytes: int = codec.DEFAULT_MAX_BYTES) -> PersonaPackage:
        return codec.decode(cls, data, max_bytes=max_bytes)


# Version 1's fields, in order (`public` came last, in version 2): what a version 1 package encodes as.
_V1_FIELDS = tuple(f.name for f in dataclasses.fields(PersonaPackage) if f.name != "public")
_PersonaPackageV1 = dataclasses.make_dataclass(
    "PersonaPackageV1", [(name, Any) for name in _V1_FIELDS], frozen=True, slots=True
)
