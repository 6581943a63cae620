"""Range-based set reconciliation (the negentropy approach) over items (created_at, id): who has what we lack.

Two nodes each hold a `ReconcileIndex`. The initiator (client) opens with fingerprints of its whole set split into
ranges; the responder (server) answers each range: a matching fingerprint becomes Skip; a mismatch is split into
`buckets` sub-ranges by count with their fingerprints, or, when the responder holds `id_list_threshold` items or
fewer there, sent as an IdList of its ids. The client does the same with the reply, except that an IdList it
receives settles the range: it learns `have_ids` (it has, the server lacks) and `need_ids` (the reverse). An
IdList the server receives is answered with the server's own ids in that range. When a side has nothing but Skips
to say, the sets are reconciled. The server keeps no state between messages (`reconcile_respond` is a pure
function of its index and the message), so it can run behind any transport; `run_session` drives a client over
any `send(bytes) -> awaitable bytes` and counts round trips and bytes.

Work is bounded per message: decoding is linear in its size, each range costs O(log n + BLOCK_LOAD) to fingerprint
(see reconcileindex), a message has at most `Limits.max_ranges` ranges, and what we send is cut to
`Limits.max_message_bytes`: when the next range would not fit, the rest of the set is sent as one Fingerprint
range up to the end, which the other side simply splits again in the next round.

Limits (why the defaults): 8 buckets and id lists of at most 4 items put 100,000 items differing by one within
3 round trips and about 1 KB in all (tests/bench/bench_reconcile.py); a wider split costs more bytes per level.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ftm.federation.reconcileindex import FINGERPRINT_BYTES, ID_BYTES, TIMESTAMP_BYTES, ReconcileIndex
from ftm.federation.reconcilewire import (
    INFINITY,
    Limits,
    Mode,
    Range,
    ReconcileError,
    bound_timestamp,
    decode_message,
    encode_message,
    range_size,
)

__all__ = [
    "Limits",
    "ReconcileError",
    "ReconcileIndex",
    "ReconcileSession",
    "SessionResult",
    "reconcile_respond",
    "run_session",
]

DEFAULT_LIMITS = Limits()
DEFAULT_MAX_ROUND_TRIPS = 1024
_REMAINDER_BYTES = 2 + FINGERPRINT_BYTES  # a Fingerprint range up to INFINITY, kept in reserve


def separator(previous: bytes, following: bytes) -> bytes:
    """The shortest bound above item key `previous` and at most `following` (previous < following)."""
    if previous[:TIMESTAMP_BYTES] != following[:TIMESTAMP_BYTES]:
        return following[:TIMESTAMP_BYTES]
    shared = TIMESTAMP_BYTES
    while previous[shared] == following[shared]:
        shared += 1
    return following[: shared + 1]


class _Output:
    """Ranges being sent: merges neighbouring Skips, tracks the encoded size, and can roll back one step."""

    __slots__ = ("_limit_bytes", "_max_ranges", "before", "ranges", "size", "sizes")

    def __init__(self, limits: Limits) -> None:
        self.ranges: list[Range] = []
        self.sizes: list[int] = []
        self.before: list[int] = []  # the previous bound's timestamp, before each range
        self.size = 1  # the version byte
        self._limit_bytes = limits.max_message_bytes - _REMAINDER_BYTES
        self._max_ranges = limits.max_ranges

    def add(self, item: Range) -> None:
        if item.mode is Mode.SKIP and self.ranges and self.ranges[-1].mode is Mode.SKIP:
            self._pop()
        previous = bound_timestamp(self.ranges[-1].upper, self.before[-1]) if self.ranges else 0
        size = range_size(item, previous)
        self.ranges.append(item)
        self.sizes.append(size)
        self.before.append(previous)
        self.size += size

    def _pop(self) -> Range:
        self.before.pop()
        self.size -= self.sizes.pop()
        return self.ranges.pop()

    def mark(self) -> tuple[int, Range | None]:
        return len(self.ranges), self.ranges[-1] if self.ranges else None

    def rollback(self, mark: tuple[int, Range | None]) -> None:
        count, last = mark
        while len(self.ranges) >= count and self.ranges:
            self._pop()
        if last is not None:
            self.add(last)

    def room_for_ids(self) -> int:
        """How many ids an IdList added now could carry (its bound and count take at most 45 bytes)."""
        if len(self.ranges) + 2 > self._max_ranges:
            return 0  # no room for the IdList and the remainder after it
        return max(0, (self._limit_bytes - self.size - 48) // ID_BYTES)

    def over(self) -> bool:
        return self.size > self._limit_bytes or len(self.ranges) >= self._max_ranges  # one left for a remainder

    def finish(self) -> list[Range]:
        while self.ranges and self.ranges[-1].mode is Mode.SKIP:
            self._pop()  # ranges left out at the end are skipped
        return self.ranges


def _split(
    index: ReconcileIndex, lower: int, upper: int, bound: bytes, buckets: int, out: _Output, limits: Limits
) -> None:
    """Describe our items at positions lower..upper-1 (below `bound`): an IdList if few, else bucket fingerprints."""
    count = upper - lower
    if count <= limits.id_list_threshold:
        out.add(Range(bound, Mode.ID_LIST, ids=tuple(index.ids(lower, upper))))
        return
    buckets = min(buckets, count)
    base, extra = divmod(count, buckets)
    start = lower
    for number in range(buckets):
        end = start + base + (1 if number < extra else 0)
        upper_bound = bound if number == buckets - 1 else separator(index.key_at(end - 1), index.key_at(end))
        out.add(Range(upper_bound, Mode.FINGERPRINT, fingerprint=index.fingerprint(start, end)))
        start = end


def _answer_id_list(index: ReconcileIndex, lower: int, upper: int, item: Range, out: _Output) -> bool:
    """The responder's answer to an IdList: its own ids there, cut to fit. False when the message is full."""
    mine = index.ids(lower, upper)
    if len(mine) == len(item.ids) and set(mine) == set(item.ids):
        out.add(Range(item.upper, Mode.SKIP))
        return True
    room = out.room_for_ids()
    if len(mine) <= room:
        out.add(Range(item.upper, Mode.ID_LIST, ids=tuple(mine)))
        return True
    if room > 0:
        cut = lower + room
        bound = separator(index.key_at(cut - 1), index.key_at(cut))
        out.add(Range(bound, Mode.ID_LIST, ids=tuple(mine[:room])))
        lower = cut
    out.add(Range(INFINITY, Mode.FINGERPRINT, fingerprint=index.fingerprint(lower, len(index))))
    return False


