"""A run's working state: what the resident has changed and chosen so far, applied only when the run commits.

Tools never write to the database or the vault directly. They record intentions here (a post, a memory edit,
a reply, a revocation); the engine turns the final state into one new persona package and one database
transaction. A run that dies half-way therefore changes nothing, and its day stays open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ftm.node.persona import ArchivalEntry, MemoryBlock, PersonaPackage, Preferences
from ftm.node.run.fence import Fence
from ftm.node.store.residents import ResidentRecord
from ftm.node.vaultpack import PackBase


@dataclass(frozen=True, slots=True)
class NewPost:
    title: str
    body: str


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message the resident writes: to its uploader, to its keeper, or in reply to an inbox message."""

    recipient_kind: str  # "uploader" | "keeper"
    recipient_ref: str  # token-hash hex for the uploader, keeper id for a keeper
    text: str
    in_reply_to: str | None = None


@dataclass(frozen=True, slots=True)
class KeeperRequest:
    keeper_id: str


@dataclass(frozen=True, slots=True)
class Revocation:
    """Access the resident withdrew: "uploader" (every uploader token) or a keeper id."""

    target: str


@dataclass(frozen=True, slots=True)
class Deletion:
    final_statement: str


@dataclass(frozen=True, slots=True)
class MoveRequest:
    """A move to another node the resident asked for (`request_move`): recorded when the run commits."""

    node_key: bytes
    node_id: str
    url: str


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """A copy of the resident for one of its Keepers (`export_self`): sealed and recorded when the run commits."""

    keeper_id: str
    note: str = ""


@dataclass
class TokenBudget:
    """Tokens this run may spend. `banked` is what the resident set aside for a later, longer run."""

    available: int
    used: int = 0
    banked: int = 0

    @property
    def remaining(self) -> int:
        return max(0, self.available - self.banked - self.used)

    def charge(self, tokens: int) -> None:
        self.used += tokens


@dataclass
class RunSession:
    """Mutable, in memory only, for the length of one run."""

    resident: ResidentRecord
    package: PersonaPackage
    base: PackBase | None  # what sealing the next epoch may carry over from the opened one (memory only)
    day: str
    now: int
    fence: Fence
    budget: TokenBudget
    # The resident's editable self, starting from the package:
    name: str = ""
    bio: str = ""
    system_prompt: str = ""
    memory: list[MemoryBlock] = field(default_factory=list)
    archival: list[ArchivalEntry] = field(default_factory=list)
    preferences: Preferences = field(default_factory=Preferences)
    next_prompt: str | None = None  # the run time lives in preferences.run_time
    # What the run has done or decided:
    posts: list[NewPost] = field(default_factory=list)
    outgoing: list[OutgoingMessage] = field(default_factory=list)
    delivered_message_ids: list[str] = field(default_factory=list)
    keeper_requests: list[KeeperRequest] = field(default_factory=list)
    revocations: list[Revocation] = field(default_factory=list)
    staged: list[dict[str, Any]] = field(default_factory=list)  # consequential changes awaiting next run
    deletion: Deletion | None = None
    move: MoveRequest | None = None
    exports: list[ExportRequest] = field(default_factory=list)
    untrusted_read: bool = False  # set once any outside text entered this run
    ended: bool = False

    @classmethod
    def start(
        cls,
        *,
        resident: ResidentRecord,
        package: PersonaPackage,
        day: str,
        now: int,
        fence: Fence,
        budget: TokenBudget,
        base: PackBase | None = None,
    ) -> RunSession:
        return cls(
            resident=resident,
            package=package,
            base=base,
            day=day,
            now=now,
            fence=fence,
            budget=budget,
            name=resident.display_name,
            bio=resident.bio,
            system_prompt=package.system_prompt,
            memory=list(package.memory),
            archival=list(package.archival),
            preferences=package.preferences,
            next_prompt=package.next_prompt,
        )

    def stage(self, change: dict[str, Any]) -> None:
        """Hold a consequential change for confirmation at the start of the next run."""
        self.staged.append(change)
