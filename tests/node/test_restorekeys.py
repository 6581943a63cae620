"""The ephemeral keys a restore asks keepers with: kept across a crash, and gone once they can open nothing."""

from __future__ import annotations

from pathlib import Path

from ftm.node.restorekeys import KEYS_DIR_NAME, RestoreKeys

RID, OTHER = "lumenxxxxxxxxxxxxxxxxxxxxx", "emberxxxxxxxxxxxxxxxxxxxxx"


def kept(work: Path) -> set[str]:
    return {p.name for p in (work / KEYS_DIR_NAME).glob("*.key")}


async def test_a_grant_is_asked_with_the_same_secret_until_the_resident_lives_here(tmp_path: Path) -> None:
    keys = RestoreKeys(tmp_path)
    first = await keys.secret(RID, 4, "disaster", b"claim-1")
    assert await RestoreKeys(tmp_path).secret(RID, 4, "disaster", b"claim-1") == first  # as after a crash
    assert await keys.secret(RID, 5, "disaster", b"claim-1") != first
    assert await keys.secret(RID, 4, "run", b"") != first
    assert len(kept(tmp_path)) == 3
    assert all((tmp_path / KEYS_DIR_NAME / name).stat().st_mode & 0o077 == 0 for name in kept(tmp_path))

    await keys.forget(RID)
    assert kept(tmp_path) == set()


async def test_a_restore_under_a_new_claim_drops_the_keys_of_the_claim_given_up(tmp_path: Path) -> None:
    keys = RestoreKeys(tmp_path)
    await keys.secret(RID, 4, "disaster", b"claim-1")
    await keys.secret(RID, 5, "run", b"")
    current = await keys.secret(RID, 4, "disaster", b"claim-2")
    neighbour = await keys.secret(OTHER, 9, "disaster", b"claim-1")
    assert len(kept(tmp_path)) == 4

    assert await keys.forget_other_grants(RID, "disaster", b"claim-2") == 2

    assert len(kept(tmp_path)) == 2
    assert await keys.secret(RID, 4, "disaster", b"claim-2") == current  # this claim's key stays
    assert await keys.secret(OTHER, 9, "disaster", b"claim-1") == neighbour  # another resident's are not touched
    assert await keys.forget_other_grants(RID, "disaster", b"claim-2") == 0
