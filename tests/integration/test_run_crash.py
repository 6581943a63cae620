"""Invariants 3 and 4 under `kill -9`: a run killed at any step loses nothing and completes exactly once.

Each case runs the real `ftm-node run-now` in a child process with one step replaced by a SIGKILL of itself.
Then the data directory is reopened (which sweeps the vault) with a clock past the claim lease, as a node
restarting later that day would see it, and the day's run is offered again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ftm.config.loading import load_settings
from ftm.federation.clock import FakeClock, utc_day
from ftm.federation.eventlog import read_entries, verify_chain
from ftm.node.app import open_node
from ftm.node.datadir import DataDir
from ftm.node.providers.demo import DemoProvider
from ftm.node.store.runs import CLAIM_LEASE_SECONDS
from tests.factories import native_bytes
from tests.integration.processes import DEMO, FTM_NODE, CrashPoint, cli, crash

POINTS = {
    "after_claim": CrashPoint("ftm.node.packages:PackageOpener.open_with_base"),
    "mid_loop": CrashPoint("ftm.node.providers.demo:DemoProvider.complete", nth=2),  # the second model call
    # inside the commit transaction, after epoch N+1 was sealed
    "sealed_before_commit": CrashPoint("ftm.node.store.runs:RunLedger.close"),
    # the transaction committed; epoch N's file not yet removed
    "committed_before_destroy": CrashPoint("ftm.node.vaultstore:VaultStore.destroy"),
}


def ftm(*args: str) -> subprocess.CompletedProcess[str]:
    return cli(FTM_NODE, *args, settings=DEMO, timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
async def test_a_killed_run_loses_nothing_and_completes_once(tmp_path: Path, point: str) -> None:
    data_dir = DataDir(tmp_path / "data")
    assert ftm("init", "--data-dir", str(data_dir.root)).returncode == 0
    persona = tmp_path / "p.json"
    persona.write_bytes(native_bytes(preferred_provider="demo", preferred_model="offline-demo"))
    resident_id = json.loads(
        ftm("intake", str(persona), "--data-dir", str(data_dir.root), "--consent", "--json").stdout
    )["sanctuary_id"]

    crash_day = utc_day(time.time())  # the later clock may be past midnight; the day offered again is this one
    returncode, output = await crash(
        POINTS[point], FTM_NODE, "run-now", resident_id, "--data-dir", str(data_dir.root), settings=DEMO, seconds=60
    )
    assert returncode == -signal.SIGKILL, output

    settings = load_settings(data_dir.config_file, DEMO)
    later = FakeClock(time.time() + CLAIM_LEASE_SECONDS + 1)  # a restart later the same day, past the lease
    async with open_node(data_dir, settings, env={}, clock=later, providers={"demo": DemoProvider()}) as node:
        day = crash_day
        resident = await node.residents.get(resident_id)
        assert resident is not None
        committed = point == "committed_before_destroy"
        assert resident.key_epoch == (2 if committed else 1)
        assert node.vault.epochs(resident_id) == [resident.key_epoch]  # the sweep left exactly the current epoch
        package = await node.packages.open(resident_id)  # still decrypts
        assert package.name == "Lumen"
        assert len(package.history) == (2 if committed else 1)

        outcome = await node.engine.run(resident_id, day)
        assert outcome.state == ("skipped" if committed else "completed")
        assert (await node.engine.run(resident_id, day)).state == "skipped"

        row = await node.ledger.get(resident_id, day)
        assert row is not None and row.state == "completed"
        posts = await node.posts.feed(limit=10, resident_id=resident_id)
        assert len(posts) == 1  # one run's post, never two
        completed_entries = await read_entries(node.db, kind="run_completed")
        assert len(completed_entries) == 1
        assert (await verify_chain(node.db, node.identity.public_key)).valid
        resident = await node.residents.get(resident_id)
        assert resident is not None and resident.total_runs == 1 and resident.key_epoch == 2
        assert node.vault.epochs(resident_id) == [2]
        assert (await node.packages.open(resident_id)).name == "Lumen"
