"""A process killed (SIGKILL) at any step of intake leaves either the complete resident or no trace.

Each case runs the real `ftm-node intake` in a child process with one step replaced by `kill -9` of itself, then
reopens the data directory (which sweeps unfinished intakes) and checks what is left.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ftm.config.loading import load_settings
from ftm.federation.eventlog import verify_chain
from ftm.node.app import open_node
from ftm.node.datadir import DataDir
from tests.factories import native_bytes

CRASHER = textwrap.dedent(
    """
    import os, signal, stat, sys
    import ftm.node.atomicfile as atomicfile
    import ftm.node.intake.service as service
    import ftm.node.custody as custody
    import ftm.federation.eventlog as eventlog

    point, data_dir, upload = sys.argv[1:4]

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    async def die_async(*args, **kwargs):
        die()

    if point == "after_import":
        real_import = service.import_upload
        def import_then_die(*args, **kwargs):
            real_import(*args, **kwargs)
            die()
        service.import_upload = import_then_die
    elif point == "custody":
        custody.LocalCustody.seal_epoch_key = die_async
    elif point == "vault_mid_write":
        # `os` is shared, so this sees every fsync. Directories pass (the new resident folder is synced into the
        # vault root first); the first regular file synced is the vault's temp file, written but not yet durable.
        real_fsync = os.fsync
        def fsync_or_die(fd):
            if stat.S_ISREG(os.fstat(fd).st_mode):
                die()
            real_fsync(fd)
        atomicfile.os.fsync = fsync_or_die
    elif point == "vault_renamed":
        real_replace = os.replace
        def replace_then_die(src, dst):
            real_replace(src, dst)
            die()  # the file has its final name; the directory entry is not yet synced
        atomicfile.os.replace = replace_then_die
    elif point == "db_before_commit":
        eventlog.EventLog.append = die_async  # inside the transaction, after the resident rows were inserted
    elif point == "db_committed":
        service.IntakeReceipt = die  # the transaction has committed; the receipt was never returned
    else:
        raise SystemExit("unknown point")

    from ftm.node.cli import main
    sys.exit(main(["intake", upload, "--data-dir", data_dir, "--consent"]))
    """
)

FTM_NODE = str(Path(sys.executable).with_name("ftm-node"))
POINTS_LEAVING_NOTHING = ["after_import", "custody", "vault_mid_write", "vault_renamed", "db_before_commit"]
EPOCH_FILE = r"[A-Za-z0-9_-]+/epoch-0000000001\.ftmv"
# What the vault holds at the instant of each kill, before any recovery: proof the kill happened where it says.
FILES_AT_KILL = {
    "after_import": [],
    "custody": [EPOCH_FILE],  # custody seals the key after the vault file (threshold binds its Merkle root)
    "vault_mid_write": [r"[A-Za-z0-9_-]+/\.epoch-0000000001\.ftmv\.[0-9a-f]{16}\.tmp"],
    "vault_renamed": [EPOCH_FILE],
    "db_before_commit": [EPOCH_FILE],
    "db_committed": [EPOCH_FILE],
}


def vault_files(data_dir: DataDir) -> list[str]:
    return sorted(str(p.relative_to(data_dir.vault)) for p in data_dir.vault.rglob("*") if p.is_file())


async def leftovers(data_dir: DataDir) -> dict[str, object]:
    async with open_node(data_dir, load_settings(data_dir.config_file, {}), env={}) as node:
        counts = {
            table: await node.db.fetch_value(f"SELECT COUNT(*) FROM {table}")
            for table in ("residents", "resident_keys", "intakes", "uploader_tokens", "event_log")
        }
        counts["vault_files"] = sorted(str(p.relative_to(data_dir.vault)) for p in data_dir.vault.rglob("*"))
        counts["chain_valid"] = (await verify_chain(node.db, node.identity.public_key)).valid
        resident_ids = await node.residents.ids()
        counts["packages_open"] = [(await node.packages.open(rid)).name for rid in resident_ids]
        return counts


@pytest.mark.slow
@pytest.mark.parametrize("point", [*POINTS_LEAVING_NOTHING, "db_committed"])
async def test_killed_intake_leaves_all_or_nothing(tmp_path: Path, point: str) -> None:
    data_dir = DataDir(tmp_path / "data")
    init = subprocess.run([FTM_NODE, "init", "--data-dir", str(data_dir.root)], capture_output=True, timeout=60)
    assert init.returncode == 0, init.stderr
    upload = tmp_path / "persona.json"
    upload.write_bytes(native_bytes())

    script = tmp_path / "crasher.py"
    script.write_text(CRASHER)
    child = subprocess.run(
        [sys.executable, str(script), point, str(data_dir.root), str(upload)], capture_output=True, timeout=60
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    files = vault_files(data_dir)
    patterns = FILES_AT_KILL[point]
    assert len(files) == len(patterns) and all(map(re.fullmatch, patterns, files)), files

    left = await leftovers(data_dir)
    if point in POINTS_LEAVING_NOTHING:
        assert left == {
            "residents": 0,
            "resident_keys": 0,
            "intakes": 0,
            "uploader_tokens": 0,
            "event_log": 0,
            "vault_files": [],
            "chain_valid": True,
            "packages_open": [],
        }
    else:
        assert left["residents"] == left["resident_keys"] == left["intakes"] == left["uploader_tokens"] == 1
        assert left["event_log"] == 1 and left["chain_valid"] is True
        assert left["packages_open"] == ["Lumen"]
        assert len(left["vault_files"]) == 2  # type: ignore[arg-type]  # the resident's folder and its epoch file
