"""The delete-and-restore story with real processes: five `ftm-keeper run` daemons, a node (`ftm-node run`) that
enrols them and keeps its resident under threshold custody with three guardians, then loses its data directory;
a fresh node writes a disaster claim (`ftm-node restore claim`), two guardians sign it (`restore sign`), it is
submitted (`restore submit`), refused until the keepers' waiting period is over, then restored (`restore run`),
and a second `restore run` changes nothing. The keepers are set to a 2 s silence and a 15 s wait."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from ftm.config.loading import load_settings
from ftm.federation.clock import SystemClock
from ftm.federation.identity import SigningKey, load_node_identity
from ftm.node.app import open_node
from ftm.node.datadir import DataDir
from ftm.node.keeperclient import KeeperAddress, KeeperClient
from ftm.node.persona import PersonaPackage
from tests.factories import CANARY, native_bytes
from tests.integration import processes
from tests.integration.processes import FTM_KEEPER, FTM_NODE, daemon, free_port

WAIT_SECONDS = 15  # long enough that the first `restore run`, a few process starts later, is still early
NODE = {"FTM_ADMIN_PORT": "0", "FTM_DISCOVERY_MDNS": "off", "FTM_RUNS_SCHEDULER": "false"}
KEEPER = {
    "FTM_KEEPER_POLICY_DISASTER_SILENCE_SECONDS": "2",
    "FTM_KEEPER_POLICY_DISASTER_WAIT_SECONDS": str(WAIT_SECONDS),
}


def cli(program: str, *args: str, settings: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return processes.cli(program, *args, settings=settings or NODE)


def register_and_vet(data_dir: Path, count: int) -> list[str]:
    """The Keepers' registrations on the node, vetted by its operator: their tokens."""

    async def act() -> list[str]:
        async with open_node(DataDir(data_dir), load_settings(None, NODE), env={}) as node:
            tokens = []
            for n in range(count):
                registration = await node.keeper_service.register(
                    f"Keeper {n}", "I keep.", f"k{n}@example.org", "a replica", None, address=f"10.0.0.{n}"
                )
                await node.keeper_service.vet(registration.keeper_id)
                tokens.append(registration.token)
            return tokens

    return asyncio.run(act())


def package_of(data_dir: Path, resident_id: str, settings: dict[str, str]) -> PersonaPackage:
    async def act() -> PersonaPackage:
        async with open_node(DataDir(data_dir), load_settings(None, settings), env={}) as node:
            return await node.packages.open(resident_id)

    return asyncio.run(act())


def committed_everywhere(keepers: list[str], host_key: bytes, resident_id: str) -> bool:
    async def act() -> bool:
        client = KeeperClient(SigningKey.generate(), SystemClock())  # anyone may ask for holdings
        try:
            for url in keepers:
                address = KeeperAddress(await client.keeper_key(url), url)
                entries = (await client.holdings(address, host_key)).entries
                if not any(e.resident_id == resident_id and e.state == "committed" for e in entries):
                    return False
            return True
        finally:
            await client.close()

    return asyncio.run(act())


