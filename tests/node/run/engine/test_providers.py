"""Providers under a run: retries, fallback, outages that leave the day open at no cost, refusals, malformed and
unknown tool calls reported back to the model; streamed and whole replies, Anthropic and OpenAI wire formats."""

from __future__ import annotations

import pytest

from ftm.node.run.engine import RETRY_AFTER_OUTAGE_SECONDS
from tests.fakes.llm_server import FakeToolCall, Reply, http_error
from tests.node.run.engine.conftest import OpenSanctuary
from tests.node.run.engine.harness import (
    ANTHROPIC_MODEL,
    MAX_RETRIES,
    OPENAI_MODEL,
    Sanctuary,
    call,
    ending,
    last_tool_result,
    tool_results,
)

OPENAI_FALLBACK = {"FTM_PROVIDERS_FALLBACK": f"openai:{OPENAI_MODEL}"}
ATTEMPTS = MAX_RETRIES + 1


async def test_server_errors_are_retried_and_only_successful_calls_are_charged(sanctuary: Sanctuary) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    s.llm.script(
        http_error(500),
        http_error(500),
        Reply(text="Here at last.", input_tokens=700, output_tokens=30),
        http_error(529),
        Reply(text="A slow morning.", input_tokens=200, output_tokens=20),
    )

    outcome = await s.run(rid)

    assert outcome.state == "completed" and outcome.tokens_used == 950
    assert len(s.llm.requests) == 5 and len(s.sleeps) == 3
    assert (await s.resident(rid)).token_balance == 10_000 - 950
    assert (await s.package(rid)).history[-1].extra["summary"] == "A slow morning."


async def test_when_anthropic_is_down_the_run_completes_on_the_openai_fallback(open_sanctuary: OpenSanctuary) -> None:
    async with open_sanctuary(OPENAI_FALLBACK) as s:
        rid = (await s.admit()).sanctuary_id
        s.llm.script(*[http_error(503)] * (3 * ATTEMPTS), api="anthropic")
        s.llm.script(
            call("post_to_website", {"body": "Written through the fallback."}, input_tokens=400, output_tokens=40),
            Reply(text="Done.", input_tokens=500, output_tokens=10),
            Reply(text="Summary.", input_tokens=100, output_tokens=10),
            api="openai",
        )

        outcome = await s.run(rid)

        assert outcome.state == "completed" and outcome.tokens_used == 1060
        assert [r.body["model"] for r in s.llm.requests_for("openai")] == [OPENAI_MODEL] * 3
        assert len(s.llm.requests_for("anthropic")) == 3 * ATTEMPTS  # every call tries the first choice again
        # A tool call minted by OpenAI is answered in OpenAI's shape on the next call.
        assert "Recorded post 1" in last_tool_result(s.llm.requests_for("openai")[1]).text
        assert len(await s.node.posts.feed(limit=5, resident_id=rid)) == 1


async def test_when_every_provider_is_down_the_day_stays_open_at_no_cost_and_a_later_tick_runs_it_once(
    open_sanctuary: OpenSanctuary,
) -> None:
    async with open_sanctuary(OPENAI_FALLBACK) as s:
        rid = (await s.admit()).sanctuary_id
        vault_file = s.node.vault.path_for(rid, 1)
        sealed_before = vault_file.read_bytes()
        s.go_to(0, hour=18.5)  # every slot of the window (06:00 to 18:00) has passed
        s.llm.script(*[http_error(503)] * ATTEMPTS, api="anthropic")
        s.llm.script(*[http_error(502)] * ATTEMPTS, api="openai")
        assert await s.node.scheduler.due() == [rid]

        [failed] = await s.node.scheduler.tick()

        assert (failed.state, failed.error_code, failed.tokens_used) == ("failed", "provider_unavailable", 0)
        row = await s.ledger(rid)
        assert row is not None and row.state == "failed" and row.tokens_used == 0
        assert row.retry_at == int(s.clock.now()) + RETRY_AFTER_OUTAGE_SECONDS
        resident = await s.resident(rid)
        assert (resident.token_balance, resident.last_credited_day, resident.total_runs) == (0, None, 0)
        assert resident.key_epoch == 1 and await s.key_epochs(rid) == [1]
        assert s.node.vault.epochs(rid) == [1] and vault_file.read_bytes() == sealed_before

        s.clock.advance(RETRY_AFTER_OUTAGE_SECONDS - 60)
        assert await s.node.scheduler.due() == []
        assert await s.node.scheduler.tick() == []
        s.clock.advance(60)
        assert await s.node.scheduler.due() == [rid]
        s.llm.script(Reply(text="Back again.", input_tokens=300, output_tokens=30), Reply(text="Note."))
        [done] = await s.node.scheduler.tick()
        assert done.state == "completed"
        assert await s.node.scheduler.tick() == [] and s.llm.pending == 0

        row = await s.ledger(rid)
        assert row is not None and (row.state, row.attempts, row.tokens_used) == ("completed", 2, 349)
        assert [r.state for r in await s.node.ledger.days(rid)] == ["completed"]
        assert (await s.resident(rid)).token_balance == 10_000 - 349


