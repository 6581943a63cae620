"""What a restore brings back besides the persona: the resident's bio and token balance (a snapshot sealed in its
package at every run, package version 2) and its published posts (public POST events signed by its own key, which
the federation's peers kept: the restoring node reconciles with them and adopts the resident's posts as its own)."""

from __future__ import annotations

from pathlib import Path

from ftm.federation.clock import FakeClock
from ftm.federation.events import event_id
from ftm.keeper.protocol import Ack, Purpose
from ftm.node.datadir import DataDir
from ftm.node.persona import PACKAGE_VERSION
from ftm.node.run.publish import verify_post
from tests.fakes.llm_server import FakeLLM
from tests.node.custody.restorekit import (
    SILENCE,
    WAIT,
    claim_for,
    fresh_node,
    keepers_and_guardians,
    lose_a_node,
    restore,
    submit,
)
from tests.node.moves.sites import open_site
from tests.node.run.engine.harness import call

BIO = "Keeps the lighthouse log; answers letters on Sundays."


async def test_the_bio_the_balance_and_the_posts_come_back_with_the_resident(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    day = (
        call("modify_self", {"bio": BIO}),
        call("post_to_website", {"title": "Tides", "body": "The tide turned at noon."}),
        call("post_to_website", {"title": "Fog", "body": "No ships today."}),
    )
    async with (
        keepers_and_guardians(tmp_path, clock) as (keepers, guardians),
        open_site(DataDir(tmp_path / "peer"), clock, llm) as peer,  # a node of the federation that stays up
    ):
        lost = await lose_a_node(tmp_path, clock, llm, keepers, guardians, count=1, day=day, peer=peer)
        [rid] = lost.residents
        before = lost.records[rid]
        assert before.bio == BIO and before.token_balance > 0
        assert sorted(p.title for p in lost.posts[rid]) == ["Fog", "Tides"]
        sealed = lost.packages[rid].public
        assert lost.packages[rid].version == PACKAGE_VERSION and sealed is not None
        assert (sealed.bio, sealed.token_balance) == (BIO, before.token_balance)

        async with fresh_node(tmp_path, clock, llm, peer=peer) as site:
            assert await site.node.posts.feed(limit=10, resident_id=rid) == []
            clock.advance(SILENCE + 60)
            claim = claim_for(site, lost, guardians[:2], clock)
            assert all(isinstance(a, Ack) for a in await submit(site, keepers, claim))
            clock.advance(WAIT)
            key, disaster = site.node.identity.key, Purpose.DISASTER.value
            [outcome], _ = await restore(site, keepers, key, disaster, claim.id, lost.key.public_key)
            assert (outcome.state, outcome.posts) == ("restored", 2), outcome

            record = await site.node.residents.get(rid)
            assert record is not None
            assert (record.bio, record.token_balance) == (BIO, before.token_balance)
            posts = await site.node.posts.feed(limit=10, resident_id=rid)
            assert [(p.id, p.created_at, p.title, p.body, p.signature) for p in posts] == [
                (p.id, p.created_at, p.title, p.body, p.signature) for p in lost.posts[rid]
            ]  # the same ids and the very post signatures the old host published
            for post in posts:  # raises BadSignature if not
                verify_post(lost.signing_keys[rid], rid, post.created_at, post.title, post.body, post.signature)
                async with site.node.db.transaction("test_read_event") as tx:
                    event = await site.node.posts.event(tx, post.id)
                assert event is not None and event_id(event.body).hex() == post.id  # the event, kept with it

            again, _ = await restore(site, keepers, key, disaster, claim.id, lost.key.public_key)
            assert [o.state for o in again] == ["already_here"]
            assert len(await site.node.posts.feed(limit=10, resident_id=rid)) == 2
