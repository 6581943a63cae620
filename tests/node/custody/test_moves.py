"""A resident moves between two nodes that both keep their residents under threshold custody (with the same five
keepers, each enrolled with both), by release rule R2: both nodes sign a move claim, every keeper logs it, nothing
is released before its delay has passed, and then the keepers release the epoch to the destination only; the
source never opens the epoch for the move. Old epochs are destroyed on the keepers (`moved`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import read_entries
from ftm.federation.events import EventKind
from ftm.keeper.protocol import Purpose
from ftm.node.datadir import DataDir
from ftm.node.store.moves import MoveOut
from tests.fakes.llm_server import FakeLLM
from tests.integration.test_cli import free_port
from tests.node.custody.grid import THRESHOLD, Grid, KeeperSite, enrol_keepers, open_keepers
from tests.node.moves.sites import Site, open_site, peered
from tests.node.run.engine.harness import calls, ending

MOVE_DELAY = 86_400  # the keepers' default move_delay_seconds


@dataclass
class Pair:
    keepers: list[KeeperSite]
    dirs: tuple[DataDir, DataDir]
    ports: tuple[int, int]


@asynccontextmanager
async def keepers_of_two(root: Path, clock: FakeClock, llm: FakeLLM) -> AsyncIterator[Pair]:
    """Five keepers, and two node data directories (closed) in which all five are enrolled."""
    async with open_keepers(root / "keepers", clock, 5) as keepers:
        dirs, ports = (DataDir(root / "a"), DataDir(root / "b")), (free_port(), free_port())
        for data_dir, port in zip(dirs, ports, strict=True):
            async with open_site(data_dir, clock, llm, port=port) as local:
                await enrol_keepers(local, keepers, clock)
        yield Pair(keepers, dirs, ports)


@asynccontextmanager
async def source_node(pair: Pair, clock: FakeClock, llm: FakeLLM) -> AsyncIterator[Site]:
    async with open_site(pair.dirs[0], clock, llm, port=pair.ports[0], settings=THRESHOLD) as site:
        yield site


@asynccontextmanager
async def destination_node(pair: Pair, clock: FakeClock, llm: FakeLLM, bootstrap: str) -> AsyncIterator[Site]:
    async with open_site(pair.dirs[1], clock, llm, port=pair.ports[1], bootstrap=bootstrap, settings=THRESHOLD) as b:
        yield b


@asynccontextmanager
async def peered_nodes(root: Path, clock: FakeClock, llm: FakeLLM) -> AsyncIterator[tuple[Pair, Site, Site]]:
    """Five keepers, and the source and the destination node running on them, peered."""
    async with (
        keepers_of_two(root, clock, llm) as pair,
        source_node(pair, clock, llm) as a,
        destination_node(pair, clock, llm, a.url) as b,
    ):
        await peered(a, b)
        yield pair, a, b


async def resident_asks_to_move(source: Grid, destination: Site) -> str:
    """A resident admitted at the source, whose day-0 run asks to move to `destination`; epoch 2 committed."""
    rid = (await source.admit()).sanctuary_id
    await source.settle()
    source.llm.script(calls(("request_move", {"destination": destination.node_id})), *ending())
    assert (await source.run(rid, 0, script=False)).state == "completed"
    await source.settle()
    return rid


async def move_out(site: Site, rid: str) -> MoveOut:
    moves = [m for m in await site.node.moves.store.recent_out(10) if m.resident_id == rid]
    assert len(moves) == 1
    return moves[0]


async def grants(keepers: list[KeeperSite], host: bytes, rid: str, epoch: int) -> list[list[tuple[str, bytes]]]:
    """Per keeper, the (purpose, claim id) each release of this epoch was made under."""
    return [
        [(purpose, claim) for purpose, claim, _ in await k.keeper.store.grants(k.keeper.db, host, rid, epoch)]
        for k in keepers
    ]


async def test_a_resident_moves_between_threshold_nodes_by_r2(tmp_path: Path, clock: FakeClock, llm: FakeLLM) -> None:
    async with peered_nodes(tmp_path, clock, llm) as (pair, a, b):
        source, destination = Grid(a, pair.keepers, llm, clock), Grid(b, pair.keepers, llm, clock)
        rid = await resident_asks_to_move(source, b)
        identity_key = (await source.resident(rid)).signing_public_key
        assert (await source.resident(rid)).key_epoch == 2

        await a.node.moves.tick(due_only=False)

        move = await move_out(a, rid)
        assert move.state == "accepted" and move.claim is not None and move.ready_at is not None
        assert move.ready_at == int(clock.now()) + MOVE_DELAY
        arrival = await b.node.moves.store.get_in(move.id)
        assert arrival is not None and arrival.claim_id is not None
        for keeper in pair.keepers:  # every keeper of the resident logged the claim, with both signatures
            claims = await keeper.keeper.store.claims_of(keeper.keeper.db, rid, "move")
            assert [(c.claim_id, c.host_key, c.counterpart_key, c.release_after) for c in claims] == [
                (arrival.claim_id, a.key, b.key, move.ready_at)
            ]

        clock.advance(MOVE_DELAY - 60)  # a minute short of the delay: the move waits, nothing is released
        await a.node.moves.tick(due_only=False)
        assert (await move_out(a, rid)).state == "accepted"
        assert await grants(pair.keepers, a.key, rid, 2) == [[]] * 5
        assert (await source.resident(rid)).status == "active"

        run_keys = await a.node.db.fetch_all("SELECT epoch FROM custody_run_keys WHERE resident_id = ?", (rid,))
        assert run_keys == []  # epoch 1 (opened by day 0's run) went with its key record; none for epoch 2

        clock.advance(61)
        await a.node.moves.tick(due_only=True)

        assert (await move_out(a, rid)).state == "done"
        released = await grants(pair.keepers, a.key, rid, 2)
        assert sorted(len(g) for g in released) == [0, 0, 1, 1, 1]  # k = 3 shares, no more
        assert {g for each in released for g in each} == {(Purpose.MOVE.value, arrival.claim_id)}
        for keeper in pair.keepers:  # released to the destination, and to nobody else
            given = await keeper.keeper.store.released_to(keeper.keeper.db, rid, 2, b.key)
            assert given in (None, a.key)
            assert await keeper.keeper.store.released_to(keeper.keeper.db, rid, 2, a.key) is None
        # The source never opened epoch 2 (no keeper released it for a run, above), nor rotated for the move.
        assert [e.data["reason"] for e in await read_entries(a.node.db, kind="epoch_rotated")] == []

        left = await source.resident(rid)
        assert left.status == "moved" and left.moved_to == b.url
        moved = await a.node.federation.network.store.page(10, author=a.key, kind=EventKind.MOVED)
        assert len(moved) == 1
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{a.url}/residents/{rid}", allow_redirects=False) as answer,
        ):
            assert answer.status == 308 and answer.headers["Location"] == f"{b.url}/residents/{rid}"

        arrived = await destination.resident(rid)
        assert arrived.status == "active" and arrived.signing_public_key == identity_key
        assert arrived.key_epoch == 2

        await source.settle()  # the source orders every epoch destroyed at its keepers
        epochs = await source.epochs(rid)
        assert {e: (epochs[e].state, epochs[e].reason) for e in epochs} == {
            1: ("destroyed", "rotated"),
            2: ("destroyed", "moved"),
        }
        assert await source.keeper_states(rid, 2) == ["destroyed"] * 5
        assert [e.data["epoch"] for e in await read_entries(a.node.db, kind="custody_destroyed")] == [1, 2]

        await destination.settle()
        assert (await destination.epochs(rid))[2].state == "committed"
        assert (await destination.run(rid, 2)).state == "completed"  # opened from the keepers, for b
