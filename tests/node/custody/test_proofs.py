"""Proofs of possession: a keeper that lost its copy fails its challenges, is contained (retried), counted, made
suspect after three counted failures, and passed over when the next epoch is dealt."""

from __future__ import annotations

from pathlib import Path

from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import read_entries
from tests.fakes.llm_server import FakeLLM
from tests.node.custody.grid import custody_grid


async def test_a_keeper_that_lost_its_replica_is_contained_then_suspect_then_replaced(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with custody_grid(tmp_path, clock, llm, keepers=6) as grid:
        rid = (await grid.admit()).sanctuary_id
        await grid.settle()
        store, proofs = grid.node.custody_parts.store, grid.worker.proofs
        dealt = {d.keeper_key for d in await grid.deliveries(rid, 1)}
        assert len(dealt) == 5 and all(d.next_challenge_at is not None for d in await grid.deliveries(rid, 1))
        assert [await proofs.challenge(d) for d in await grid.deliveries(rid, 1)] == ["ok"] * 5

        loser = next(site for site in grid.keepers if site.key in dealt)
        replica = loser.keeper.service.replicas.path(grid.site.key, rid, 1)
        replica.write_bytes(bytes(replica.stat().st_size))  # the bytes are gone; the length is the same

        async def challenge_loser() -> str:
            [delivery] = [d for d in await grid.deliveries(rid, 1) if d.keeper_key == loser.key]
            return await proofs.challenge(delivery)

        for round_number in range(1, 4):
            for retry in range(3):  # the challenge, then its two containment retries
                [delivery] = [d for d in await grid.deliveries(rid, 1) if d.keeper_key == loser.key]
                assert delivery.containment == retry
                assert await challenge_loser() != "ok"
            history = await store.proofs(loser.key, 100)
            assert sum(p.counted for p in history) == round_number
        keeper = await store.keeper(loser.key)
        assert keeper is not None and keeper.state == "suspect"
        suspect = await read_entries(grid.node.db, kind="keeper_suspect")
        assert [(e.subject, e.data["failures"]) for e in suspect] == [(keeper.registration_id, 3)]
        history = await store.proofs(loser.key, 100)
        assert [p.outcome for p in history].count("ok") == 1  # before the loss
        assert {p.reason for p in history if p.outcome != "ok"} <= {"replica_damaged", "bad_merkle:wrong_root"}
        assert {p.outcome for p in await store.proofs(grid.keepers[5].key, 100)} <= {"ok"}

        assert (await grid.run(rid, 0)).state == "completed"
        await grid.settle()
        dealt_next = {d.keeper_key for d in await grid.deliveries(rid, 2)}
        assert loser.key not in dealt_next and len(dealt_next) == 5
        assert (await grid.epochs(rid))[2].state == "committed"