def _process(
    index: ReconcileIndex,
    incoming: list[Range],
    limits: Limits,
    settled: tuple[dict[bytes, None], dict[bytes, None]] | None,
) -> list[Range]:
    """Our answer to `incoming`; `settled` is (have, need) for the initiator, None for the responder."""
    out = _Output(limits)
    lower = 0
    total = len(index)
    for item in incoming:
        upper = total if item.upper == INFINITY else index.position(item.upper)
        mark = out.mark()
        if item.mode is Mode.SKIP:
            out.add(item)
        elif item.mode is Mode.FINGERPRINT:
            if index.fingerprint(lower, upper) == item.fingerprint:
                out.add(Range(item.upper, Mode.SKIP))
            else:
                _split(index, lower, upper, item.upper, limits.buckets, out, limits)
        elif settled is not None:
            have, need = settled
            theirs = set(item.ids)
            for event_id in index.ids(lower, upper):
                if event_id in theirs:
                    theirs.discard(event_id)
                else:
                    have[event_id] = None
            for event_id in item.ids:
                if event_id in theirs:
                    need[event_id] = None
            out.add(Range(item.upper, Mode.SKIP))
        elif not _answer_id_list(index, lower, upper, item, out):
            break
        if out.over():
            out.rollback(mark)
            out.add(Range(INFINITY, Mode.FINGERPRINT, fingerprint=index.fingerprint(lower, total)))
            break
        lower = upper
    return out.finish()


def reconcile_respond(index: ReconcileIndex, message: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The server side: answer one message. Stateless; raises ReconcileError for a message it refuses."""
    return encode_message(_process(index, decode_message(message, limits), limits, None))


class ReconcileSession:
    """The client side of one reconciliation: `initiate()`, then `receive(reply)` until it returns None."""

    def __init__(self, index: ReconcileIndex, limits: Limits = DEFAULT_LIMITS) -> None:
        self._index = index
        self._limits = limits
        self._have: dict[bytes, None] = {}
        self._need: dict[bytes, None] = {}
        self.done = False

    @property
    def have_ids(self) -> tuple[bytes, ...]:
        """Ids we hold that the peer lacks (settled so far)."""
        return tuple(self._have)

    @property
    def need_ids(self) -> tuple[bytes, ...]:
        """Ids the peer holds that we lack (settled so far)."""
        return tuple(self._need)

    def initiate(self) -> bytes:
        out = _Output(self._limits)
        _split(self._index, 0, len(self._index), INFINITY, self._limits.first_buckets, out, self._limits)
        return encode_message(out.finish())

    def receive(self, reply: bytes) -> bytes | None:
        """Take the server's reply; the next message to send, or None when reconciliation is complete."""
        if self.done:
            raise ReconcileError("session_done", "this session has already finished")
        ranges = _process(self._index, decode_message(reply, self._limits), self._limits, (self._have, self._need))
        if not ranges:
            self.done = True
            return None
        return encode_message(ranges)


@dataclass(frozen=True, slots=True)
class SessionResult:
    have_ids: tuple[bytes, ...]
    need_ids: tuple[bytes, ...]
    round_trips: int
    bytes_sent: int
    bytes_received: int


async def run_session(
    index: ReconcileIndex,
    send: Callable[[bytes], Awaitable[bytes]],
    *,
    limits: Limits = DEFAULT_LIMITS,
    max_round_trips: int = DEFAULT_MAX_ROUND_TRIPS,
) -> SessionResult:
    """Run a whole client session over `send` (one request and its reply per round trip)."""
    session = ReconcileSession(index, limits)
    message: bytes | None = session.initiate()
    round_trips = sent = received = 0
    while message is not None:
        if round_trips >= max_round_trips:
            raise ReconcileError("too_many_round_trips", f"not reconciled after {max_round_trips} round trips")
        reply = await send(message)
        round_trips += 1
        sent += len(message)
        received += len(reply)
        message = session.receive(reply)
    return SessionResult(session.have_ids, session.need_ids, round_trips, sent, received)
