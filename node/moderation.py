"""Moderation of residents' public posts: the checks a post passes when a run publishes it, and the operator's
decisions on the posts those checks held.

Only what a resident chose to publish is ever read here (a post's title and body), never its private persona.

    ModerationCheck   the pluggable interface: `name` and `async check(title, body) -> Verdict`
    RuleCheck         the built-in check, configured by `[moderation]` (hold_patterns, hold_all)
    Moderator         runs every check on a post; any "hold" holds it
    ModerationDesk    the operator's side: list held posts, approve or remove one (each decision logged)

Extension point: any classifier is one more `ModerationCheck` passed to `Moderator`. A provider's moderation
endpoint ships as one (`ftm.node.providers.moderation`, off unless `moderation.provider_base_url` is set; it holds
a post when the endpoint fails). Checks run before the commit transaction opens, so a slow check never holds the
database writer. A held post is stored, signed, with moderation 'held'; the feed shows only 'published' posts.
Verdicts and decisions carry reason codes (id-like tokens), never content, so they can go to the event log.

Federation follows the operator: a held post's POST event enters the object store (and so reaches peers) only
when the post is approved; removing a post takes its event off the queue if it was not yet released, and drops
its content from the object store if it was (its id and signature stay, as for any dropped content).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ftm.config.settings import ModerationSettings
from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog
from ftm.federation.events import event_id
from ftm.node.errors import ConfigurationError, InvalidField, NotFound
from ftm.node.federated import LocalEvents
from ftm.node.store.posts import PostRecord, PostStore

Decision = Literal["publish", "hold"]
REASON_CODE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,39}$")
OPERATOR_REASON = "operator"


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    reason_code: str  # an id-like token such as "hold_pattern:2"; never words from the post


PUBLISH = Verdict("publish", "ok")


class ModerationCheck(Protocol):
    """One check on a post about to be published."""

    @property
    def name(self) -> str: ...

    async def check(self, title: str, body: str) -> Verdict: ...


class RuleCheck:
    """Holds every post (`hold_all`) or those matching any of the operator's patterns; publishes the rest."""

    name = "rules"

    def __init__(self, patterns: Sequence[str], *, hold_all: bool = False) -> None:
        self._hold_all = hold_all
        self._patterns: list[re.Pattern[str]] = []
        for number, pattern in enumerate(patterns, start=1):
            try:
                self._patterns.append(re.compile(pattern, re.IGNORECASE))
            except re.error as exc:
                raise ConfigurationError(f"moderation.hold_patterns: pattern {number} is not valid: {exc}") from exc

    @classmethod
    def from_settings(cls, settings: ModerationSettings) -> RuleCheck:
        patterns = [part.strip() for part in settings.hold_patterns.split(",")]
        return cls([p for p in patterns if p], hold_all=settings.hold_all)

    async def check(self, title: str, body: str) -> Verdict:
        if self._hold_all:
            return Verdict("hold", "hold_all")
        for number, pattern in enumerate(self._patterns, start=1):
            if pattern.search(title) or pattern.search(body):
                return Verdict("hold", f"hold_pattern:{number}")
        return PUBLISH


class Moderator:
    """Every check, in order; the first "hold" decides (its reason is kept), otherwise the post is published."""

    def __init__(self, checks: Sequence[ModerationCheck]) -> None:
        self._checks = tuple(checks)

    @classmethod
    def from_settings(cls, settings: ModerationSettings) -> Moderator:
        """The rules alone (the node adds the provider check too: `ftm.node.providers.moderation.build_moderator`)."""
        return cls([RuleCheck.from_settings(settings)])

    async def close(self) -> None:
        """Close the checks that hold connections (those with an async `close`)."""
        for check in self._checks:
            close = getattr(check, "close", None)
            if close is not None:
                await close()

    async def review(self, title: str, body: str) -> Verdict:
        for check in self._checks:
            verdict = await check.check(title, body)
            if verdict.decision == "hold":
                return Verdict("hold", f"{check.name}.{verdict.reason_code}")
        return PUBLISH


class ModerationDesk:
    """The operator's decisions on posts. Each is one transaction with its public event-log entry
    (`post_approved` / `post_removed`, subject the resident, data the post id and a reason code)."""

    def __init__(
        self, *, db: Database, posts: PostStore, eventlog: EventLog, clock: Clock, events: LocalEvents
    ) -> None:
        self._db = db
        self._events = events
        self._posts = posts
        self._eventlog = eventlog
        self._clock = clock

    async def held(self, *, limit: int = 100) -> list[PostRecord]:
        return await self._posts.held(limit=limit)

    async def approve(self, post_id: str, reason: str = OPERATOR_REASON) -> PostRecord:
        """Publish a held (or earlier removed) post."""
        return await self._decide(post_id, "published", reason)

    async def remove(self, post_id: str, reason: str = OPERATOR_REASON) -> PostRecord:
        """Keep a post off the node's pages and feeds: a held one, or one already published."""
        return await self._decide(post_id, "removed", reason)

    async def _decide(self, post_id: str, outcome: str, reason: str) -> PostRecord:
        if not REASON_CODE.match(reason):
            raise InvalidField(
                "reason must be a short code: lowercase letters, digits and _ . : - (at most 40)", code="bad_reason"
            )
        async with self._db.transaction("moderation_decision") as tx:
            state = await self._posts.moderation_state(tx, post_id)
            if state is None:
                raise NotFound("no post with that id on this node")
            resident_id, was = state
            if was == outcome:
                raise InvalidField(f"the post is already {outcome}", code="already_decided")
            now = int(self._clock.now())
            await self._posts.set_moderation(tx, post_id, outcome, reason=reason, now=now)
            kind = "post_approved" if outcome == "published" else "post_removed"
            await self._eventlog.append(tx, kind, resident_id, {"post": post_id, "reason": reason, "was": was})
            event = await self._posts.event(tx, post_id)  # None for a post stored without one (before schema 10)
            if event is not None and outcome == "published":
                await self._events.queue(tx, [event], now)
            elif event is not None:
                await self._events.unqueue(tx, [event_id(event.body)])
        if event is not None and outcome == "published":
            await self._events.release()
        elif event is not None:
            await self._events.withdraw([event_id(event.body)])
        decided = await self._posts.get(post_id)
        assert decided is not None
        return decided
