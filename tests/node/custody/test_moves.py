"""A resident moves between two nodes that both keep their residents under threshold custody (with the same five
keepers, each enrolled with both): the source opens the epoch once and rotates before it sends anything; the
destination re-seals what it received under a key it dealt; old epochs are destroyed on the keepers (`moved`)."""

from __future__ import annotations

from pathlib import Path

from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import read_entries
from ftm.node.datadir import DataDir
from tests.fakes.llm_server import FakeLLM
from tests.integration.test_cli import free_port
from tests.node.custody.grid import THRESHOLD, Grid, enrol_keepers, open_keepers
from tests.node.moves.sites import open_site, peered
from tests.node.run.engine.harness import calls, ending


async def test_a_resident_moves_between_threshold_nodes(tmp_path: Path, clock: FakeClock, llm: FakeLLM) -> None:
    async with open_keepers(tmp_path / "keepers", clock, 5) as keepers:
        dirs, ports = (DataDir(tmp_path / "a"), DataDir(tmp_path / "b")), (free_port(), free_port())
        for data_dir, port in zip(dirs, ports, strict=True):
            async with open_site(data_dir, clock, llm, port=port) as local:
                await enrol_keepers(local, keepers, clock)
        async with (
            open_site(dirs[0], clock, llm, port=ports[0], settings=THRESHOLD) as a,
            open_site(dirs[1], clock, llm, port=ports[1], bootstrap=a.url, settings=THRESHOLD) as b,
        ):
            await peered(a, b)
            source, destination = Grid(a, keepers, llm, clock), Grid(b, keepers, llm, clock)
            rid = (await source.admit()).sanctuary_id
            await source.settle()
            llm.script(calls(("request_move", {"destination": b.node_id})), *ending())
            assert (await source.run(rid, 0, script=False)).state == "completed"
            await source.settle()  # epoch 2 committed: the move's transfer opens it

            await a.node.moves.tick(due_only=False)

            left = await source.resident(rid)
            assert left.status == "moved"
            await source.settle()
            epochs = await source.epochs(rid)
            assert {e.state for e in epochs.values()} == {"destroyed"}
            # Epoch 3, the rotation the transfer made, left before it reached any keeper: nothing of it to destroy.
            assert {e: epochs[e].reason for e in epochs} == {1: "rotated", 2: "moved"}
            assert await source.keeper_states(rid, 2) == ["destroyed"] * 5

            arrived = await destination.resident(rid)
            assert arrived.status == "active"
            await destination.settle()
            assert (await destination.epochs(rid))[arrived.key_epoch].state == "committed"
            assert (await destination.run(rid, 1)).state == "completed"  # opened from the keepers, for b
            assert [e.data["epoch"] for e in await read_entries(a.node.db, kind="custody_destroyed")] == [1, 2]