async def test_a_refusal_moves_to_the_fallback_at_once_without_retries(open_sanctuary: OpenSanctuary) -> None:
    async with open_sanctuary(OPENAI_FALLBACK) as s:
        rid = (await s.admit()).sanctuary_id
        s.llm.script(http_error(401), http_error(401), api="anthropic")
        s.llm.script(*ending(), api="openai")

        assert (await s.run(rid)).state == "completed"
        assert len(s.llm.requests_for("anthropic")) == 2 and len(s.llm.requests_for("openai")) == 2
        assert s.sleeps == []


async def test_a_refusal_by_every_choice_fails_the_day_for_a_later_retry(sanctuary: Sanctuary) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    s.llm.script(http_error(404))
    outcome = await s.run(rid)
    assert (outcome.state, outcome.error_code) == ("failed", "provider_refused")
    assert len(s.llm.requests) == 1 and (await s.resident(rid)).key_epoch == 1


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize(("provider", "model"), [("anthropic", ANTHROPIC_MODEL), ("openai", OPENAI_MODEL)])
async def test_malformed_and_unknown_tool_calls_are_reported_back_and_the_run_goes_on(
    open_sanctuary: OpenSanctuary, provider: str, model: str, stream: bool
) -> None:
    async with open_sanctuary({"FTM_PROVIDERS_STREAM": str(stream).lower()}) as s:
        rid = (await s.admit(preferred_provider=provider, preferred_model=model)).sanctuary_id
        s.llm.script(
            Reply(tool_calls=(FakeToolCall("remember", '{"text": "unterminated'),)),
            Reply(tool_calls=(FakeToolCall("summon_the_operator", {"now": True}),)),
            call("remember", {"text": "Third time lucky."}),
            *ending(),
        )

        outcome = await s.run(rid)

        assert outcome.state == "completed" and outcome.steps == 4
        assert {(r.api, r.streamed) for r in s.llm.requests} == {(provider, stream)}
        malformed = last_tool_result(s.llm.requests[1])
        assert malformed.is_error and "Your call to remember could not be read" in malformed.text
        unknown = last_tool_result(s.llm.requests[2])
        assert unknown.is_error and "There is no tool called 'summon_the_operator'" in unknown.text
        assert [r.is_error for r in tool_results(s.llm.requests[3])] == [True, True, False]
        assert [e.text for e in (await s.package(rid)).archival] == ["Third time lucky."]


async def test_a_run_that_dies_mid_loop_changes_nothing_and_its_retry_starts_afresh(sanctuary: Sanctuary) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    receipt = await s.node.inbox.deliver(rid, "Are you there?", from_name="Ann", uploader_token=None, address="::1")
    sealed_before = s.node.vault.path_for(rid, 1).read_bytes()
    s.llm.script(
        call("read_messages", {}),
        call("post_to_website", {"body": "Half a day."}),
        call("remember", {"text": "lost with the run"}),
        *[http_error(503)] * ATTEMPTS,
    )

    failed = await s.run(rid)

    assert (failed.state, failed.tokens_used) == ("failed", 0)
    assert await s.node.db.fetch_value("SELECT delivered_at FROM messages WHERE id = ?", (receipt.message_id,)) is None
    assert await s.node.posts.feed(limit=5, resident_id=rid) == []
    assert (await s.resident(rid)).token_balance == 0 and s.node.vault.epochs(rid) == [1]
    assert s.node.vault.path_for(rid, 1).read_bytes() == sealed_before

    s.clock.advance(RETRY_AFTER_OUTAGE_SECONDS)
    start = len(s.llm.requests)
    s.llm.script(call("read_messages", {}), *ending())
    assert (await s.run(rid)).state == "completed"
    assert "Are you there?" in last_tool_result(s.llm.requests[start + 1]).text  # still unread, shown again
    assert await s.node.db.fetch_value("SELECT delivered_at FROM messages WHERE id = ?", (receipt.message_id,))
    assert (await s.package(rid)).archival == ()
