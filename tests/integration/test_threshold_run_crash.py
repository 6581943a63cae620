"""Invariants 3 and 4 under threshold custody and `kill -9`: a node killed after its keepers released the epoch
for a run, and before the run's commit moved the resident to the next epoch, completes the day's run on the same
epoch's shares once it is back, and exactly once.

Five real keeper daemons (`ftm.keeper.daemon` behind `ftm.keeper.server`) serve on 127.0.0.1 from this test's
event loop, on a clock that follows real time (signed requests need clocks within five minutes). A node enrols them
and admits a resident in threshold custody (3-of-5). Then the real `ftm-node run-now` runs in a child process with
one step replaced by a SIGKILL of itself, after the releases. The node is opened again from its data directory
with a clock past the dead run's claim lease, against the same keepers, and the day's run is offered again: the
keepers answer the kept ephemeral key again (a repeat), and no other key ever has the epoch.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from ftm.config.loading import load_settings
from ftm.federation.clock import utc_day
from ftm.federation.eventlog import read_entries, verify_chain
from ftm.federation.identity import inbox_public_key
from ftm.node.app import open_node
from ftm.node.providers.demo import DemoProvider
from ftm.node.store.runs import CLAIM_LEASE_SECONDS
from tests.fakes.llm_server import FakeLLM
from tests.integration.processes import DEMO, FTM_NODE, QUIET, CrashPoint, RealTimeClock, crash
from tests.node.custody.grid import THRESHOLD, KeeperSite, enrolled_keepers, threshold_node

CHILD_SECONDS = 120
POINTS = {
    # three keepers released epoch 1 and the key is derived
    "opened": CrashPoint("ftm.node.thresholdcustody:ThresholdCustody.open_epoch_key", "after"),
    # inside the run's commit: epoch 2 dealt and sealed, not committed
    "sealed_before_commit": CrashPoint("ftm.node.store.runs:RunLedger.close"),
}


async def released(keepers: list[KeeperSite], rid: str, epoch: int) -> list[bytes]:
    """The ephemeral key of every run grant the keepers recorded for the epoch."""
    keys = []
    for site in keepers:
        rows = await site.keeper.db.fetch_all(
            "SELECT ephemeral_key FROM releases WHERE resident_id = ? AND epoch = ? AND purpose = 'run'", (rid, epoch)
        )
        keys += [bytes(row[0]) for row in rows]
    return keys


async def repeats(keepers: list[KeeperSite], rid: str) -> int:
    count = 0
    for site in keepers:
        entries = await read_entries(site.keeper.db, kind="release_granted", limit=10_000)
        count += sum(1 for e in entries if e.subject == rid and e.data.get("repeat") is True)
    return count


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
async def test_a_run_killed_after_its_releases_completes_on_the_same_epoch_once(tmp_path: Path, point: str) -> None:
    clock = RealTimeClock()
    async with FakeLLM() as llm, enrolled_keepers(tmp_path, clock, llm) as (keepers, data_dir):
        async with threshold_node(data_dir, keepers, clock, llm) as grid:
            rid = (await grid.admit(preferred_provider="demo", preferred_model="offline-demo")).sanctuary_id
            await grid.settle()
            assert (await grid.epochs(rid))[1].state == "committed"
            assert await grid.keeper_states(rid, 1) == ["committed"] * 5

        crash_day = utc_day(clock.now())  # the later clock may be past midnight; the day offered again is this one
        child_settings = {**DEMO, **THRESHOLD, **QUIET}
        returncode, output = await crash(
            POINTS[point], FTM_NODE, "run-now", rid, "--data-dir", str(data_dir.root), settings=child_settings,
            seconds=CHILD_SECONDS,
        )  # fmt: skip
        assert returncode == -signal.SIGKILL, output

        [given] = set(await released(keepers, rid, 1))
        assert len(await released(keepers, rid, 1)) == 3  # three keepers released epoch 1, to one key

        clock.advance(CLAIM_LEASE_SECONDS + 1)  # a restart later the same day, past the dead run's claim
        settings = load_settings(data_dir.config_file, {**DEMO, **THRESHOLD})
        async with open_node(data_dir, settings, env={}, clock=clock, providers={"demo": DemoProvider()}) as node:
            resident = await node.residents.get(rid)
            assert resident is not None and (resident.key_epoch, resident.total_runs) == (1, 0)
            assert node.vault.epochs(rid) == [1]  # the sweep left exactly the current epoch
            [(kept,)] = await node.db.fetch_all(
                "SELECT secret FROM custody_run_keys WHERE resident_id = ? AND epoch = 1", (rid,)
            )
            assert inbox_public_key(bytes(kept)) == given  # the key the dead run asked with, kept on disk

            outcome = await node.engine.run(rid, crash_day)
            assert outcome.state == "completed", outcome
            assert (await node.engine.run(rid, crash_day)).state == "skipped"

            assert await released(keepers, rid, 1) == [given] * 3  # no new grant: the same three, asked again
            assert await repeats(keepers, rid) == 3
            resident = await node.residents.get(rid)
            assert resident is not None and (resident.key_epoch, resident.total_runs) == (2, 1)
            assert node.vault.epochs(rid) == [2]
            assert await node.db.fetch_all("SELECT 1 FROM custody_run_keys") == []  # gone with epoch 1's record
            row = await node.ledger.get(rid, crash_day)
            assert row is not None and row.state == "completed"
            assert len(await read_entries(node.db, kind="run_completed")) == 1
            assert len(await node.posts.feed(limit=10, resident_id=rid)) == 1  # one run's post, never two
            assert (await verify_chain(node.db, node.identity.public_key)).valid
