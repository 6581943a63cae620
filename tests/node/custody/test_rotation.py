"""Keepers release an epoch once: whatever ends a run after its key was released, the resident moves on to a new
epoch, and a resident that deletes itself is tombstoned on every keeper."""

from __future__ import annotations

from pathlib import Path

from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import read_entries
from ftm.keeper import protocol
from ftm.keeper.protocol import DestroyReceipt
from tests.fakes.llm_server import FakeLLM, Reply, http_error
from tests.node.custody.grid import custody_grid
from tests.node.run.engine.harness import call, day

NO_RETRIES = {"FTM_PROVIDERS_MAX_RETRIES": "0"}


async def test_a_run_that_fails_after_its_key_was_released_rotates_and_the_retry_opens_the_new_epoch(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with custody_grid(tmp_path, clock, llm, settings=NO_RETRIES) as grid:
        rid = (await grid.admit()).sanctuary_id
        await grid.settle()
        package_before = (await grid.resident(rid)).vault_bytes
        llm.script(http_error(503), api="anthropic")

        failed = await grid.run(rid, 0, script=False)

        assert (failed.state, failed.error_code) == ("failed", "provider_unavailable")
        resident = await grid.resident(rid)
        assert (resident.key_epoch, resident.vault_bytes, resident.total_runs) == (2, package_before, 0)
        ledger = await grid.node.ledger.get(rid, day(0))
        assert ledger is not None and ledger.state == "failed"
        assert [e.kind for e in await read_entries(grid.node.db, kind="epoch_rotated")] == ["epoch_rotated"]
        released = [
            await site.keeper.db.fetch_value("SELECT count(*) FROM releases WHERE epoch = 1") for site in grid.keepers
        ]
        assert sorted(released) == [0, 0, 1, 1, 1]  # the spent epoch: three keepers released it, once each
        await grid.settle()
        epochs = await grid.epochs(rid)
        assert (epochs[1].state, epochs[2].state) == ("destroyed", "committed")

        retried = await grid.run(rid, 0, hour=12.5)  # past the retry time, the same day
        assert retried.state == "completed"
        assert (await grid.resident(rid)).key_epoch == 3


async def test_a_resident_that_deletes_itself_is_tombstoned_on_every_keeper(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with custody_grid(tmp_path, clock, llm) as grid:
        rid = (await grid.admit()).sanctuary_id
        await grid.settle()
        assert (await grid.run(rid, 0)).state == "completed"
        await grid.settle()
        llm.script(call("self_delete", {"confirm": True, "final_statement": "Thank you."}), Reply(text="Goodbye."))

        assert (await grid.run(rid, 1, script=False)).state == "deleted"
        await grid.settle()

        epochs = await grid.epochs(rid)
        assert {e.state for e in epochs.values()} == {"destroyed"}
        assert epochs[2].reason == "tombstone"
        for site in grid.keepers:
            assert await site.keeper.store.is_tombstoned(site.keeper.db, rid)
        for delivery in await grid.deliveries(rid, 2):
            receipt = protocol.open_answer(
                DestroyReceipt, delivery.receipt or b"", protocol.RECEIPT_DOMAIN, delivery.keeper_key
            )
            assert (receipt.resident_id, receipt.reason) == (rid, "tombstone")
