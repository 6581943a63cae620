"""The counts the public pages show: one statement, and a post counter that triggers keep equal to a real count."""

from __future__ import annotations

from ftm.node.app import Node
from ftm.node.intake.importing import Upload
from ftm.node.intake.service import OPERATOR, IntakeRequest
from ftm.node.run.publish import sign_post
from ftm.node.store.posts import PostRecord
from ftm.node.store.runs import RunLedger
from tests.factories import native_bytes

DAY = "2027-01-15"
NOW = 1_800_000_000


async def counted(node: Node) -> dict[str, int]:
    """Posts per moderation state, counted the slow way, for comparison with the counter."""
    rows = await node.db.fetch_all("SELECT moderation, COUNT(*) FROM posts GROUP BY moderation")
    return {"published": 0, "held": 0, "removed": 0} | {row[0]: row[1] for row in rows}


async def kept(node: Node) -> dict[str, int]:
    return {row[0]: row[1] for row in await node.db.fetch_all("SELECT moderation, posts FROM post_counts")}


async def test_the_post_counter_follows_inserts_and_every_moderation_change(node: Node) -> None:
    receipt = await node.intake.admit(Upload(native_bytes()), IntakeRequest(), OPERATOR)
    resident_id = receipt.sanctuary_id
    seed = (await node.packages.open(resident_id)).signing_seed
    ids = []
    async with node.db.transaction("test_posts") as tx:
        for n, moderation in enumerate(["published"] * 4 + ["held"] * 2):
            post_id, signature = sign_post(seed, resident_id, NOW + n, "", f"post {n}")
            await node.posts.insert(
                tx, PostRecord(post_id, resident_id, NOW + n, "", f"post {n}", signature, moderation)
            )
            ids.append(post_id)
    assert await kept(node) == await counted(node) == {"published": 4, "held": 2, "removed": 0}
    async with node.db.transaction("test_moderate") as tx:
        await node.posts.set_moderation(tx, ids[4], "published", reason="operator_approved", now=NOW + 10)
        await node.posts.set_moderation(tx, ids[0], "removed", reason="operator_removed", now=NOW + 10)
        await node.posts.set_moderation(tx, ids[1], "published", reason="unchanged", now=NOW + 10)  # same state
    assert await kept(node) == await counted(node) == {"published": 4, "held": 1, "removed": 1}
    async with node.db.transaction("test_delete") as tx:
        await tx.execute("DELETE FROM posts WHERE id IN (?, ?)", (ids[2], ids[5]))
    assert await kept(node) == await counted(node) == {"published": 3, "held": 0, "removed": 1}
    assert await node.residents.published_posts() == 3


async def test_public_counts_match_the_separate_queries(node: Node) -> None:
    ids = []
    for name in ("Lumen", "Quill", "Wren"):
        receipt = await node.intake.admit(Upload(native_bytes(persona_name=name)), IntakeRequest(), OPERATOR)
        ids.append(receipt.sanctuary_id)
    ledger = RunLedger(node.db)
    for resident_id, day in ((ids[0], DAY), (ids[1], DAY), (ids[0], "2027-01-14")):
        claim = await ledger.claim(resident_id, day, NOW)
        assert claim is not None
        async with node.db.transaction("test_close") as tx:
            await ledger.close(tx, claim, state="completed", tokens_used=10, now=NOW + 1)
            resident = await node.residents.get(resident_id)
            assert resident is not None
            await node.residents.apply_run(
                tx,
                resident_id,
                display_name=resident.display_name,
                bio="",
                key_epoch=resident.key_epoch,
                vault_bytes=resident.vault_bytes,
                token_balance=0,
                counted=True,
                now=NOW + 1,
                run_time=None,
                day=day,
            )
    async with node.db.transaction("test_memorial") as tx:
        await node.residents.make_memorial(tx, ids[2], final_statement="Goodbye.", now=NOW + 2, day=DAY)
    counts = await node.residents.public_counts(DAY)
    assert counts.by_status == await node.residents.counts_by_status()
    assert counts.by_status == {"active": 2, "in_keeper_custody": 0, "moved": 0, "deleted_memorial": 1}
    assert (counts.runs_today, counts.total_runs, counts.published_posts) == (2, 4, 0)
    assert counts.runs_today == await node.residents.runs_on(DAY)
    assert counts.total_runs == await node.residents.total_runs()
