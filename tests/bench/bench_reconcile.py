"""Reconciliation benchmark: round trips, bytes each way and wall time for large sets that barely differ.

Run from the repository root:

    .venv/bin/python -m tests.bench.bench_reconcile [--sizes 100000,1000000] [--repeat 3]

Items are events spread over one year (random second, random 32-byte id, fixed seed). Client and server each
build a `ReconcileIndex` once; every case then inserts or discards its differing items and undoes that after, so
the indexes are built only twice per size. Cases: identical sets; one extra item on each side; the client missing
one item; the server missing one item. The session runs in process (`run_session` over a `send` that calls
`reconcile_respond`), so the wall time is both sides' CPU with no network; it is the best of `--repeat` runs.

Baselines, in the same run: the bytes of the naive exchange (one side sends every id, 32 bytes each, and gets
the ids it lacks back), and the time a node spends to diff two id lists that way (build a set of the received
ids, take both differences), plus the time to sort the items (the least any index of them costs to build).
It prints Markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import time
from collections.abc import Callable
from typing import Any

from ftm.federation.reconcile import Limits, ReconcileIndex, SessionResult, reconcile_respond, run_session
from ftm.federation.reconcileindex import id_sum, item_key

YEAR = 365 * 86400
START = 1_700_000_000


def make_items(count: int, seed: int) -> list[tuple[int, bytes]]:
    rnd = random.Random(seed)
    return [(START + rnd.randrange(YEAR), rnd.randbytes(32)) for _ in range(count)]


def best(repeat: int, action: Callable[[], Any]) -> tuple[float, Any]:
    """The best wall time of `repeat` runs, in milliseconds, with the collector out of the way; and the result."""
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            result = action()
            times.append(time.perf_counter() - start)
        finally:
            gc.enable()
    return min(times) * 1000, result


def session(client: ReconcileIndex, server: ReconcileIndex, limits: Limits) -> SessionResult:
    async def send(message: bytes) -> bytes:
        return reconcile_respond(server, message, limits)

    return asyncio.run(run_session(client, send, limits=limits))


def bench_size(count: int, repeat: int, limits: Limits) -> tuple[list[str], str, str]:
    items = make_items(count, seed=count)
    extra_client, extra_server = make_items(2, seed=count + 1)  # a different seed: Random uses abs(seed)
    missing = items[count // 3]
    build_ms, client = best(1, lambda: ReconcileIndex(items))
    server = ReconcileIndex(items)

    # (name, changes to apply as (index, item, insert?), expected have, expected need)
    cases = [
        ("identical", [], set(), set()),
        (
            "one extra on each side",
            [(client, extra_client, True), (server, extra_server, True)],
            {extra_client[1]},
            {extra_server[1]},
        ),
        ("client missing one", [(client, missing, False)], set(), {missing[1]}),
        ("server missing one", [(server, missing, False)], {missing[1]}, set()),
    ]
    rows = []
    for name, changes, have, need in cases:
        for index, (created_at, event_id), insert in changes:
            assert (index.insert if insert else index.discard)(created_at, event_id)
        wall_ms, result = best(repeat, lambda: session(client, server, limits))
        for index, (created_at, event_id), insert in changes:
            assert (index.discard if insert else index.insert)(created_at, event_id)
        assert set(result.have_ids) == have and set(result.need_ids) == need, name
        total = result.bytes_sent + result.bytes_received
        rows.append(
            f"| {count:,} | {name} | {result.round_trips} | {result.bytes_sent:,} | {result.bytes_received:,}"
            f" | {total:,} | {wall_ms:.1f} |"
        )

    keys = [item_key(created_at, event_id) for created_at, event_id in items]
    other = [event_id for _, event_id in items[1:]] + [extra_server[1]]
    sort_ms, _ = best(repeat, lambda: sorted(keys))

    def naive_diff() -> tuple[set[bytes], set[bytes]]:
        mine, theirs = {event_id for _, event_id in items}, set(other)
        return mine - theirs, theirs - mine

    diff_ms, _ = best(repeat, naive_diff)
    naive_bytes = 32 * count + 32 * 2
    baseline = f"| {count:,} | {naive_bytes:,} | {diff_ms:.1f} | {sort_ms:.1f} | {build_ms:.0f} |"
    return rows, baseline, bench_index(client, repeat)


def bench_index(index: ReconcileIndex, repeat: int) -> str:
    """Microseconds per index operation, against summing a range's ids directly (what a flat list would do)."""
    rnd = random.Random(len(index))
    count = len(index)
    ranges = [sorted((rnd.randrange(count), rnd.randrange(count))) for _ in range(200)]
    fresh = make_items(2000, seed=count + 2)
    newest = [(START + 2 * YEAR + n, event_id) for n, (_, event_id) in enumerate(fresh)]

    def insert_all(items: list[tuple[int, bytes]]) -> None:
        for created_at, event_id in items:
            index.insert(created_at, event_id)
        for created_at, event_id in items:
            index.discard(created_at, event_id)

    def fingerprint_after_insert() -> None:
        for created_at, event_id in newest[:200]:
            index.insert(created_at, event_id)
            index.fingerprint(0, len(index))
        for created_at, event_id in newest[:200]:
            index.discard(created_at, event_id)

    anywhere_us = best(repeat, lambda: insert_all(fresh))[0] * 1000 / (2 * len(fresh))
    newest_us = best(repeat, lambda: insert_all(newest))[0] * 1000 / (2 * len(newest))
    after_insert_us = best(repeat, fingerprint_after_insert)[0] * 1000 / 200
    fingerprint_us = best(repeat, lambda: [index.fingerprint(lo, hi) for lo, hi in ranges])[0] * 1000 / len(ranges)
    naive_us = best(1, lambda: [id_sum(index.keys(lo, hi)) for lo, hi in ranges[:20]])[0] * 1000 / 20
    return (
        f"| {count:,} | {anywhere_us:.1f} | {newest_us:.1f} | {after_insert_us:.1f} | {fingerprint_us:.1f}"
        f" | {naive_us:,.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="set sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--first-buckets", type=int, default=Limits().first_buckets, help="ranges in the opening")
    args = parser.parse_args()
    limits = Limits(first_buckets=args.first_buckets)

    results = []
    for count in (int(size) for size in args.sizes.split(",")):
        start = time.perf_counter()
        results.append(bench_size(count, args.repeat, limits))
        print(f"<!-- {count:,} items: {time.perf_counter() - start:.0f} s in all, {limits} -->", flush=True)

    print("| items per side | case | round trips | bytes client→server | bytes server→client | bytes total | ms |")
    print("|---|---|---|---|---|---|---|")
    for rows, _, _ in results:
        print("\n".join(rows))
    print()
    print(
        "| items per side | naive: bytes of all ids | naive: ms to diff id sets | ms to sort the items"
        " | ms to build one index |"
    )
    print("|---|---|---|---|---|")
    for _, baseline, _ in results:
        print(baseline)
    print()
    print(
        "| index of | µs per insert or discard, anywhere | … at the end | insert at the end, then fingerprint all"
        " | fingerprint of a random range | summing that range's ids instead |"
    )
    print("|---|---|---|---|---|---|")
    for _, _, index_row in results:
        print(index_row)


if __name__ == "__main__":
    main()
