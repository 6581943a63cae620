"""Event acceptance: every event a node receives passes these checks, cheapest first, and gets one answer.

Order (architecture §6): size → structure → id → duplicate → clock → block lists, rules and rate limits →
signature → content hash and content → store → forward. Answers: `ok`, `duplicate`, `invalid:<reason>`,
`rate-limited`, `blocked`, each counted, and invalid ones counted by reason. A duplicate never costs a signature
check, and nothing refused before the signature step costs one either.

Events come in batches (a peer's push, a fetch answer, a reconciliation round), because a batch makes the
expensive parts cheap: one database read finds the duplicates, signatures are verified in one pass in a worker
thread (libsodium releases the GIL, so the event loop keeps serving), and the accepted events are stored in one
transaction, so one fsync. See `docs/federation.md` for the rules each step applies.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from ftm.federation.clock import Clock
from ftm.federation.eventchecks import Verified, check_contents, merge, parse_all, verify_all
from ftm.federation.eventcontent import HostingContent, TombstoneContent
from ftm.federation.events import EventKind, ParsedEvent, SignedEvent, signatures_valid
from ftm.federation.objectstore import Attestation, NewEvent, ObjectStore, Tombstone
from ftm.federation.ratelimits import Rate, TokenBuckets

MAX_FUTURE_SECONDS = 15 * 60
PEER_RATE = Rate(per_second=1000, burst=10_000)  # generous: catching up after downtime is legitimate
AUTHOR_RATE = Rate(per_second=50, burst=1000)
_POST, _HOSTING = EventKind.POST, EventKind.HOSTING  # plain names: enum member lookups are slow in 3.11
_NONE: frozenset[bytes] = frozenset()
PARALLEL_FROM = 64  # events in a batch from which its checks are spread over several worker threads


class Status(StrEnum):
    OK = "ok"
    DUPLICATE = "duplicate"
    INVALID = "invalid"
    RATE_LIMITED = "rate-limited"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class Answer:
    status: Status
    reason: str = ""  # for `invalid` only: a stable code such as `bad_signature`

    def __str__(self) -> str:
        return f"invalid:{self.reason}" if self.status is Status.INVALID else self.status.value


OK = Answer(Status.OK)
DUPLICATE = Answer(Status.DUPLICATE)
RATE_LIMITED = Answer(Status.RATE_LIMITED)
BLOCKED = Answer(Status.BLOCKED)


def invalid(reason: str) -> Answer:
    return Answer(Status.INVALID, reason)


class KnownNodes(Protocol):
    """Which node keys belong to nodes we know (the peer table); only their attestations count."""

    async def known_node_keys(self, keys: frozenset[bytes]) -> frozenset[bytes]: ...


class StaticKnownNodes:
    """A fixed set of known node keys (tests, and a node that knows only itself)."""

    def __init__(self, keys: Sequence[bytes] = ()) -> None:
        self.keys = set(keys)

    async def known_node_keys(self, keys: frozenset[bytes]) -> frozenset[bytes]:
        return keys & self.keys


@dataclass
class Blocklist:
    """Authors and origin peers whose events are refused (`blocked`) before any signature is checked."""

    authors: set[bytes] = field(default_factory=set)
    peers: set[bytes] = field(default_factory=set)

    def blocks(self, author: bytes, origin: bytes | None) -> bool:
        return author in self.authors or (origin is not None and origin in self.peers)


@dataclass(frozen=True, slots=True)
class AcceptanceLimits:
    max_future_seconds: int = MAX_FUTURE_SECONDS
    per_peer: Rate = PEER_RATE
    per_author: Rate = AUTHOR_RATE
    verify_threads: int = 2  # worker threads a large batch's signature checks are split across


@dataclass
class AcceptanceCounters:
    """Answers given since start, by status, and invalid answers by reason; signatures verified."""

    answers: Counter[str] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)
    signatures_checked: int = 0

    def count(self, answers: Sequence[Answer]) -> None:
        self.answers.update(answer.status.value for answer in answers)
        self.invalid.update(answer.reason for answer in answers if answer.reason)


@dataclass(frozen=True, slots=True)
class IngestResult:
    answers: tuple[Answer, ...]  # one per event received, in order
    forward: tuple[SignedEvent, ...]  # the events accepted now, as stored (content dropped if it was)
    stored: tuple[tuple[int, bytes], ...]  # their (created_at, id), in the same order: for the reconciliation index


class Acceptance:
    def __init__(
        self,
        store: ObjectStore,
        known_nodes: KnownNodes,
        clock: Clock,
        *,
        limits: AcceptanceLimits | None = None,
        blocklist: Blocklist | None = None,
        executor: Executor | None = None,
    ) -> None:
        self._store = store
        self._known = known_nodes
        self._clock = clock
        self.limits = limits or AcceptanceLimits()
        self.blocklist = blocklist or Blocklist()
        self._executor = executor  # None: the loop's default executor
        self._peer_buckets = TokenBuckets(self.limits.per_peer, clock)
        self._author_buckets = TokenBuckets(self.limits.per_author, clock)
        self.counters = AcceptanceCounters()

    async def accept(self, events: Sequence[SignedEvent], origin: bytes | None = None) -> IngestResult:
        """Check, store and answer a batch. `origin` is the sending peer's node key, or None for events made on
        this node, which are exempt from rate limits but checked like any other."""
        batch = _Batch(len(events))
        loop = asyncio.get_running_loop()
        parsed = await loop.run_in_executor(self._executor, parse_all, events)
        for index, result in enumerate(parsed):
            if isinstance(result, str):
                batch.answer(index, invalid(result))
            else:
                batch.live[index] = result
        await self._refuse_duplicates(batch)
        self._refuse_future(batch)
        await self._apply_rules(batch, origin)
        await self._verify(batch)
        await self._settle_batch_dependencies(batch)
        stored = await self._store_accepted(batch, origin)
        answers = batch.finish()
        self.counters.count(answers)
        return IngestResult(answers, tuple(new.event for new in stored), tuple((n.created_at, n.id) for n in stored))

    async def _refuse_duplicates(self, batch: _Batch) -> None:
        stored = await self._store.has_many([p.id for p in batch.live.values()])
        seen: set[bytes] = set()
        for index, parsed in list(batch.live.items()):
            if parsed.id in stored or parsed.id in seen:
                batch.answer(index, DUPLICATE)
            seen.add(parsed.id)

    def _refuse_future(self, batch: _Batch) -> None:
        horizon = self._clock.now() + self.limits.max_future_seconds
        for index, parsed in list(batch.live.items()):
            if parsed.body.created_at > horizon:
                batch.answer(index, invalid("future"))

    async def _apply_rules(self, batch: _Batch, origin: bytes | None) -> None:
        """Block lists, tombstones, attestation of posts' authors, then rate limits (tokens are spent only by
        events that passed everything else before the signature check)."""
        for index, parsed in list(batch.live.items()):
            if self.blocklist.blocks(parsed.body.author, origin):
                batch.answer(index, BLOCKED)
        if not batch.live:
            return
        batch.tombstones = await self._store.tombstones({p.body.author for p in batch.live.values()})
        post_authors = {p.body.author for p in batch.live.values() if p.body.kind is _POST}
        batch.attesting = await self._store.attesting_nodes(post_authors)
        hosting_nodes = {p.body.author for p in batch.live.values() if p.body.kind is _HOSTING}
        candidates = frozenset(hosting_nodes.union(*batch.attesting.values()))
        batch.known = set(await self._known.known_node_keys(candidates)) if candidates else set()
        attestation_may_follow = not hosting_nodes.isdisjoint(batch.known)
        for index, parsed in list(batch.live.items()):
            body = parsed.body
            tombstoned_at = batch.tombstones.get(body.author)
            if tombstoned_at is not None and body.created_at > tombstoned_at:
                batch.answer(index, invalid("tombstoned"))
            elif body.kind is _POST and batch.attesting.get(body.author, _NONE).isdisjoint(batch.known):
                if attestation_may_follow:
                    batch.unattested_posts.add(index)  # settled after this batch's hosting events are verified
                else:
                    batch.answer(index, invalid("unattested"))
        if origin is not None:
            self._rate_limit(batch, origin)

    def _rate_limit(self, batch: _Batch, origin: bytes) -> None:
        """Spend the peer's tokens, then each author's, in the order the events came: one bucket update per key
        instead of two per event, with the same outcome."""
        now = self._clock.now()
        live = list(batch.live.items())
        allowed = self._peer_buckets.take_many(origin, len(live), now)
        for index, _ in live[allowed:]:
            batch.answer(index, RATE_LIMITED)
        by_author: dict[bytes, list[int]] = {}
        for index, parsed in live[:allowed]:
            by_author.setdefault(parsed.body.author, []).append(index)
        for author, indexes in by_author.items():
            for index in indexes[self._author_buckets.take_many(author, len(indexes), now) :]:
                batch.answer(index, RATE_LIMITED)

    async def _verify(self, batch: _Batch) -> None:
        """Signatures, then content hashes and content. For a large batch the signature checks are split across
        `verify_threads` worker threads and the content checks run beside them in one more; each event's answer
        is still that of the first step it fails, in order."""
        items = list(batch.live.items())
        if not items:
            return
        self.counters.signatures_checked += len(items)
        parsed = [p for _, p in items]
        loop = asyncio.get_running_loop()
        if len(parsed) < PARALLEL_FROM:  # small batches: one thread hop is cheaper than several
            results = await loop.run_in_executor(self._executor, verify_all, parsed)
        else:
            threads = max(1, self.limits.verify_threads)
            size = -(-len(parsed) // threads)
            contents = loop.run_in_executor(self._executor, check_contents, parsed)
            parts = await asyncio.gather(
                *(
                    loop.run_in_executor(self._executor, signatures_valid, parsed[start : start + size])
                    for start in range(0, len(parsed), size)
                )
            )
            results = merge([valid for part in parts for valid in part], await contents)
        for (index, _), result in zip(items, results, strict=True):
            if isinstance(result, str):
                batch.answer(index, invalid(result))
            else:
                batch.verified[index] = result

    async def _settle_batch_dependencies(self, batch: _Batch) -> None:
        """The rules that need content or other events of this batch: nodes speaking for residents, posts whose
        attestation came in this batch, and this batch's tombstones (docs/federation.md, step 6 and 8)."""
        hosted = self._batch_attestations(batch)
        await self._check_speakers(batch, hosted)
        for index in batch.unattested_posts & batch.live.keys():
            author = batch.live[index].body.author
            if not any(resident == author and node in batch.known for resident, node in hosted):
                batch.answer(index, invalid("unattested"))
        for index, verified in batch.verified.items():
            if index in batch.live and isinstance(verified.content, TombstoneContent):
                created_at = batch.live[index].body.created_at
                key = verified.content.resident_key
                batch.tombstones[key] = min(created_at, batch.tombstones.get(key, created_at))
        for index, parsed in list(batch.live.items()):
            tombstoned_at = batch.tombstones.get(parsed.body.author)
            if tombstoned_at is not None and parsed.body.created_at > tombstoned_at:
                batch.answer(index, invalid("tombstoned"))

    async def _check_speakers(self, batch: _Batch, hosted: set[tuple[bytes, bytes]]) -> None:
        """A memorial, tombstone or move signed by a node instead of its resident counts only if that node is
        one we know and attested the resident (before, or in this batch)."""
        speaking = {i: v.subject for i, v in batch.verified.items() if i in batch.live and v.subject is not None}
        if not speaking:
            return
        attesting = await self._store.attesting_nodes(set(speaking.values()))
        for resident, node in hosted:
            attesting.setdefault(resident, set()).add(node)
        known = await self._known.known_node_keys(frozenset(batch.live[i].body.author for i in speaking))
        for index, subject in speaking.items():
            author = batch.live[index].body.author
            if author not in known or author not in attesting.get(subject, set()):
                batch.answer(index, invalid("unauthorized"))

    @staticmethod
    def _batch_attestations(batch: _Batch) -> set[tuple[bytes, bytes]]:
        """(resident key, node key) pairs of this batch's hosting events that are still accepted."""
        return {
            (v.content.resident_key, batch.live[i].body.author)
            for i, v in batch.verified.items()
            if i in batch.live and isinstance(v.content, HostingContent)
        }

    async def _store_accepted(self, batch: _Batch, origin: bytes | None) -> list[NewEvent]:
        accepted: list[NewEvent] = []
        attestations: list[Attestation] = []
        tombstones: list[Tombstone] = []
        for index, parsed in sorted(batch.live.items()):
            body = parsed.body
            event = parsed.event
            content = batch.verified[index].content
            tombstoned_at = batch.tombstones.get(body.author)
            if body.kind is _POST and tombstoned_at is not None and event.content is not None:
                event = SignedEvent(event.body, event.signature, None)  # its author is gone: keep only the id
            accepted.append(NewEvent(parsed.id, body.kind, body.author, body.created_at, event, origin))
            if isinstance(content, HostingContent):
                attestations.append(
                    Attestation(content.resident_key, body.author, content.node_url, body.created_at, parsed.id)
                )
            elif isinstance(content, TombstoneContent):
                tombstones.append(Tombstone(content.resident_key, body.created_at, parsed.id))
        index_of = {parsed.id: index for index, parsed in batch.live.items()}
        inserted = await self._store.insert_many(accepted, attestations, tombstones)
        stored = []
        for new in accepted:
            index = index_of[new.id]
            if new.id in inserted:
                batch.answer(index, OK)
                stored.append(new)
            else:
                batch.answer(index, DUPLICATE)  # another batch stored it while this one was being checked
        return stored


class _Batch:
    """One batch in flight: answers so far, and the events still undecided (`live`) with what is known of them."""

    def __init__(self, size: int) -> None:
        self._answers: list[Answer | None] = [None] * size
        self.live: dict[int, ParsedEvent] = {}
        self.verified: dict[int, Verified] = {}
        self.tombstones: dict[bytes, int] = {}
        self.attesting: dict[bytes, set[bytes]] = {}
        self.known: set[bytes] = set()
        self.unattested_posts: set[int] = set()

    def answer(self, index: int, answer: Answer) -> None:
        self._answers[index] = answer
        self.live.pop(index, None)

    def finish(self) -> tuple[Answer, ...]:
        assert all(answer is not None for answer in self._answers), "every event gets an answer"
        return tuple(answer for answer in self._answers if answer is not None)
