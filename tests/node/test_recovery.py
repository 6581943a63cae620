"""The start-up sweep: the vault is made to agree with the database after any interrupted write."""

from __future__ import annotations

from typing import Any

from ftm.node.app import Node, open_node
from ftm.node.intake.importing import Upload
from ftm.node.intake.service import OPERATOR, IntakeRequest
from ftm.node.recovery import sweep_vault
from ftm.node.vault import new_epoch_key
from tests.factories import native_bytes


async def admit(node: Node, name: str) -> str:
    receipt = await node.intake.admit(Upload(native_bytes(persona_name=name)), IntakeRequest(), OPERATOR)
    return receipt.sanctuary_id


async def test_sweep_removes_what_the_database_does_not_point_at(node: Node) -> None:
    living, departed = await admit(node, "Living"), await admit(node, "Departed")
    # A run that never committed left epoch 2; a run that committed left epoch 1 behind (simulated here).
    await node.vault.seal(living, 2, new_epoch_key(), [[b"next epoch that never committed"]])
    await node.vault.seal("ghostresidentnotindatabase", 1, new_epoch_key(), [[b"intake that never committed"]])
    async with node.db.transaction("memorialise") as tx:
        await node.residents.make_memorial(tx, departed, final_statement="goodbye", now=1, day="2027-01-01")

    report = await sweep_vault(node.residents, node.vault)

    assert (report.unknown_residents, report.stale_epochs, report.memorial_files) == (1, 1, 1)
    assert node.vault.resident_ids() == {living}
    assert node.vault.epochs(living) == [1]
    assert (await node.packages.open(living)).name == "Living"
    again = await sweep_vault(node.residents, node.vault)
    assert (again.unknown_residents, again.stale_epochs, again.memorial_files) == (0, 0, 0)


async def test_sweep_waits_until_the_directory_is_not_shared(data_dir: Any, settings: Any) -> None:
    """A file sealed by another process that has not committed yet looks like debris: only a process that has the
    data directory to itself may sweep."""
    async with open_node(data_dir, settings, env={}) as first:
        # As if `first` were mid-intake: sealed, not yet committed.
        await first.vault.seal("inflightresidentxxxxxxxxxx", 1, new_epoch_key(), [[b"sealed, commit pending"]])
        async with open_node(data_dir, settings, env={}) as second:
            assert "inflightresidentxxxxxxxxxx" in second.vault.resident_ids()  # not swept from under `first`
    async with open_node(data_dir, settings, env={}) as alone:
        assert "inflightresidentxxxxxxxxxx" not in alone.vault.resident_ids()  # a lone start cleans up
