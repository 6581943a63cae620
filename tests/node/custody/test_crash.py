"""Invariants 3 and 4 under threshold custody: a node that dies after its keepers released an epoch for a run, and
before the run's commit moved the resident on, opens the same epoch again when it comes back, with the ephemeral
key it kept, and the day's run completes once. Keepers release an epoch for a run to one ephemeral key only, so
without the kept key the resident would be stranded on a spent epoch.

The death is simulated in one process: the commit's transaction raises a BaseException that nothing in the node
catches (as a SIGKILL would stop it), the rotation a failed run makes is barred the same way (a dead process
rotates nothing), and the node is closed and opened again from its data directory against the same keepers.
tests/integration/test_threshold_run_crash.py does it with `kill -9` of a real process.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import pytest

from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import read_entries, verify_chain
from ftm.federation.identity import inbox_public_key
from ftm.node.rotation import EpochRotation
from ftm.node.store.runs import CLAIM_LEASE_SECONDS, RunLedger
from tests.fakes.llm_server import FakeLLM
from tests.node.custody.grid import Grid, custody_grid, enrolled_keepers, threshold_node
from tests.node.run.engine.harness import day, ending


class Died(BaseException):
    """The process stops here: no handler runs, nothing after it happens."""


async def die(*args: object, **kwargs: object) -> NoReturn:
    raise Died


async def released(grid: Grid, rid: str, epoch: int) -> list[tuple[str, bytes]]:
    """Every grant the keepers recorded for the epoch: (purpose, the ephemeral key the share was sealed to)."""
    rows = []
    for site in grid.keepers:
        rows += await site.keeper.db.fetch_all(
            "SELECT purpose, ephemeral_key FROM releases WHERE resident_id = ? AND epoch = ?", (rid, epoch)
        )
    return [(row[0], bytes(row[1])) for row in rows]


async def release_log(grid: Grid, rid: str) -> list[tuple[str, object, object]]:
    entries = []
    for site in grid.keepers:
        entries += [
            (e.kind, e.data.get("code"), e.data.get("repeat"))
            for e in await read_entries(site.keeper.db, limit=10_000)
            if e.kind.startswith("release_") and e.subject == rid
        ]
    return sorted(entries, key=str)


async def kept_run_keys(grid: Grid) -> list[tuple[str, int, bytes]]:
    rows = await grid.node.db.fetch_all("SELECT resident_id, epoch, secret FROM custody_run_keys")
    return [(row[0], row[1], bytes(row[2])) for row in rows]


async def test_a_node_that_dies_after_the_releases_runs_the_day_on_the_same_epoch_after_a_restart(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with enrolled_keepers(tmp_path, clock, llm) as (keepers, data_dir):
        async with threshold_node(data_dir, keepers, clock, llm) as grid:
            rid = (await grid.admit()).sanctuary_id
            await grid.settle()
            assert (await grid.epochs(rid))[1].state == "committed"
            with monkeypatch.context() as dying:
                dying.setattr(RunLedger, "close", die)  # inside the run's commit: epoch 2 sealed, not committed
                dying.setattr(EpochRotation, "rotate", die)
                with pytest.raises(Died):
                    await grid.run(rid, 0)

            assert (await grid.resident(rid)).key_epoch == 1  # the commit never happened
            [(kept_rid, kept_epoch, secret)] = await kept_run_keys(grid)
            assert (kept_rid, kept_epoch) == (rid, 1)
            assert await released(grid, rid, 1) == [("run", inbox_public_key(secret))] * 3

        clock.advance(CLAIM_LEASE_SECONDS + 1)  # back later the same day, past the dead run's claim
        async with threshold_node(data_dir, keepers, clock, llm) as grid:
            assert await kept_run_keys(grid) == [(rid, 1, secret)]
            llm.script(*ending())
            outcome = await grid.site.node.engine.run(rid, day(0))

            assert outcome.state == "completed", outcome
            resident = await grid.resident(rid)
            assert (resident.key_epoch, resident.total_runs) == (2, 1)
            # Opened from the same three releases of epoch 1, asked for again with the kept key: nothing new given.
            assert await released(grid, rid, 1) == [("run", inbox_public_key(secret))] * 3
            assert await release_log(grid, rid) == sorted(
                [("release_granted", "run_released", False)] * 3 + [("release_granted", "run_released", True)] * 3,
                key=str,
            )
            assert await kept_run_keys(grid) == []  # deleted with epoch 1's record, in the run's commit
            assert (await grid.site.node.engine.run(rid, day(0))).state == "skipped"
            assert len(await read_entries(grid.node.db, kind="run_completed")) == 1
            ledger = await grid.node.ledger.get(rid, day(0))
            assert ledger is not None and ledger.state == "completed"
            assert (await verify_chain(grid.node.db, grid.node.identity.public_key)).valid
            await grid.settle()
            epochs = await grid.epochs(rid)
            assert (epochs[1].state, epochs[2].state) == ("destroyed", "committed")


async def test_a_run_that_got_too_few_shares_asks_again_with_the_same_key_and_opens(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with custody_grid(tmp_path, clock, llm) as grid:
        rid = (await grid.admit()).sanctuary_id
        await grid.settle()
        high = {d.keeper_key for d in await grid.deliveries(rid, 1) if d.x > 2}  # asked after x = 1 and 2
        down = [site for site in grid.keepers if site.key in high]
        for site in down:
            await site.stop()

        failed = await grid.run(rid, 0, script=False)  # two keepers answer of the three needed

        assert (failed.state, failed.error_code) == ("failed", "custody_unavailable")
        assert (await grid.resident(rid)).key_epoch == 1  # nothing was opened: no rotation
        [(_, _, secret)] = await kept_run_keys(grid)
        assert await released(grid, rid, 1) == [("run", inbox_public_key(secret))] * 2
        for site in down:
            await site.start()

        assert (await grid.run(rid, 0, hour=12.25)).state == "completed"  # past the retry time
        assert await released(grid, rid, 1) == [("run", inbox_public_key(secret))] * 3
        repeats = [entry for entry in await release_log(grid, rid) if entry[2] is True]
        assert len(repeats) == 2  # the two that had released answered again, to the same key
        assert (await grid.resident(rid)).key_epoch == 2
        assert await kept_run_keys(grid) == []


async def test_a_kept_run_key_goes_with_its_epochs_record(tmp_path: Path, clock: FakeClock, llm: FakeLLM) -> None:
    """The row cannot outlive the key record (deleted with it, in its transaction), nor exist without one."""
    async with custody_grid(tmp_path, clock, llm) as grid:
        rid = (await grid.admit()).sanctuary_id
        store = grid.node.custody_parts.store
        first = await store.run_key(rid, 1, b"\x01" * 32)
        assert first == b"\x01" * 32
        assert await store.run_key(rid, 1, b"\x02" * 32) == first  # kept: a retry asks with the same key
        assert await store.run_key(rid, 2, b"\x03" * 32) is None  # no record of epoch 2
        assert await store.run_key("nobody", 1, b"\x04" * 32) is None
        async with grid.node.db.transaction("test_move_on") as tx:
            assert await store.rotate_key(
                tx, rid, old_epoch=1, new_epoch=2, custody="threshold", record=b"r", vault_bytes=1, now=0
            )
        assert await kept_run_keys(grid) == []
