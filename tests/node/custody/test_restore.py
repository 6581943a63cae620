"""Restore: a node's data directory is deleted, and a fresh node brings every resident back from the five keepers
(3-of-5) under the release policy. The disaster path (R3): guardians sign a claim, the keepers wait, any sign of
life from the old node cancels it. The old-key path (R1): the operator kept the old node's key file."""

from __future__ import annotations

from pathlib import Path

from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import read_entries
from ftm.federation.identity import SigningKey
from ftm.keeper import scalars
from ftm.keeper.protocol import Ack, Purpose
from ftm.keeper.shareboxes import seal_share_to_keeper
from ftm.keeper.shares import Share
from ftm.node.keeperclient import KeeperClient
from ftm.node.restorefetch import retire_old_epochs, survey
from tests.factories import CANARY
from tests.fakes.llm_server import FakeLLM
from tests.node.custody.restorekit import (
    SILENCE,
    WAIT,
    addresses,
    claim_for,
    fresh_node,
    heartbeat,
    keepers_and_guardians,
    lose_a_node,
    restore,
    submit,
)
from tests.node.run.engine.harness import day, ending


async def test_a_deleted_node_s_residents_come_back_intact_through_a_disaster_claim(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with keepers_and_guardians(tmp_path, clock) as (keepers, guardians):
        lost = await lose_a_node(tmp_path, clock, llm, keepers, guardians, count=2)
        assert not (tmp_path / "lost").exists()
        async with fresh_node(tmp_path, clock, llm) as site:
            too_soon = claim_for(site, lost, guardians[:2], clock)
            assert await submit(site, keepers, too_soon) == ["host_not_silent"] * 5
            clock.advance(SILENCE + 60)

            one_guardian = claim_for(site, lost, guardians[:1], clock)
            assert await submit(site, keepers, one_guardian) == ["not_enough_guardians"] * 5
            clock.advance(1)  # other terms (a claim's id is the hash of its terms, not of its signatures)
            claim = claim_for(site, lost, guardians[1:], clock)
            answers = await submit(site, keepers, claim)
            assert all(isinstance(a, Ack) and a.at == int(clock.now()) + WAIT for a in answers), answers

            key, disaster = site.node.identity.key, Purpose.DISASTER.value
            early, _ = await restore(site, keepers, key, disaster, claim.id, lost.key.public_key)
            assert [(o.state, o.code) for o in early] == [("refused", "waiting_period")] * 2
            unclaimed, _ = await restore(site, keepers, key, disaster, one_guardian.id, lost.key.public_key)
            assert {o.code for o in unclaimed} == {"no_disaster_claim"}  # the refused claim releases nothing
            assert await site.node.residents.ids() == set()

            clock.advance(WAIT)
            outcomes, steps = await restore(site, keepers, key, disaster, claim.id, lost.key.public_key)
            assert sorted(o.resident_id for o in outcomes) == sorted(lost.residents)
            assert [(o.state, o.epoch, o.new_epoch) for o in outcomes] == [("restored", 2, 3)] * 2
            assert [s.stage for s in steps if s.index == 1][-1] == "installed"
            assert max(s.done for s in steps if s.stage == "replica") == max(
                s.size for s in steps if s.stage == "replica"
            )
            for rid in lost.residents:
                record = await site.node.residents.get(rid)
                assert record is not None and record.status == "active" and record.key_epoch == 3
                assert record.signing_public_key == lost.signing_keys[rid]  # its identity is unchanged
                package = await site.node.packages.open(rid)
                assert package == lost.packages[rid]  # every byte of the persona
                assert CANARY in package.system_prompt
            restored = await read_entries(site.node.db, kind="resident_restored")
            assert sorted(e.subject for e in restored) == sorted(lost.residents)

            again, _ = await restore(site, keepers, key, disaster, claim.id, lost.key.public_key)
            assert [o.state for o in again] == ["already_here"] * 2  # a no-op

            rid = lost.residents[0]
            clock.advance(86_400)
            llm.script(*ending())
            assert (await site.node.engine.run(rid, day(2))).state == "completed"  # it lives here now

    assert not list((tmp_path / "fresh" / "restoring").glob("*.part"))
    for path in (tmp_path / "fresh").rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), f"{path} holds persona plaintext"


