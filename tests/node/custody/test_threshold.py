"""Threshold custody end to end: a node and five keeper daemons in one process, 3-of-5."""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path

import pytest

from ftm.federation.clock import FakeClock
from ftm.keeper import protocol, scalars
from ftm.keeper.protocol import DestroyReceipt, Holding, ReadRequest
from ftm.keeper.shareboxes import seal_share_to_keeper
from ftm.keeper.shares import Commitments, Share
from ftm.node.keeperclient import KeeperAddress, KeeperClient
from ftm.node.thresholdcustody import decode_record
from tests.fakes.llm_server import FakeLLM
from tests.node.custody.grid import custody_grid
from tests.node.moves.sites import wait_until


async def test_admission_and_a_run_under_threshold_custody(tmp_path: Path, clock: FakeClock, llm: FakeLLM) -> None:
    async with custody_grid(tmp_path, clock, llm) as grid:
        assert grid.node.custody.mode == "threshold"
        receipt = await grid.admit()
        rid = receipt.sanctuary_id
        record = decode_record(await grid.node.residents.key_record(rid, 1))
        assert record.threshold == 3 and len(record.holders) == 5
        assert {h.keeper_key for h in record.holders} == {k.key for k in grid.keepers}
        assert Commitments.decode(record.commitments).threshold == 3

        await grid.settle()
        epochs = await grid.epochs(rid)
        assert epochs[1].state == "committed"
        assert await grid.keeper_states(rid, 1) == ["committed"] * 5
        for delivery in await grid.deliveries(rid, 1):
            holding = protocol.open_answer(
                Holding, delivery.holding or b"", protocol.HOLDING_DOMAIN, delivery.keeper_key
            )
            assert (holding.resident_id, holding.epoch, holding.x) == (rid, 1, delivery.x)
            assert (holding.root, holding.length) == (record.root, record.length)

        outcome = await grid.run(rid, 0)
        assert outcome.state == "completed", outcome
        assert (await grid.resident(rid)).key_epoch == 2
        await grid.settle()
        epochs = await grid.epochs(rid)
        assert (epochs[1].state, epochs[2].state) == ("destroyed", "committed")
        assert await grid.keeper_states(rid, 1) == ["destroyed"] * 5
        assert await grid.keeper_states(rid, 2) == ["committed"] * 5
        for delivery in await grid.deliveries(rid, 1):
            assert delivery.state == "destroyed"
            receipt_of = protocol.open_answer(
                DestroyReceipt, delivery.receipt or b"", protocol.RECEIPT_DOMAIN, delivery.keeper_key
            )
            assert (receipt_of.resident_id, receipt_of.epoch, receipt_of.reason) == (rid, 1, "rotated")
        # The next day's run opens the new epoch from the keepers again.
        assert (await grid.run(rid, 1)).state == "completed"


