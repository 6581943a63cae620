"""`VaultStore`: the on-disk layout, sealing and opening by (resident, epoch), destruction and the recovery sweep.

The format itself is tested in `test_vault.py`; here files are real files under `tmp_path`, and what matters is
where they go, with which permissions, and what is left after each operation.
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from ftm.node.vault import VaultFailure, VaultIntegrityError, new_epoch_key
from ftm.node.vaultstore import VaultStore

KEY = bytes(range(32))
CANARY = b"CANARY-persona-secret-7f3a"


async def test_layout_permissions_and_round_trip(tmp_path: Path) -> None:
    store = VaultStore(tmp_path / "vault")
    assert store.path_for("alice", 3) == tmp_path / "vault" / "alice" / "epoch-0000000003.ftmv"
    size = await store.seal("alice", 3, KEY, [[CANARY]])
    assert size == store.path_for("alice", 3).stat().st_size
    assert (await store.open("alice", 3, KEY, 1000)).sections == ((CANARY,),)
    assert stat.S_IMODE((tmp_path / "vault" / "alice").stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path_for("alice", 3).stat().st_mode) == 0o600
    assert [p.name for p in (tmp_path / "vault" / "alice").iterdir()] == ["epoch-0000000003.ftmv"]  # no temp file
    for path in (tmp_path / "vault").rglob("*"):
        if path.is_file():
            assert CANARY not in path.read_bytes()


async def test_sealing_an_epoch_again_replaces_its_file(tmp_path: Path) -> None:
    store = VaultStore(tmp_path / "vault")
    await store.seal("alice", 3, KEY, [[b"old"]])
    await store.seal("alice", 3, KEY, [[b"new"]])
    assert (await store.open("alice", 3, KEY, 10)).sections == ((b"new",),)
    assert store.epochs("alice") == [3]


@pytest.mark.parametrize("resident_id", ["", ".hidden", "..", "../etc", "a/b", "a" * 65, "é"])
def test_malformed_resident_ids_never_become_paths(resident_id: str) -> None:
    with pytest.raises(ValueError, match="resident id"):
        VaultStore(Path("/nonexistent")).path_for(resident_id, 1)


@pytest.mark.parametrize("epoch", [-1, 1 << 64])
def test_epochs_out_of_range_are_caller_errors(epoch: int) -> None:
    with pytest.raises(ValueError, match="epoch"):
        VaultStore(Path("/nonexistent")).path_for("alice", epoch)


async def test_epochs_and_resident_ids(tmp_path: Path) -> None:
    store = VaultStore(tmp_path / "vault")
    assert store.resident_ids() == set()
    assert store.epochs("alice") == []
    for epoch in (12, 3, 7):
        await store.seal("alice", epoch, KEY, [[b"x"]])
    await store.seal("bob", 1, KEY, [[b"y"]])
    (tmp_path / "vault" / ".cache").mkdir()  # not a resident id
    (tmp_path / "vault" / "stray-file").write_bytes(b"")
    (tmp_path / "vault" / "alice" / "notes.txt").write_bytes(b"")
    assert store.epochs("alice") == [3, 7, 12]
    assert store.resident_ids() == {"alice", "bob"}


async def test_destroy_is_idempotent(tmp_path: Path) -> None:
    store = VaultStore(tmp_path / "vault")
    await store.seal("alice", 1, KEY, [[b"x"]])
    await store.seal("alice", 2, new_epoch_key(), [[b"x"]])
    await store.destroy("alice", 1)
    await store.destroy("alice", 1)
    assert store.epochs("alice") == [2]
    await store.destroy_resident("alice")
    await store.destroy_resident("alice")
    assert store.resident_ids() == set()
    await store.destroy("nobody", 1)


async def test_open_missing_epoch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = VaultStore(tmp_path / "vault")
    with pytest.raises(VaultIntegrityError) as caught:
        await store.open("alice", 1, KEY, 10)
    assert caught.value.reason is VaultFailure.MISSING
    assert caplog.record_tuples == [("ftm.node.vaultstore", logging.WARNING, "vault integrity failure: missing")]


async def test_refuses_a_file_of_another_epoch_renamed_into_place(tmp_path: Path) -> None:
    store = VaultStore(tmp_path / "vault")
    await store.seal("alice", 1, KEY, [[b"old"]])
    store.path_for("alice", 1).rename(store.path_for("alice", 2))
    with pytest.raises(VaultIntegrityError) as caught:
        await store.open("alice", 2, KEY, 10)
    assert caught.value.reason is VaultFailure.WRONG_EPOCH


async def test_remove_orphans(tmp_path: Path) -> None:
    store = VaultStore(tmp_path / "vault")
    await store.seal("alice", 1, KEY, [[b"x"]])
    await store.seal("ghost", 1, KEY, [[b"x"]])  # an intake that crashed before its database commit
    leftover = store.path_for("alice", 2).with_name(".epoch-0000000002.ftmv.0123456789abcdef.tmp")
    leftover.write_bytes(b"half")
    assert await store.remove_orphans({"alice", "carol"}) == 2
    assert store.resident_ids() == {"alice"}
    assert [p.name for p in (tmp_path / "vault" / "alice").iterdir()] == ["epoch-0000000001.ftmv"]
    assert await store.remove_orphans({"alice"}) == 0
    assert await VaultStore(tmp_path / "absent").remove_orphans(set()) == 0