async def test_a_flipped_replica_byte_and_a_tampered_share_are_caught(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with keepers_and_guardians(tmp_path, clock) as (keepers, guardians):
        lost = await lose_a_node(tmp_path, clock, llm, keepers, guardians, count=1)
        [rid] = lost.residents
        flipped, liar = keepers[0], keepers[1]  # the first two asked, in the order given
        replica = flipped.keeper.service.replicas.path(lost.key.public_key, rid, 2)
        data = bytearray(replica.read_bytes())
        data[len(data) // 2] ^= 0x01
        replica.write_bytes(bytes(data))
        record = await liar.keeper.store.deposit(liar.keeper.db, lost.key.public_key, rid, 2)
        assert record is not None
        forged = Share(record.x, scalars.random_scalar(lambda n: bytes(range(n))))
        async with liar.keeper.db.transaction("test_forge") as tx:
            await tx.execute(
                "UPDATE deposits SET sealed_share = ? WHERE resident_id = ? AND epoch = 2",
                (seal_share_to_keeper(liar.key, rid, 2, forged), rid),
            )
        async with fresh_node(tmp_path, clock, llm) as site:
            clock.advance(SILENCE + 60)
            claim = claim_for(site, lost, guardians[:2], clock)
            assert all(isinstance(a, Ack) for a in await submit(site, keepers, claim))
            clock.advance(WAIT)
            key, disaster = site.node.identity.key, Purpose.DISASTER.value
            [outcome], _ = await restore(site, keepers, key, disaster, claim.id, lost.key.public_key)

            assert outcome.state == "restored", outcome
            assert outcome.bad_replicas == [flipped.url]  # detected by the root; the next holder was read
            assert outcome.replica_from == liar.url  # a bad share does not make a bad replica
            assert [r.split(" x=")[0] for r in outcome.rejected_shares] == [liar.url]
            assert "does not verify" in outcome.rejected_shares[0]
            assert await site.node.packages.open(rid) == lost.packages[rid]


async def test_when_every_copy_released_is_damaged_one_more_keeper_is_asked_and_read(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with keepers_and_guardians(tmp_path, clock) as (keepers, guardians):
        lost = await lose_a_node(tmp_path, clock, llm, keepers, guardians, count=1)
        [rid] = lost.residents
        for keeper in keepers[:3]:  # the three asked for their shares
            replica = keeper.keeper.service.replicas.path(lost.key.public_key, rid, 2)
            replica.write_bytes(replica.read_bytes()[:-1] + b"\x00")
        async with fresh_node(tmp_path, clock, llm) as site:
            clock.advance(SILENCE + 60)
            claim = claim_for(site, lost, guardians[:2], clock)
            assert all(isinstance(a, Ack) for a in await submit(site, keepers, claim))
            clock.advance(WAIT)
            key, disaster = site.node.identity.key, Purpose.DISASTER.value
            [outcome], _ = await restore(site, keepers, key, disaster, claim.id, lost.key.public_key)
            assert outcome.state == "restored", outcome
            assert outcome.bad_replicas == [k.url for k in keepers[:3]]
            assert outcome.replica_from == keepers[3].url
            assert await site.node.packages.open(rid) == lost.packages[rid]


async def test_a_heartbeat_from_the_old_node_cancels_the_claim(tmp_path: Path, clock: FakeClock, llm: FakeLLM) -> None:
    async with keepers_and_guardians(tmp_path, clock) as (keepers, guardians):
        lost = await lose_a_node(tmp_path, clock, llm, keepers, guardians, count=1)
        async with fresh_node(tmp_path, clock, llm) as site:
            clock.advance(SILENCE + 60)
            claim = claim_for(site, lost, guardians, clock)
            assert all(isinstance(a, Ack) for a in await submit(site, keepers, claim))
            clock.advance(WAIT // 2)
            await heartbeat(lost.key, keepers, clock)  # it was not lost after all
            clock.advance(WAIT)
            key, disaster = site.node.identity.key, Purpose.DISASTER.value
            [outcome], _ = await restore(site, keepers, key, disaster, claim.id, lost.key.public_key)
            assert (outcome.state, outcome.code) == ("refused", "claim_cancelled")
            assert await site.node.residents.ids() == set()


async def test_with_the_old_node_s_key_file_the_residents_come_back_in_their_run_window(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with keepers_and_guardians(tmp_path, clock) as (keepers, guardians):
        lost = await lose_a_node(tmp_path, clock, llm, keepers, guardians, count=2, note_packages=False)
        async with fresh_node(tmp_path, clock, llm) as site:
            run = Purpose.RUN.value
            outcomes, _ = await restore(site, keepers, lost.key, run, b"", lost.key.public_key)
            assert [(o.state, o.epoch) for o in outcomes] == [("restored", 2)] * 2  # no claim, no wait: R1
            for rid in lost.residents:
                package = await site.node.packages.open(rid)
                assert CANARY in package.system_prompt
                assert SigningKey(package.signing_seed).public_key == lost.signing_keys[rid]

            client = KeeperClient(lost.key, clock)
            try:
                found = await survey(client, addresses(keepers), lost.key.public_key)
                copies = [c for rid in lost.residents for c in found.residents[rid]]
                assert await retire_old_epochs(client, copies, int(clock.now())) == 10
            finally:
                await client.close()
            for keeper in keepers:  # the old host's copies are gone; what lives here does not depend on them
                for rid in lost.residents:
                    record = await keeper.keeper.store.deposit(keeper.keeper.db, lost.key.public_key, rid, 2)
                    assert record is not None and (record.state, record.destroy_reason) == ("destroyed", "moved")
            again, _ = await restore(site, keepers, lost.key, run, b"", lost.key.public_key)
            assert again == []  # nothing left to restore from
