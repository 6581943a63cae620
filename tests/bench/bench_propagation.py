"""Propagation benchmark: gossip across 10 in-process nodes over real HTTP on 127.0.0.1 — rounds to reach every
node, bytes on the wire against the unique payload, and ingest over HTTP against two baselines.

Run from the repository root:

    .venv/bin/python -m tests.bench.bench_propagation [--nodes 10] [--events 400] [--burst 20] [--gap 0.1]
        [--seed 1] [--ingest 5000] [--topology dense|star|chain] [--exchange-rounds 30]

Setup: `--nodes` nodes (tests/federation/grid.py), bootstrapped by `--topology`: `dense` (the default) to every
node started before it; `star` to node 0 alone; `chain` to the node started just before it alone (a line, the
sparsest start). For `star` and `chain` the nodes then run membership rounds (signed peer exchange and
verification of the candidates it brings, as the daemon does: an exchange every 10 minutes) until every node has
verified every other, at most `--exchange-rounds`; the number it took is printed. A node accepts posts only by
residents that a node it verified attested, so this is how long a sparse start takes to become one feed.

Every topology runs the production gossip settings (`GossipPolicy()`: active view 4, flush delay 50 ms, ihave
grace 250 ms) with the background loops (membership rounds, periodic reconciliation) held off during the
measurement so that every byte counted is gossip. Each
node attests its resident and the attestations spread first. Then bursts of `--burst` posts (a title and about
500 characters of Markdown) are published at a random node every `--gap` seconds until `--events` are out, and
the run waits until every node stores every post. The reconciliations each pair of nodes runs when they meet are
let finish before the count starts.

**Round** = one hop of forwarding. Every push and fetch answer carries each event's hop count at its sender (0 at
the node that made it); a node that accepts an event records hop + 1. "Rounds to full propagation" is the largest
hop count any node recorded for any post: the length of the longest path an event took to its last node. The
target is ⌈log₂ N⌉ + 3.

**Bytes on the wire** are every federation request and answer during the post phase, counted by each node's
transport at the client side: request line, headers, body; status line, headers, body. The **unique payload** is
each post's bytes (body + signature + content) times N - 1 (every other node needs it once). Target: ≤ 1.5.

**Ingest over HTTP**: one node pushes `--ingest` fresh posts to another through the real push route (signed
requests, acceptance, storage) in pushes of 500, one at a time. Baselines, in the same run: a bare aiohttp
server that reads each push's bytes and answers a small body (the HTTP floor), and raw PyNaCl verification of
the same events on one thread (the crypto floor). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import aiohttp
import nacl.signing
from aiohttp import web

from ftm.federation import codec
from ftm.federation.acceptance import AcceptanceLimits
from ftm.federation.antientropy import AntiEntropyPolicy
from ftm.federation.clock import FakeClock
from ftm.federation.events import SIGNING_DOMAIN, SignedEvent, event_id
from ftm.federation.gossip import GossipPolicy
from ftm.federation.gossipwire import Push
from ftm.federation.membership import MembershipPolicy
from ftm.federation.network import NetworkSettings
from ftm.federation.ratelimits import Rate
from tests.federation.eventfactories import T0
from tests.federation.grid import Grid, GridNode

MARKDOWN = ("I counted the lamps along the harbour wall, and then the boats, and then the gulls. " * 6)[:500]
HIGH = Rate(per_second=1e9, burst=1e9)
SETTINGS = NetworkSettings(
    gossip=GossipPolicy(),
    antientropy=AntiEntropyPolicy(interval=3600.0),
    membership=MembershipPolicy(round_interval=3600.0),
    acceptance=AcceptanceLimits(per_peer=HIGH, per_author=HIGH),
)


def size_of(event: SignedEvent) -> int:
    return len(event.body) + len(event.signature) + len(event.content or b"")


TOPOLOGIES: dict[str, Callable[[int], list[int] | None]] = {
    "dense": lambda index: None,  # every node already running
    "star": lambda index: [0] if index else [],
    "chain": lambda index: [index - 1] if index else [],
}


async def propagation(
    root: Path, nodes: int, events: int, burst: int, gap: float, seed: int, topology: str, exchange_rounds: int
) -> tuple[dict[str, float], list[tuple[int, int]]]:
    rng = random.Random(seed)
    grid = Grid(root, FakeClock(T0), SETTINGS)
    try:
        for index in range(nodes):
            await grid.add(bootstrap=TOPOLOGIES[topology](index))
        rounds = 0
        while topology != "dense" and rounds < exchange_rounds and not everyone_known(grid):
            rounds += 1
            grid.clock.advance(SETTINGS.membership.exchange_interval)
            for node in grid.nodes:
                await node.net.membership.round()
        links = statistics.mean(len(node.net.peers.verified()) for node in grid.nodes)
        await grid.attest_all()
        await settle(grid)
        cold_bytes = sum(node.net.transport.stats.total_bytes for node in grid.nodes)
        before = [snapshot(node) for node in grid.nodes]
        published: list[tuple[int, SignedEvent]] = []
        started = time.perf_counter()
        while len(published) < events:
            index = rng.randrange(nodes)
            count = min(burst, events - len(published))
            node = grid.nodes[index]
            posts = grid.posts(node, count, markdown=MARKDOWN)
            result = await node.net.publish(posts)
            assert {str(answer) for answer in result.answers} == {"ok"}
            published += [(index, post) for post in posts]
            await asyncio.sleep(gap)
        posts = [post for _, post in published]
        if not await grid.wait_for(posts, seconds=60):
            raise SystemExit(f"not converged: {await grid.holders(posts)}")
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.5)  # let the last announcements and answers finish before counting bytes
        hops = []
        for origin, post in published:
            for node in grid.nodes:
                if node.index != origin:
                    found = node.net.gossip.hops_of(event_id(post.body))
                    assert found is not None
                    hops.append(found)
        sent: Counter[str] = Counter()
        for node, (requests_before, bytes_before) in zip(grid.nodes, before, strict=True):
            stats = node.net.transport.stats
            for operation in set(stats.bytes_sent) | set(stats.bytes_received):
                sent[operation] += stats.bytes_sent[operation] + stats.bytes_received[operation]
            sent.subtract(bytes_before)
            sent["requests"] += sum(stats.requests.values()) - requests_before
        wire = sum(value for key, value in sent.items() if key != "requests")
        payload = sum(size_of(post) for post in posts) * (nodes - 1)
        counters = [node.net.gossip.counters for node in grid.nodes]
        return {
            "nodes": nodes,
            "links": links,
            "exchange_rounds": rounds,
            "events": len(posts),
            "event_bytes": statistics.mean(size_of(post) for post in posts),
            "max_hops": max(hops),
            "mean_hops": statistics.mean(hops),
            "target_rounds": math.ceil(math.log2(nodes)) + 3,
            "wire": wire,
            "payload": payload,
            "ratio": wire / payload,
            "requests": sent["requests"],
            "seconds": elapsed,
            "cold_bytes": cold_bytes,
            "pushed": sum(c.events_pushed for c in counters),
            "fetched": sum(c.events_fetched for c in counters),
            "duplicates": sum(node.net.acceptance.counters.answers["duplicate"] for node in grid.nodes),
            **{f"bytes:{key}": value for key, value in sent.items() if key != "requests"},
        }, sorted(Counter(hops).items())
    finally:
        await grid.close()


def everyone_known(grid: Grid) -> bool:
    """Whether every node has verified every other: until then a node refuses posts by residents of nodes it does
    not know (`invalid:unattested`), and only reconciliation, later, would bring them."""
    return all(len(node.net.peers.verified()) == len(grid.nodes) - 1 for node in grid.nodes)


async def settle(grid: Grid) -> None:
    """Wait (bounded) until the reconciliations scheduled when the nodes met have run, so they are not counted."""
    for _ in range(500):
        if all(node.net.antientropy.idle() for node in grid.nodes):
            return
        await asyncio.sleep(0.02)


def snapshot(node: GridNode) -> tuple[int, Counter[str]]:
    stats = node.net.transport.stats
    total: Counter[str] = Counter()
    for operation in set(stats.bytes_sent) | set(stats.bytes_received):
        total[operation] = stats.bytes_sent[operation] + stats.bytes_received[operation]
    return sum(stats.requests.values()), total


async def ingest(root: Path, count: int) -> dict[str, float]:
    grid = Grid(root, FakeClock(T0), SETTINGS)
    try:
        receiver = await grid.add()
        sender = await grid.add()
        await grid.attest_all()
        events = grid.posts(sender, count, markdown=MARKDOWN)
        record = sender.net.peers.by_key(receiver.public_key)
        assert record is not None and record.address is not None
        batches = [events[i : i + 500] for i in range(0, len(events), 500)]
        started = time.perf_counter()
        for batch in batches:
            answer = await sender.net.transport.push(record.address, batch, [0] * len(batch))
            assert set(answer.answers) == {"ok"}, Counter(answer.answers)
        node_rate = count / (time.perf_counter() - started)
        bodies = [codec.encode(Push(tuple(batch), (0,) * len(batch), ())) for batch in batches]
    finally:
        await grid.close()
    bare_rate = await bare_http(bodies, count)
    keys = {event.body: nacl.signing.VerifyKey(grid.nodes[1].resident.public_key) for event in events}
    prefix = SIGNING_DOMAIN.encode() + b"\x00"
    started = time.perf_counter()
    for event in events:
        keys[event.body].verify(prefix + event_id(event.body), event.signature)
    verify_rate = count / (time.perf_counter() - started)
    return {"node": node_rate, "bare": bare_rate, "verify": verify_rate}


async def bare_http(bodies: list[bytes], count: int) -> float:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"\x81\xa7answers\x90", content_type="application/octet-stream")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/push", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession() as session:
            started = time.perf_counter()
            for body in bodies:
                async with session.post(f"http://{host}:{port}/push", data=body) as response:
                    await response.read()
            return count / (time.perf_counter() - started)
    finally:
        await runner.cleanup()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--gap", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ingest", type=int, default=5000)
    parser.add_argument("--topology", choices=sorted(TOPOLOGIES), default="dense")
    parser.add_argument("--exchange-rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftm-bench-propagation-") as tmp:
        spread, histogram = await propagation(
            Path(tmp) / "spread",
            args.nodes,
            args.events,
            args.burst,
            args.gap,
            args.seed,
            args.topology,
            args.exchange_rounds,
        )
        rates = await ingest(Path(tmp) / "ingest", args.ingest)
    print(
        f"## Propagation: {spread['nodes']} nodes ({args.topology} start, {spread['exchange_rounds']} exchange "
        f"rounds, {spread['links']:.1f} verified peers each), {spread['events']} posts of "
        f"{spread['event_bytes']:.0f} bytes\n"
    )
    print("| measure | value | target |\n|---|---|---|")
    print(f"| rounds to full propagation (max hops) | {spread['max_hops']} | ≤ {spread['target_rounds']} |")
    print(f"| mean hops | {spread['mean_hops']:.2f} | |")
    print(f"| bytes on the wire | {spread['wire']:,} | |")
    print(f"| unique payload (event bytes x (N - 1)) | {spread['payload']:,} | |")
    print(f"| wire / payload | {spread['ratio']:.3f} | ≤ 1.5 |")
    print(f"| requests | {spread['requests']:,} | |")
    print(f"| seconds to converge | {spread['seconds']:.2f} | |")
    moved = f"{spread['pushed']} / {spread['fetched']} / {spread['duplicates']}"
    print(f"| events pushed / fetched / duplicates | {moved} | |")
    print(f"| bytes during set-up (attestations, links) | {spread['cold_bytes']:,} | |")
    print(f"\nhops histogram (hops, deliveries): {histogram}\n")
    print("| operation | bytes | share of payload |\n|---|---|---|")
    for key, value in sorted(spread.items()):
        if key.startswith("bytes:"):
            print(f"| {key[6:]} | {value:,} | {float(value) / float(spread['payload']):.3f} |")
    print(f"\n## Ingest over HTTP ({args.ingest} posts, pushes of 500)\n")
    print("| measure | events/s | ratio |\n|---|---|---|")
    print(f"| bare aiohttp POST of the same bytes | {rates['bare']:,.0f} | 1.00 |")
    print(f"| raw PyNaCl verify, one thread | {rates['verify']:,.0f} | {rates['verify'] / rates['bare']:.2f} |")
    print(
        f"| node push route (signed, accepted, stored) | {rates['node']:,.0f} | {rates['node'] / rates['bare']:.2f} |"
    )
    print(f"\nnode ingest / raw verify: {rates['node'] / rates['verify']:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
