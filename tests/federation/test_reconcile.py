"""Set reconciliation end to end: after the protocol the client knows exactly A\\B and B\\A, within the limits."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftm.federation.reconcile import (
    Limits,
    ReconcileIndex,
    ReconcileSession,
    reconcile_respond,
    run_session,
    separator,
)
from ftm.federation.reconcileindex import item_key
from ftm.federation.reconcilewire import Mode, decode_message

Item = tuple[int, bytes]
MAX_ROUNDS = 500


DEFAULT_LIMITS = Limits()


def reconcile(client: list[Item], server: list[Item], limits: Limits = DEFAULT_LIMITS) -> tuple[ReconcileSession, int]:
    """Run a session in memory; returns it with the number of round trips."""
    client_index, server_index = ReconcileIndex(client), ReconcileIndex(server)
    session = ReconcileSession(client_index, limits)
    message: bytes | None = session.initiate()
    rounds = 0
    while message is not None:
        assert rounds < MAX_ROUNDS
        assert len(message) <= limits.max_message_bytes
        reply = reconcile_respond(server_index, message, limits)
        assert len(reply) <= limits.max_message_bytes
        assert len(decode_message(reply, limits)) <= limits.max_ranges
        rounds += 1
        message = session.receive(reply)
    return session, rounds


def assert_exact(session: ReconcileSession, client: list[Item], server: list[Item]) -> None:
    mine, theirs = {i for _, i in client}, {i for _, i in server}
    assert sorted(session.have_ids) == sorted(mine - theirs)
    assert sorted(session.need_ids) == sorted(theirs - mine)
    assert session.done


def random_items(rnd: random.Random, count: int, spread: int = 86400 * 30) -> list[Item]:
    return [(1_700_000_000 + rnd.randrange(spread), rnd.randbytes(32)) for _ in range(count)]


# Ids drawn from a small alphabet share long prefixes, and timestamps from a few values collide: both stress the
# shortest-separating-prefix bounds.
ids = st.one_of(
    st.binary(min_size=32, max_size=32),
    st.lists(st.sampled_from([0, 1, 255]), min_size=32, max_size=32).map(bytes),
)
timestamps = st.one_of(st.integers(0, 3), st.integers(0, 2**53 - 1))
items = st.tuples(timestamps, ids)
limits_strategy = st.builds(
    Limits,
    buckets=st.integers(2, 16),
    id_list_threshold=st.integers(1, 8),
    first_buckets=st.integers(1, 16),
    max_ranges=st.just(64),
    max_message_bytes=st.just(4096),
)


# Each id goes to both sides or to one of them; an id appears once (an event's id fixes its created_at).
placed_items = st.lists(
    st.tuples(items, st.sampled_from(["both", "both", "both", "client", "server"])),
    max_size=200,
    unique_by=lambda placed: placed[0][1],
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(placed=placed_items, limits=limits_strategy)
def test_client_learns_exactly_both_differences(placed: list[tuple[Item, str]], limits: Limits) -> None:
    client = [item for item, side in placed if side != "server"]
    server = [item for item, side in placed if side != "client"]
    session, _ = reconcile(client, server, limits)
    assert_exact(session, client, server)


def test_identical_sets_finish_in_one_round_trip() -> None:
    items_ = random_items(random.Random(1), 5000)
    session, rounds = reconcile(items_, list(reversed(items_)))
    assert rounds == 1
    assert session.have_ids == () and session.need_ids == ()


def test_empty_sets() -> None:
    session, rounds = reconcile([], [])
    assert rounds == 1 and session.have_ids == () and session.need_ids == ()
    some = random_items(random.Random(2), 300)
    session, _ = reconcile([], some)
    assert_exact(session, [], some)
    session, _ = reconcile(some, [])
    assert_exact(session, some, [])


def test_all_different_sets() -> None:
    rnd = random.Random(3)
    client, server = random_items(rnd, 2000), random_items(rnd, 1500)
    session, _ = reconcile(client, server)
    assert_exact(session, client, server)


def test_many_items_sharing_one_timestamp() -> None:
    rnd = random.Random(4)
    shared = [(5, rnd.randbytes(32)) for _ in range(3000)]
    client = [*shared, (5, rnd.randbytes(32)), (5, b"\x00" * 31 + b"\x01")]
    server = [*shared[1:], (5, rnd.randbytes(32)), (5, b"\x00" * 32)]
    session, _ = reconcile(client, server)
    assert_exact(session, client, server)


def test_items_at_the_bounds_of_the_space() -> None:
    rnd = random.Random(5)
    middle = random_items(rnd, 1000)
    edges = [
        (0, bytes(32)),
        (0, b"\x00" * 31 + b"\x01"),
        (2**53 - 1, b"\xff" * 32),
        (2**53 - 1, b"\xff" * 31 + b"\xfe"),
    ]
    for lost in edges:
        client = middle + edges
        server = middle + [edge for edge in edges if edge != lost]
        session, _ = reconcile(client, server)
        assert_exact(session, client, server)
        session, _ = reconcile(server, client)
        assert_exact(session, server, client)


def test_difference_of_one_in_ten_thousand_takes_three_round_trips_and_little_traffic() -> None:
    rnd = random.Random(6)
    shared = random_items(rnd, 10_000, spread=86400 * 365)
    extra = random_items(rnd, 2)
    for client, server in ((shared + extra[:1], shared + extra[1:]), (shared[1:], shared), (shared, shared[1:])):
        session, rounds = reconcile(client, server)
        assert_exact(session, client, server)
        assert rounds <= 3


def test_catch_up_larger_than_one_message_is_cut_and_resumed() -> None:
    """A new node against a full one: replies are cut at the size limit and the rest follows in later rounds."""
    rnd = random.Random(7)
    server = random_items(rnd, 3000)
    limits = Limits(max_message_bytes=4096, max_ranges=64)
    session, rounds = reconcile(server[:10], server, limits)
    assert_exact(session, server[:10], server)
    assert rounds >= 3000 * 32 // 4096


def test_many_scattered_differences_overflow_the_range_limit_and_still_converge() -> None:
    rnd = random.Random(8)
    shared = random_items(rnd, 4000)
    client = shared + random_items(rnd, 300)
    server = shared[:3700] + random_items(rnd, 300)
    limits = Limits(max_ranges=24, max_message_bytes=4096)
    session, _ = reconcile(client, server, limits)
    assert_exact(session, client, server)


def test_separator_is_the_shortest_bound_between_neighbours() -> None:
    a = item_key(10, b"\x01\x02\x03" + bytes(29))
    b = item_key(10, b"\x01\x02\x09" + bytes(29))
    c = item_key(11, bytes(32))
    assert separator(a, b) == item_key(10, bytes(32))[:8] + b"\x01\x02\x09"
    assert a < separator(a, b) <= b
    assert separator(b, c) == c[:8]


def test_a_hostile_id_list_gets_a_bounded_answer() -> None:
    """An empty IdList over everything asks for all our ids: the answer stops at the size limit."""
    rnd = random.Random(9)
    server = ReconcileIndex(random_items(rnd, 5000))
    limits = Limits(max_message_bytes=4096)
    reply = reconcile_respond(server, b"\x01\x00\x02\x00", limits)  # version, bound ∞, IdList of 0 ids
    assert len(reply) <= 4096
    ranges = decode_message(reply, limits)
    assert [r.mode for r in ranges] == [Mode.ID_LIST, Mode.FINGERPRINT]
    assert len(ranges[0].ids) > 100


async def test_run_session_counts_round_trips_and_bytes() -> None:
    rnd = random.Random(10)
    shared = random_items(rnd, 20_000)
    client, server = ReconcileIndex(shared[1:]), ReconcileIndex(shared)
    seen: list[int] = []

    async def send(message: bytes) -> bytes:
        reply = reconcile_respond(server, message)
        seen.append(len(message) + len(reply))
        return reply

    result = await run_session(client, send)
    assert result.need_ids == (shared[0][1],) and result.have_ids == ()
    assert result.round_trips == len(seen) <= 3
    assert result.bytes_sent + result.bytes_received == sum(seen) < 2048
