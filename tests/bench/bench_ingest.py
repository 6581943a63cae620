"""Ingest benchmark: federation events through the real acceptance pipeline into an on-disk node database,
against raw PyNaCl signature verification of the same events in the same run.

Run from the repository root:

    .venv/bin/python -m tests.bench.bench_ingest [--events 20000] [--batch 500] [--rounds 3] [--threads 1,2]
        [--dir PATH] [--stages]

The events are posts (a title and about 500 characters of Markdown each) by 200 residents, all attested by one
known node, so every one passes every check and is stored. Each round measures, in this order:

- raw verify: `nacl.signing.VerifyKey(author).verify(domain ‖ id, signature)` for every event, one thread: the
  least any node must do per event;
- for each `--threads` value (worker threads a batch's signature checks are split across): ingest of all events in
  batches of `--batch`, one batch at a time, from one peer, into a fresh database at `synchronous=FULL` (every
  check in order, one transaction per batch); then the same with two batches in flight (two peers sending at
  once, alternate batches), as gossip from several peers would; then every event again, to time the duplicate
  path.

Rate limits are set high enough that no event is limited; the checks still run. Figures are the best over
`--rounds`; ratios are against the best raw verify. `--stages` adds a table of where the time goes in one-batch-
at-a-time ingest (µs per event, by timing the pipeline's steps on the instance). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import nacl.signing

from ftm.federation.acceptance import Acceptance, AcceptanceLimits, StaticKnownNodes
from ftm.federation.clock import FakeClock
from ftm.federation.database import Database, load_migrations
from ftm.federation.eventcontent import HostingContent, PostContent, sign_content
from ftm.federation.events import SIGNING_DOMAIN, SignedEvent, parse_event
from ftm.federation.identity import SigningKey, derive_id
from ftm.federation.objectstore import ObjectStore
from ftm.federation.ratelimits import Rate

T0 = 1_800_000_000
RESIDENTS = 200
TEXT = (
    "The tide came in slowly and I counted the lamps along the harbour wall. Somewhere a bell answered the wind, "
    "and I wrote down what the keepers said about the night. "
) * 4
UNLIMITED = Rate(per_second=1e12, burst=1e12)
STAGES = ("_refuse_duplicates", "_apply_rules", "_verify", "_settle_batch_dependencies", "_store_accepted")
PEERS = (b"\xaa" * 32, b"\xbb" * 32)


def make_events(count: int) -> tuple[SigningKey, list[SignedEvent], list[SignedEvent]]:
    node = SigningKey.generate()
    residents = [SigningKey.generate() for _ in range(RESIDENTS)]
    hosting = [
        sign_content(node, HostingContent(node.public_key, r.public_key, "https://sanctuary.example"), T0 - 10**6)
        for r in residents
    ]
    posts = []
    for i in range(count):
        resident = residents[i % RESIDENTS]
        content = PostContent(
            derive_id("resident", resident.public_key), f"Resident {i % RESIDENTS}", f"Day {i}", TEXT[:500]
        )
        posts.append(sign_content(resident, content, T0 - count + i))
    return node, hosting, posts


def raw_verify_rate(posts: Sequence[SignedEvent]) -> float:
    prefix = SIGNING_DOMAIN.encode() + b"\x00"
    items = [(p.body.author, prefix + p.id, p.event.signature) for p in map(parse_event, posts)]
    started = time.perf_counter()
    for author, message, signature in items:
        nacl.signing.VerifyKey(author).verify(message, signature)
    return len(items) / (time.perf_counter() - started)


class Ingest:
    """A fresh node database and acceptance pipeline, with the hosting attestations already in."""

    def __init__(self, folder: Path, threads: int) -> None:
        self.folder = folder
        self.threads = threads
        self.stage_seconds: dict[str, float] = defaultdict(float)

    async def __aenter__(self) -> Ingest:
        self.path = Path(tempfile.mkdtemp(dir=self.folder))
        self.db = await Database.open(self.path / "node.db", load_migrations("ftm.node.store"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.db.close()
        shutil.rmtree(self.path)

    async def setup(self, node: SigningKey, hosting: Sequence[SignedEvent], *, timed_stages: bool) -> None:
        clock = FakeClock(T0)
        limits = AcceptanceLimits(per_peer=UNLIMITED, per_author=UNLIMITED, verify_threads=self.threads)
        self.acceptance = Acceptance(
            ObjectStore(self.db, clock), StaticKnownNodes([node.public_key]), clock, limits=limits
        )
        result = await self.acceptance.accept(hosting, None)
        assert {str(a) for a in result.answers} == {"ok"}
        if timed_stages:
            for name in STAGES:
                setattr(self.acceptance, name, self._timed(name, getattr(self.acceptance, name)))

    def _timed(self, name: str, step: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return await step(*args)
            finally:
                self.stage_seconds[name] += time.perf_counter() - started

        return timed

    async def run(self, batches: Sequence[Sequence[SignedEvent]], in_flight: int, expect: str) -> float:
        """Events/s of accepting every batch, `in_flight` batches at a time (each stream its own peer)."""

        async def stream(number: int) -> None:
            for batch in batches[number::in_flight]:
                result = await self.acceptance.accept(batch, PEERS[number])
                assert {str(a) for a in result.answers} == {expect}, result.answers[:3]

        started = time.perf_counter()
        await asyncio.gather(*(stream(n) for n in range(in_flight)))
        return sum(map(len, batches)) / (time.perf_counter() - started)


async def bench(args: argparse.Namespace) -> None:
    node, hosting, posts = make_events(args.events)
    batches = [posts[i : i + args.batch] for i in range(0, len(posts), args.batch)]
    threads = [int(t) for t in args.threads.split(",")]
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="ftm-bench-ingest-"))
    try:
        best, stages = await run_rounds(args, node, hosting, batches, threads, folder)
    finally:
        if not args.dir:
            folder.rmdir()  # each database removed its own folder already
    report(args, best, threads, stages)


async def run_rounds(
    args: argparse.Namespace,
    node: SigningKey,
    hosting: Sequence[SignedEvent],
    batches: Sequence[Sequence[SignedEvent]],
    threads: Sequence[int],
    folder: Path,
) -> tuple[dict[str, float], dict[str, float]]:
    posts = [event for batch in batches for event in batch]
    best: dict[str, float] = defaultdict(float)
    stages: dict[str, float] = {}
    for _ in range(args.rounds):
        best["raw"] = max(best["raw"], raw_verify_rate(posts))
        for count in threads:
            for in_flight in (1, 2):
                async with Ingest(folder, count) as ingest:
                    await ingest.setup(node, hosting, timed_stages=args.stages and in_flight == 1 and count == 1)
                    rate = await ingest.run(batches, in_flight, "ok")
                    if ingest.stage_seconds and rate > best["ingest 1 1"]:
                        stages = {name: ingest.stage_seconds[name] / len(posts) * 1e6 for name in STAGES}
                        stages["total"] = 1e6 / rate
                    best[f"ingest {count} {in_flight}"] = max(best[f"ingest {count} {in_flight}"], rate)
                    duplicates = await ingest.run(batches, in_flight, "duplicate")
                    best[f"duplicates {count} {in_flight}"] = max(best[f"duplicates {count} {in_flight}"], duplicates)
    return best, stages


def report(args: argparse.Namespace, best: dict[str, float], threads: Sequence[int], stages: dict[str, float]) -> None:
    raw = best["raw"]
    print(f"{args.events:,} posts, batches of {args.batch}, best of {args.rounds} rounds\n")
    print("| measure | verify threads | batches in flight | events/s | ratio to raw verify |")
    print("|---|---|---|---|---|")
    print(f"| raw PyNaCl verify | 1 | - | {raw:,.0f} | 1.00 |")
    for kind in ("ingest", "duplicates"):
        for count in threads:
            for in_flight in (1, 2):
                rate = best[f"{kind} {count} {in_flight}"]
                label = "ingest (new events, stored)" if kind == "ingest" else "ingest of duplicates"
                print(f"| {label} | {count} | {in_flight} | {rate:,.0f} | {rate / raw:.2f} |")
    if stages:
        print("\n| step (1 thread, 1 batch in flight) | µs per event |")
        print("|---|---|")
        total = stages.pop("total")
        print(f"| parse (size, structure, id) and answers | {total - sum(stages.values()):.1f} |")
        for name, value in stages.items():
            print(f"| {name.strip('_').replace('_', ' ')} | {value:.1f} |")
        print(f"| total | {total:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", default="1,2", help="verify threads to try, comma-separated")
    parser.add_argument("--dir", help="where the databases go (default: a new folder in the system temp dir)")
    parser.add_argument("--stages", action="store_true", help="also time each pipeline step")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
