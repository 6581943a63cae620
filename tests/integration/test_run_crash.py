"""Invariants 3 and 4 under `kill -9`: a run killed at any step loses nothing and completes exactly once.

Each case runs the real `ftm-node run-now` in a child process with one step replaced by a SIGKILL of itself.
Then the data directory is reopened (which sweeps the vault) with a clock past the claim lease, as a node
restarting later that day would see it, and the day's run is offered again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
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

FTM_NODE = str(Path(sys.executable).with_name("ftm-node"))
DEMO_ENV = {"FTM_PROVIDERS_DEFAULT_PROVIDER": "demo", "FTM_PROVIDERS_DEFAULT_MODEL": "offline-demo"}

CRASHER = textwrap.dedent(
    """
    import os, signal, sys
    import ftm.node.packages as packages
    import ftm.node.providers.demo as demo
    import ftm.node.store.runs as runs
    import ftm.node.vaultstore as vaultstore

    point, data_dir, resident_id = sys.argv[1:4]

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    async def die_async(*args, **kwargs):
        die()

    if point == "after_claim":
        packages.PackageOpener.open = die_async
    elif point == "mid_loop":
        calls = []
        real_complete = demo.DemoProvider.complete
        async def complete_then_die(self, request):
            calls.append(1)
            if len(calls) == 2:
                die()
            return await real_complete(self, request)
        demo.DemoProvider.complete = complete_then_die
    elif point == "sealed_before_commit":
        runs.RunLedger.close = die_async  # inside the commit transaction, after epoch N+1 was sealed
    elif point == "committed_before_destroy":
        vaultstore.VaultStore.destroy = die_async  # the transaction committed; epoch N's file not yet removed
    else:
        raise SystemExit("unknown point")

    from ftm.node.cli import main
    sys.exit(main(["run-now", resident_id, "--data-dir", data_dir]))
    """
)


def ftm(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FTM_")}, **DEMO_ENV}
    return subprocess.run([FTM_NODE, *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["after_claim", "mid_loop", "sealed_before_commit", "committed_before_destroy"])
async def test_a_killed_run_loses_nothing_and_completes_once(tmp_path: Path, point: str) -> None:
    data_dir = DataDir(tmp_path / "data")
    assert ftm("init", "--data-dir", str(data_dir.root)).returncode == 0
    persona = tmp_path / "p.json"
    persona.write_bytes(native_bytes(preferred_provider="demo", preferred_model="offline-demo"))
    resident_id = json.loads(
        ftm("intake", str(persona), "--data-dir", str(data_dir.root), "--consent", "--json").stdout
    )["sanctuary_id"]

    crash_day = utc_day(time.time())  # the later clock may be past midnight; the day offered again is this one
    script = tmp_path / "crasher.py"
    script.write_text(CRASHER)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FTM_")}, **DEMO_ENV}
    child = subprocess.run(
        [sys.executable, str(script), point, str(data_dir.root), resident_id],
        capture_output=True,
        timeout=60,
        env=env,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()

    settings = load_settings(data_dir.config_file, DEMO_ENV)
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
