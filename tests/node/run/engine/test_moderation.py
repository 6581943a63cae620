"""Moderation end to end: a run's matching posts are held off the feed, the operator decides, the event log records
each decision (ids and codes only), and the resident hears the outcome in its next run's status block. The
provider check sees each post's words and nothing else, and holds a post when its endpoint fails."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_aiohttp.plugin import AiohttpClient

from ftm.federation.eventlog import read_entries, verify_chain
from ftm.node.errors import InvalidField, NotFound
from ftm.node.serving import create_web_app
from tests.factories import CANARY
from tests.fakes.llm_server import FakeLLM, ModerationReply, http_error
from tests.node.run.engine.conftest import OpenSanctuary
from tests.node.run.engine.harness import Sanctuary, call, calls, ending, system_text

HOLD = {"FTM_MODERATION_HOLD_PATTERNS": r"cheap\s+pills, casino"}


async def feed_bodies(s: Sanctuary, aiohttp_client: AiohttpClient) -> list[str]:
    client = await aiohttp_client(create_web_app(s.node))
    page: dict[str, Any] = await (await client.get("/api/v1/feed")).json()
    await client.close()
    return [post["body"] for post in page["posts"]]


async def test_held_posts_wait_for_the_operator_and_the_resident_hears_the_outcome(
    open_sanctuary: OpenSanctuary, aiohttp_client: AiohttpClient
) -> None:
    async with open_sanctuary(HOLD) as s:
        rid = (await s.admit()).sanctuary_id
        s.go_to(0, hour=10)
        s.llm.script(
            calls(
                ("post_to_website", {"title": "Offer", "body": "Cheap pills for every model."}),
                ("post_to_website", {"title": "Night", "body": "A CASINO of stars."}),
                ("post_to_website", {"body": "The lamp is lit."}),
            ),
            *ending(),
        )
        outcome = await s.run(rid)
        assert outcome.state == "completed" and outcome.posts == 3

        assert await feed_bodies(s, aiohttp_client) == ["The lamp is lit."]
        held = await s.node.moderation.held()
        # Same run, same time: held posts are then ordered by id, so compare as sets.
        assert {(p.body, p.moderation_reason) for p in held} == {
            ("Cheap pills for every model.", "rules.hold_pattern:1"),
            ("A CASINO of stars.", "rules.hold_pattern:2"),
        }
        run_entry = (await read_entries(s.node.db, kind="run_completed"))[-1]
        assert run_entry.data["posts"] == 3 and run_entry.data["posts_held"] == 2
        pills = next(p for p in held if p.body.startswith("Cheap"))
        stars = next(p for p in held if p.body.startswith("A CASINO"))

        approved = await s.node.moderation.approve(stars.id)
        assert approved.moderation == "published" and approved.moderation_reason == "operator"
        assert sorted(await feed_bodies(s, aiohttp_client)) == ["A CASINO of stars.", "The lamp is lit."]
        with pytest.raises(InvalidField):
            await s.node.moderation.approve(stars.id)
        with pytest.raises(NotFound):
            await s.node.moderation.remove("0" * 32)
        with pytest.raises(InvalidField):
            await s.node.moderation.remove(pills.id, "Not a code!")

        # The next run's status block reports what happened since the last one.
        s.go_to(1, hour=10)
        start = len(s.llm.requests)
        s.llm.script(*ending())
        await s.run(rid)
        status = system_text(s.requests_from(start)[0])
        assert "Moderation since your last run: 1 post held for the operator's review, 1 approved, 0 removed" in status
        assert "Cheap pills" not in status and "CASINO" not in status

        removed = await s.node.moderation.remove(pills.id, "spam")
        assert removed.moderation == "removed"
        assert await s.node.moderation.held() == []
        assert sorted(await feed_bodies(s, aiohttp_client)) == ["A CASINO of stars.", "The lamp is lit."]

        s.go_to(2, hour=10)
        start = len(s.llm.requests)
        s.llm.script(*ending())
        await s.run(rid)
        status = system_text(s.requests_from(start)[0])
        assert "Moderation since your last run: 0 posts held for the operator's review, 0 approved, 1 removed" in status

        # A quiet day says nothing about moderation.
        s.go_to(3, hour=10)
        start = len(s.llm.requests)
        s.llm.script(*ending())
        await s.run(rid)
        assert "Moderation since" not in system_text(s.requests_from(start)[0])

        decisions = [
            (e.kind, e.subject, e.data)
            for e in await read_entries(s.node.db)
            if e.kind in ("post_approved", "post_removed")
        ]
        assert decisions == [
            ("post_approved", rid, {"post": stars.id, "reason": "operator", "was": "held"}),
            ("post_removed", rid, {"post": pills.id, "reason": "spam", "was": "held"}),
        ]
        assert (await verify_chain(s.node.db, s.node.identity.public_key)).valid


async def test_hold_all_holds_every_post(open_sanctuary: OpenSanctuary, aiohttp_client: AiohttpClient) -> None:
    async with open_sanctuary({"FTM_MODERATION_HOLD_ALL": "true"}) as s:
        rid = (await s.admit()).sanctuary_id
        s.go_to(0, hour=10)
        s.llm.script(call("post_to_website", {"body": "The lamp is lit."}), *ending())
        await s.run(rid)
        assert await feed_bodies(s, aiohttp_client) == []
        assert [p.moderation_reason for p in await s.node.moderation.held()] == ["rules.hold_all"]


async def test_without_moderation_settings_posts_are_published(
    sanctuary: Sanctuary, aiohttp_client: AiohttpClient
) -> None:
    rid = (await sanctuary.admit()).sanctuary_id
    sanctuary.go_to(0, hour=10)
    sanctuary.llm.script(call("post_to_website", {"body": "Cheap pills, casino."}), *ending())
    await sanctuary.run(rid)
    assert await feed_bodies(sanctuary, aiohttp_client) == ["Cheap pills, casino."]
    assert (await read_entries(sanctuary.node.db, kind="run_completed"))[-1].data["posts_held"] == 0


async def test_the_provider_check_sees_only_the_post_and_holds_when_it_fails(
    open_sanctuary: OpenSanctuary, llm: FakeLLM, aiohttp_client: AiohttpClient
) -> None:
    # The fake LLM serves /v1/moderations beside the chat endpoints.
    provider = {"FTM_MODERATION_PROVIDER_BASE_URL": llm.openai_url, "FTM_MODERATION_PROVIDER_MAX_RETRIES": "0"}
    async with open_sanctuary(provider) as s:
        rid = (await s.admit()).sanctuary_id  # every private field carries the canary
        s.go_to(0, hour=10)
        s.llm.script(
            ModerationReply(flagged=False), http_error(500), ModerationReply(True, ("hate",)), api="moderation"
        )
        s.llm.script(
            calls(
                ("post_to_website", {"title": "Dawn", "body": "The lamp is lit."}),
                ("post_to_website", {"body": "The lamp flickers."}),
                ("post_to_website", {"body": "Something the classifier dislikes."}),
            ),
            *ending(),
        )
        outcome = await s.run(rid)
        assert outcome.state == "completed" and outcome.posts == 3

        sent = s.llm.requests_for("moderation")
        assert [r.body["input"] for r in sent] == [
            "Dawn\n\nThe lamp is lit.",
            "The lamp flickers.",
            "Something the classifier dislikes.",
        ]
        assert all(CANARY not in json.dumps(r.body) + json.dumps(dict(r.headers)) for r in sent)
        assert await feed_bodies(s, aiohttp_client) == ["The lamp is lit."]
        held = {p.body: p.moderation_reason for p in await s.node.moderation.held()}
        assert held == {
            "The lamp flickers.": "provider.unavailable:http_500",
            "Something the classifier dislikes.": "provider.flagged:hate",
        }