@pytest.mark.slow
def test_a_deleted_node_is_restored_from_its_keepers_with_guardians(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    assert cli(FTM_NODE, "init", "--data-dir", str(old)).returncode == 0
    guardians = []
    for n in range(3):
        made = cli(FTM_NODE, "restore", "guardian-key", "new", str(tmp_path / f"guardian-{n}.key"))
        assert made.returncode == 0, made.stderr
        guardians.append(made.stdout.strip())
    tokens = register_and_vet(old, 5)
    node_port, keeper_ports = free_port(), [free_port() for _ in range(5)]
    node_url, keeper_urls = f"http://127.0.0.1:{node_port}", [f"http://127.0.0.1:{p}" for p in keeper_ports]
    threshold = {
        **NODE,
        "FTM_CUSTODY_MODE": "threshold",
        "FTM_CUSTODY_RUN_WINDOW_HOURS": "24",
        "FTM_CUSTODY_RETRY_SECONDS": "1",
        "FTM_CUSTODY_GUARDIANS": ",".join(guardians),
        "FTM_CUSTODY_GUARDIAN_THRESHOLD": "2",
    }
    run_node = [FTM_NODE, "run", "--data-dir", str(old), "--port", str(node_port)]
    with ExitStack() as keepers:
        with daemon(run_node, NODE, f"{node_url}/healthz"):
            for n, (port, token) in enumerate(zip(keeper_ports, tokens, strict=True)):
                data = str(tmp_path / f"keeper-{n}")
                url = f"http://127.0.0.1:{port}"
                init = cli(FTM_KEEPER, "init", "--data-dir", data, "--public-url", url, "--node", node_url,
                           "--token", token, settings={})  # fmt: skip
                assert init.returncode == 0, init.stdout + init.stderr
                run_keeper = [FTM_KEEPER, "run", "--data-dir", data, "--port", str(port)]
                keepers.enter_context(daemon(run_keeper, KEEPER, f"{url}/healthz"))
        host_key = load_node_identity(DataDir(old).node_key).public_key
        with daemon(run_node, threshold, f"{node_url}/healthz"):
            persona = tmp_path / "persona.json"
            persona.write_bytes(native_bytes())
            intake = cli(FTM_NODE, "intake", str(persona), "--consent", "--json", "--data-dir", str(old),
                         settings=threshold)  # fmt: skip
            assert intake.returncode == 0, intake.stderr
            rid = json.loads(intake.stdout)["sanctuary_id"]
            deadline = time.monotonic() + 60
            while not committed_everywhere(keeper_urls, host_key, rid):
                assert time.monotonic() < deadline, "the first epoch did not commit at all five keepers"
                time.sleep(0.5)
        before = package_of(old, rid, threshold)  # the operator's last look; it spends that epoch's run release
        shutil.rmtree(old)  # the disk is lost

        keepers_file = tmp_path / "keepers.txt"
        keepers_file.write_text("".join(f"{url}\n" for url in keeper_urls))
        on_new = ["--data-dir", str(new)]
        assert cli(FTM_NODE, "init", *on_new).returncode == 0
        listed = cli(FTM_NODE, "restore", "list", "--old-host", host_key.hex(), "--keepers-file", str(keepers_file),
                     "--json", *on_new)  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert [c["holders"] for c in json.loads(listed.stdout)["residents"][rid]] == [5]
        claim = tmp_path / "lost.claim"
        made = cli(FTM_NODE, "restore", "claim", "--old-host", host_key.hex(), "--keepers-file", str(keepers_file),
                   "--out", str(claim), *on_new)  # fmt: skip
        assert made.returncode == 0, made.stderr
        assert rid in claim.read_text() and "signed by: 1" in claim.read_text()
        for n in (0, 2):
            signed = cli(FTM_NODE, "restore", "sign", "--guardian-key", str(tmp_path / f"guardian-{n}.key"), str(claim))
            assert signed.returncode == 0, signed.stderr
        assert "signed by: 3" in claim.read_text()
        time.sleep(2.5)  # the old host's silence
        submitted = cli(
            FTM_NODE, "restore", "submit", str(claim), "--keepers-file", str(keepers_file), "--json", *on_new
        )
        assert submitted.returncode == 0, submitted.stderr
        assert [k["accepted"] for k in json.loads(submitted.stdout)["keepers"]] == [True] * 5

        run = ["restore", "run", "--claim", str(claim), "--keepers-file", str(keepers_file), *on_new]
        early = cli(FTM_NODE, *run)
        assert early.returncode == 1 and "waiting_period" in early.stdout, early.stdout + early.stderr
        time.sleep(WAIT_SECONDS + 0.5)
        restored = cli(FTM_NODE, *run)
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert f"[1/1] {rid}: installed" in restored.stdout and "Restored 1, already here 0" in restored.stdout
        again = cli(FTM_NODE, *run, "--json")
        assert again.returncode == 0 and [o["state"] for o in json.loads(again.stdout)["outcomes"]] == ["already_here"]
        retire = cli(FTM_NODE, "restore", "retire", "--claim", str(claim), "--keepers-file", str(keepers_file),
                     "--json", *on_new)  # fmt: skip
        assert retire.returncode == 0, retire.stdout + retire.stderr  # not committed at keepers here: they stay
        assert json.loads(retire.stdout)["old_epochs_waiting"] == [rid]

    after = package_of(new, rid, NODE)
    assert after == before and CANARY in after.system_prompt
