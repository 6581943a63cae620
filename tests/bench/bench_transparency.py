"""Custody report benchmark: the public transparency report at 10,000 residents, 5 keepers, 30 days of proofs.

Run from the repository root:

    .venv/bin/python -m tests.bench.bench_transparency [--residents 10000] [--keepers 5] [--days 30] [--repeat 7]

1. A node database is made by `Database.open` with the node's own migrations, under a `FakeClock`. Five vetted
   Keepers each enrol one keeper node. Every resident has two epochs: the previous one destroyed (each delivery
   with its receipt) and the current one committed, dealt to every keeper (each delivery with its sealed share and
   signed Holding, blobs of their real sizes). Every keeper is challenged once a day for every resident's current
   epoch, for `--days` days: 1.5 million `custody_proofs` rows at the defaults. One challenge in 500 fails and is
   retried under containment (one try in ten of those fails for good and is counted). Rows are written with
   `execute_many` in the columns `CustodyStore.add_epoch`, `update_delivery` and `record_proof` write; building
   takes about half a minute.
2. The report is made by `CustodyReporter` exactly as `/api/v1/transparency` makes it, with its cache off
   (`max_age=0`), through the database's one reader connection: all keepers with their totals, newest 100
   backups, newest 30 proofs and the week's counts, and the deletions.
3. The baseline, measured in the same rounds: the least any exact count of the week's challenges must read,
   `count(*)` over each keeper's range of the narrowest index of `custody_proofs` (keeper, time). Alongside, each
   of the report's queries for all keepers, so a regression can be traced to one of them.

Every figure is the best and the median over `--repeat` rounds; each round times the baseline and the parts in
turn, so they share the machine's conditions. SQLite's page cache is its default (2 MiB), as the node runs it;
the database file itself is in the OS page cache after the first round. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from ftm.config.settings import CustodySettings
from ftm.federation.clock import FakeClock
from ftm.federation.database import Database, load_migrations
from ftm.node.store import custodyreport
from ftm.node.store.custodyreport import CustodyReportStore
from ftm.node.transparency import BACKUPS_LISTED, DAY, PROOFS_LISTED, CustodyReporter

START = 1_800_000_000
HELD = 30  # the current epoch's number: each resident rotated daily before the benchmark's window
FAILURE_RATE = 1 / 500
COUNTED_RATE = 1 / 10  # of failures: the containment retries failed too


async def build(db: Database, residents: int, keepers: int, days: int, now: int) -> list[bytes]:
    rng = random.Random(16)
    keys = [bytes([index + 1]) * 32 for index in range(keepers)]
    async with db.transaction("bench_keepers") as tx:
        for index, key in enumerate(keys):
            await tx.execute(
                "INSERT INTO keepers (id, name, statement, contact, offer, status, token_hash, created_at)"
                " VALUES (?, ?, 'I keep.', 'k@example.org', 'A replica.', 'vetted', ?, 0)",
                (f"keeper-{index}", f"Keeper {index}", bytes([index]) * 32),
            )
            await tx.execute(
                "INSERT INTO replica_keepers (keeper_key, url, registration_id, state, enrolled_at, updated_at)"
                " VALUES (?, ?, ?, 'active', 0, 0)",
                (key, f"https://keeper-{index}.example", f"keeper-{index}"),
            )
    ids = [f"r{index:06d}" for index in range(residents)]
    async with db.transaction("bench_residents") as tx:
        await tx.execute_many(
            "INSERT INTO residents (id, display_name, status, signing_public_key, inbox_public_key, key_epoch,"
            " vault_bytes, created_at) VALUES (?, ?, 'active', ?, ?, ?, ?, ?)",
            [
                (rid, f"Resident {n}", rng.randbytes(32), rng.randbytes(32), HELD, 1 << 20, n)
                for n, rid in enumerate(ids)
            ],
        )
        for epoch, state, delivery in ((HELD - 1, "destroyed", "destroyed"), (HELD, "committed", "committed")):
            made = now - (HELD + 1 - epoch) * DAY
            await tx.execute_many(
                "INSERT INTO custody_epochs (resident_id, epoch, state, threshold, commitments, root, length,"
                " created_at, committed_at, updated_at) VALUES (?, ?, ?, 3, ?, ?, ?, ?, ?, ?)",
                [
                    (rid, epoch, state, rng.randbytes(96), rng.randbytes(32), (1 << 20) + n, made + n, made + n, now)
                    for n, rid in enumerate(ids)
                ],
            )
            await tx.execute_many(
                "INSERT INTO custody_deliveries (resident_id, epoch, keeper_key, x, sealed_share, state, sent,"
                " holding, receipt, next_challenge_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (rid, epoch, key, x, rng.randbytes(112), delivery, (1 << 20) + n, rng.randbytes(240))
                    + ((rng.randbytes(200), None) if delivery == "destroyed" else (None, now + DAY))
                    + (now,)
                    for n, rid in enumerate(ids)
                    for x, key in enumerate(keys, start=1)
                ],
            )
    for day in range(days):
        rows: list[tuple[object, ...]] = []
        for n, rid in enumerate(ids):
            at = now - (days - day) * DAY + n * (DAY // max(residents, 1))
            for key in keys:
                if rng.random() >= FAILURE_RATE:
                    rows.append((key, rid, HELD, at, "ok", None, 0, 0))
                    continue
                counted = rng.random() < COUNTED_RATE
                for attempt in range(3):
                    last = attempt == 2
                    outcome = "ok" if last and not counted else "failed"
                    rows.append(
                        (
                            key,
                            rid,
                            HELD,
                            at + attempt * 600,
                            outcome,
                            None if outcome == "ok" else "bad_possession",
                            attempt,
                            int(last and counted),
                        )
                    )
        async with db.transaction("bench_proofs") as tx:
            await tx.execute_many(
                "INSERT INTO custody_proofs (keeper_key, resident_id, epoch, at, outcome, reason, try_number, counted)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
    return keys


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def run(residents: int, keepers: int, days: int, repeat: int) -> None:
    clock = FakeClock(START)
    now = int(clock.now())
    since = now - CustodySettings().suspect_days * DAY
    with tempfile.TemporaryDirectory(prefix="ftm-bench-transparency-") as folder:
        db = await Database.open(Path(folder) / "node.db", load_migrations("ftm.node.store"))
        try:
            started = time.perf_counter()
            keys = await build(db, residents, keepers, days, now)
            built = time.perf_counter() - started
            proofs = await db.fetch_value("SELECT count(*) FROM custody_proofs")
            print(
                f"{residents} residents, {keepers} keepers, {days} days: {proofs} proofs"
                f" (built in {built:.0f} s), schema {await db.schema_version()}, SQLite page cache default\n"
            )
            reads = CustodyReportStore(db)
            reporter = CustodyReporter(db=db, mode="threshold", settings=CustodySettings(), clock=clock, max_age=0)

            async def floor() -> None:
                for key in keys:
                    await db.fetch_one(
                        "SELECT count(*) FROM custody_proofs WHERE keeper_key = ? AND at >= ?", (key, since)
                    )

            async def each(part: Callable[[bytes], Awaitable[object]]) -> None:
                for key in keys:
                    await part(key)

            cases: dict[str, Callable[[], Awaitable[object]]] = {
                "baseline: count(*) of the week's proofs, (keeper, at) index": floor,
                "whole report (`CustodyReporter`, no cache)": reporter.report,
                "`holding_totals`, all keepers": lambda: each(reads.holding_totals),
                f"`holdings` (newest {BACKUPS_LISTED}), all keepers": lambda: each(
                    lambda key: reads.holdings(key, BACKUPS_LISTED)
                ),
                f"`recent_proofs` (newest {PROOFS_LISTED}), all keepers": lambda: each(
                    lambda key: reads.recent_proofs(key, PROOFS_LISTED)
                ),
                "`proof_counts` (the week), all keepers": lambda: each(lambda key: reads.proof_counts(key, since)),
            }
            times: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(repeat):
                for name, call in cases.items():
                    times[name].append(await timed(call))
            base = min(times[next(iter(cases))])
            print("| case | best ms | median ms | best / baseline |")
            print("|---|---|---|---|")
            for name, spans in times.items():
                best = min(spans)
                print(f"| {name} | {best * 1000:.1f} | {statistics.median(spans) * 1000:.1f} | {best / base:.1f} |")
            plans = {
                "proof_counts": (custodyreport._PROOF_COUNTS, (keys[0], since, keys[0], since)),
                "holding_totals": (custodyreport._HOLDING_TOTALS, (keys[0],)),
                "holdings": (custodyreport._HOLDINGS, (keys[0], BACKUPS_LISTED)),
            }
            print()
            for name, (sql, params) in plans.items():
                plan = await db.fetch_all("EXPLAIN QUERY PLAN " + sql, params)
                print(f"plan of `{name}`: " + "; ".join(str(row[3]) for row in plan))
        finally:
            await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=10_000)
    parser.add_argument("--keepers", type=int, default=5)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if min(args.residents, args.keepers, args.days, args.repeat) < 1 or args.keepers > 255:
        sys.exit("every count must be at least 1, and at most 255 keepers")
    asyncio.run(run(args.residents, args.keepers, args.days, args.repeat))


if __name__ == "__main__":
    main()