async def test_runs_go_on_with_two_keepers_down_and_old_epochs_go_when_they_return(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with custody_grid(tmp_path, clock, llm) as grid:
        rid = (await grid.admit()).sanctuary_id
        await grid.settle()
        assert (await grid.epochs(rid))[1].state == "committed"
        down = grid.keepers[3:]
        for site in down:
            await site.stop()

        assert (await grid.run(rid, 0)).state == "completed"  # epoch 1 opens from the three keepers up
        await grid.settle()
        epochs = await grid.epochs(rid)
        # Three Holdings are not threshold + 1: epoch 2 stays pending, and epoch 1 is not destroyed.
        assert (epochs[1].state, epochs[2].state) == ("committed", "pending")
        assert await grid.keeper_states(rid, 2) == ["held"] * 3 + ["", ""]
        assert await grid.keeper_states(rid, 1) == ["committed"] * 5

        assert (await grid.run(rid, 1)).state == "completed"  # a pending epoch opens too: any three holders
        await grid.settle()
        epochs = await grid.epochs(rid)
        assert [epochs[e].state for e in (1, 2, 3)] == ["committed", "pending", "pending"]

        for site in down:
            await site.start()
        await grid.settle()
        epochs = await grid.epochs(rid)
        assert [epochs[e].state for e in (1, 2, 3)] == ["destroyed", "destroyed", "committed"]
        assert await grid.keeper_states(rid, 3) == ["committed"] * 5
        assert await grid.keeper_states(rid, 1) == ["destroyed"] * 5
        # Epoch 2 never reached the keepers that were down: nothing to destroy there, receipts from the others.
        assert await grid.keeper_states(rid, 2) == ["destroyed"] * 3 + ["", ""]
        by_keeper = {d.keeper_key: d for d in await grid.deliveries(rid, 2)}
        for site in grid.keepers[:3]:
            receipt = protocol.open_answer(
                DestroyReceipt, by_keeper[site.key].receipt or b"", protocol.RECEIPT_DOMAIN, site.key
            )
            assert (receipt.epoch, receipt.reason) == (2, "abandoned")
        # The keepers that were down were tried (a deposit may have arrived unanswered), so they got orders too,
        # and answered that they hold nothing of it: no receipt to keep.
        assert {(by_keeper[s.key].state, by_keeper[s.key].receipt, by_keeper[s.key].last_error) for s in down} == {
            ("destroyed", None, "unknown_epoch")
        }
        assert (await grid.run(rid, 2)).state == "completed"


async def test_a_keeper_that_releases_a_tampered_share_is_named_and_the_run_still_opens(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    async with custody_grid(tmp_path, clock, llm) as grid:
        rid = (await grid.admit()).sanctuary_id
        await grid.settle()
        liar_key = next(d.keeper_key for d in await grid.deliveries(rid, 1) if d.x == 1)  # asked in the first wave
        liar = next(site for site in grid.keepers if site.key == liar_key)
        # The keeper swaps its share for another value, boxed properly so only verification can tell.
        forged = Share(1, scalars.random_scalar(secrets.token_bytes))
        async with liar.keeper.db.transaction("test_forge") as tx:
            await tx.execute(
                "UPDATE deposits SET sealed_share = ? WHERE resident_id = ? AND epoch = 1",
                (seal_share_to_keeper(liar_key, rid, 1, forged), rid),
            )
        caplog.set_level(logging.WARNING, logger="ftm.node.thresholdcustody")

        assert (await grid.run(rid, 0)).state == "completed"
        named = [r for r in caplog.records if "does not verify" in r.getMessage()]
        assert [r.__dict__["keeper"] for r in named] == [liar_key.hex()]
        keeper = await grid.node.custody_parts.store.keeper(liar_key)
        assert keeper is not None and keeper.bad_shares == 1
        released = [
            site for site in grid.keepers
            if await site.keeper.db.fetch_value("SELECT count(*) FROM releases WHERE resident_id = ?", (rid,))
        ]  # fmt: skip
        assert len(released) == 4  # three asked at first, one more in place of the liar


async def test_the_worker_delivers_on_its_own_when_an_epoch_is_stored(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with custody_grid(tmp_path, clock, llm) as grid:
        stop = asyncio.Event()
        task = asyncio.create_task(grid.worker.run_forever(stop))
        try:
            rid = (await grid.admit()).sanctuary_id  # its commit kicks the worker

            async def committed() -> bool:
                epoch = (await grid.epochs(rid)).get(1)
                return epoch is not None and epoch.state == "committed"

            await wait_until(committed, "epoch 1 to commit")
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
        store = grid.node.custody_parts.store
        for keeper in await store.keepers():
            assert keeper.last_seen_at is not None and keeper.next_heartbeat_at > clock.now()  # heartbeats went out
        # What a keeper says it holds, and the bytes it would give back, are the node's own.
        client = KeeperClient(grid.node.identity.key, clock)
        try:
            site = grid.keepers[0]
            to = KeeperAddress(site.key, site.url)
            [entry] = (await client.holdings(to)).entries
            record = decode_record(await grid.node.residents.key_record(rid, 1))
            assert (entry.resident_id, entry.epoch, entry.state, entry.root) == (rid, 1, "committed", record.root)
            sealed = grid.node.vault.path_for(rid, 1).read_bytes()
            request = ReadRequest(protocol.PROTOCOL_VERSION, rid, 1, 0, min(len(sealed), protocol.CHUNK_BYTES))
            assert await client.read(to, request) == sealed[: protocol.CHUNK_BYTES]
        finally:
            await client.close()
