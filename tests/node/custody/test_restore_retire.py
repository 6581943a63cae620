"""After a disaster restore, the displaced host's copies go: once the resident's epoch here is committed at this
node's keepers, every keeper that holds an epoch of the old host gets a destroy order signed by the new host and
answers with a signed receipt; the keepers register the new node as the resident's host (its deposit), so the old
host, should it come back, has nothing released for a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftm.federation.clock import FakeClock
from ftm.federation.identity import SigningKey, generate_inbox_secret, inbox_public_key
from ftm.keeper.protocol import PROTOCOL_VERSION, Ack, DestroyReason, Purpose, ReleaseRequest
from ftm.node.keeperclient import KeeperCallError, KeeperClient
from ftm.node.restorefetch import survey
from ftm.node.restoreretire import committed_here, displaced_receipts, retire_displaced
from ftm.node.store.restores import RestoreStore
from tests.fakes.llm_server import FakeLLM
from tests.node.custody.restorekit import (
    SILENCE,
    WAIT,
    addresses,
    claim_for,
    fresh_threshold_node,
    keepers_and_guardians,
    lose_a_node,
    restore,
    submit,
)


async def test_the_new_host_has_the_old_host_s_copies_destroyed_and_the_old_host_gets_no_run_release(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with keepers_and_guardians(tmp_path, clock) as (keepers, guardians):
        lost = await lose_a_node(tmp_path, clock, llm, keepers, guardians, count=1)
        [rid] = lost.residents
        old_host = lost.key.public_key
        async with fresh_threshold_node(tmp_path, clock, llm, keepers) as (site, grid):
            clock.advance(SILENCE + 60)
            claim = claim_for(site, lost, guardians[:2], clock)
            assert all(isinstance(a, Ack) for a in await submit(site, keepers, claim))
            clock.advance(WAIT)
            key = site.node.identity.key
            [outcome], _ = await restore(site, keepers, key, Purpose.DISASTER.value, claim.id, old_host)
            assert (outcome.state, outcome.new_epoch) == ("restored", 3), outcome
            await grid.settle()
            assert await grid.keeper_states(rid, 3) == ["committed"] * 5
            assert await committed_here(site.node.custody_parts.store, rid, 3)

            client, stranger = KeeperClient(key, clock), KeeperClient(SigningKey.generate(), clock)
            try:
                copies = (await survey(client, addresses(keepers), old_host)).residents[rid]
                assert [(c.epoch, len(c.holders)) for c in copies] == [(2, 5)]
                intruder = await retire_displaced(stranger, rid, copies, int(clock.now()))  # no claim names it
                assert not intruder.receipts and set(intruder.refused.values()) == {"no_disaster_claim"}

                retired = await retire_displaced(client, rid, copies, int(clock.now()))
            finally:
                await client.close()
                await stranger.close()
            assert retired.refused == {}
            assert sorted(r.message.keeper_key for r in retired.receipts) == sorted(k.key for k in keepers)
            for receipt in retired.receipts:
                assert (receipt.message.resident_id, receipt.message.epoch, receipt.message.reason) == (
                    rid, 2, DestroyReason.MOVED,
                )  # fmt: skip
            store = RestoreStore(site.node.db)
            await store.keep_displaced_receipts(displaced_receipts(retired, int(clock.now())))
            await store.keep_displaced_receipts(displaced_receipts(retired, int(clock.now()) + 60))  # kept once
            kept = await store.displaced_receipts(rid)
            assert sorted(k.receipt for k in kept) == sorted(r.raw for r in retired.receipts)
            assert {(k.epoch, k.received_at) for k in kept} == {(2, int(clock.now()))}
            for keeper in keepers:
                record = await keeper.keeper.store.deposit(keeper.keeper.db, old_host, rid, 2)
                assert record is not None and (record.state, record.destroy_reason) == ("destroyed", "moved")
                assert not keeper.keeper.service.replicas.path(old_host, rid, 2).exists()
                mine = await keeper.keeper.store.deposit(keeper.keeper.db, key.public_key, rid, 3)
                assert mine is not None and mine.state == "committed"  # the resident's copy here is untouched

        old = KeeperClient(lost.key, clock)  # the old host comes back and asks for a run
        try:
            for address in addresses(keepers):
                for epoch in (2, 3):
                    request = ReleaseRequest(
                        PROTOCOL_VERSION, rid, epoch, Purpose.RUN.value, inbox_public_key(generate_inbox_secret()), b""
                    )
                    with pytest.raises(KeeperCallError) as refused:
                        await old.release(address, request)
                    assert refused.value.code == "not_host"  # the new node is the registered host now
        finally:
            await old.close()
