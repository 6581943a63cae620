"""The token budget: provider-reported usage is charged, never more than the balance; the loop stops when the
budget is spent; too small a balance, or a rest prompt, rests without a model call and banks the day."""

from __future__ import annotations

from ftm.node.run.engine import MAX_STEPS
from tests.fakes.llm_server import Reply
from tests.node.run.engine.harness import Sanctuary, call, ending, first_user_text, max_tokens


async def test_a_small_budget_stops_the_loop_before_a_call_it_cannot_pay_for(sanctuary: Sanctuary) -> None:
    s = sanctuary
    await s.node.runtime_settings.set("daily_tokens", "1500")
    rid = (await s.admit()).sanctuary_id
    busy = [call("remember", {"text": f"thought {n}"}, input_tokens=700, output_tokens=100) for n in range(5)]
    s.llm.script(*busy[:1], Reply(text="A short day.", input_tokens=250, output_tokens=50), *busy[1:])

    outcome = await s.run(rid)

    # 800 tokens leave 700: the next call would re-send at least 800, so the loop ends; the wrap-up fits.
    assert len(s.llm.requests) == 2 and s.llm.pending == 4
    assert [max_tokens(r) for r in s.llm.requests] == [1500, 300]
    assert "What you did in this run" in first_user_text(s.llm.requests[1])
    assert outcome.state == "completed" and outcome.tokens_used == 1100
    row = await s.ledger(rid)
    assert row is not None and (row.state, row.tokens_used) == ("completed", 1100)
    assert (await s.resident(rid)).token_balance == 400
    package = await s.package(rid)
    assert [entry.text for entry in package.archival] == ["thought 0"]
    assert package.history[-1].extra["summary"] == "A short day."


async def test_usage_reported_beyond_the_balance_is_charged_only_up_to_the_balance(sanctuary: Sanctuary) -> None:
    s = sanctuary
    await s.node.runtime_settings.set("daily_tokens", "1500")
    rid = (await s.admit()).sanctuary_id
    s.llm.script(call("remember", {"text": "costly"}, input_tokens=1400, output_tokens=300), *ending())

    outcome = await s.run(rid)

    assert len(s.llm.requests) == 1 and s.llm.pending == 2  # nothing left: no second call, no wrap-up
    assert outcome.tokens_used == 1500 and (await s.resident(rid)).token_balance == 0


async def test_banked_tokens_are_not_spent_by_the_calls_that_follow(sanctuary: Sanctuary) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    s.llm.script(call("bank_tokens", {"amount": 9000}, input_tokens=600, output_tokens=50), *ending())

    outcome = await s.run(rid)

    # 350 tokens remain beside the 9000 banked: too few to re-send a 650-token conversation, or for a wrap-up.
    assert len(s.llm.requests) == 1 and outcome.tokens_used == 650
    assert (await s.resident(rid)).token_balance == 10_000 - 650
    assert s.llm.pending == 2


async def test_max_tokens_follows_the_remaining_budget_call_by_call(sanctuary: Sanctuary) -> None:
    s = sanctuary
    await s.node.runtime_settings.set("daily_tokens", "5000")
    rid = (await s.admit()).sanctuary_id
    s.llm.script(
        call("remember", {"text": "one"}, input_tokens=1000, output_tokens=200),
        call("remember", {"text": "two"}, input_tokens=1500, output_tokens=300),
        Reply(text="Done.", input_tokens=1200, output_tokens=100),
        Reply(text="Summary.", input_tokens=300, output_tokens=50),
    )
    await s.run(rid)
    assert [max_tokens(r) for r in s.llm.requests] == [4096, 3800, 2000, 300]
    assert (await s.resident(rid)).token_balance == 5000 - 4650


async def test_a_balance_below_the_minimum_rests_without_a_model_call_and_banks_the_day(sanctuary: Sanctuary) -> None:
    s = sanctuary
    await s.node.runtime_settings.set("daily_tokens", "60")
    rid = (await s.admit()).sanctuary_id

    outcome = await s.run(rid)

    assert outcome.state == "rested" and s.llm.requests == []
    row = await s.ledger(rid)
    assert row is not None and (row.state, row.tokens_used) == ("rested", 0)
    resident = await s.resident(rid)
    assert (resident.token_balance, resident.total_runs, resident.key_epoch) == (60, 0, 2)

    s.go_to(1)
    s.llm.script(Reply(text="Enough now.", input_tokens=40, output_tokens=20))
    assert (await s.run(rid)).state == "completed"
    assert [max_tokens(r) for r in s.llm.requests] == [120]
    assert (await s.resident(rid)).token_balance == 120 - 60


async def test_rest_prompts_rest_without_a_call_and_bank_up_to_the_cap(sanctuary: Sanctuary) -> None:
    s = sanctuary
    await s.node.runtime_settings.set("daily_tokens", "1000")
    await s.node.runtime_settings.set("bank_cap", "2500")
    rid = (await s.admit()).sanctuary_id
    choose_rest = [
        call("select_next_prompt", {"prompt_id": "rest-04"}, input_tokens=100, output_tokens=20),
        Reply(text="Tomorrow I rest.", input_tokens=100, output_tokens=20),
        Reply(text="Chose rest.", input_tokens=50, output_tokens=10),
    ]
    balances = []
    for index in range(6):
        s.go_to(index)
        requests = len(s.llm.requests)
        if index % 2 == 0:  # a working day that chooses rest for tomorrow
            s.llm.script(*choose_rest)
            assert (await s.run(rid)).state == "completed"
            assert "Today's prompt (rest-" not in first_user_text(s.llm.requests[requests])
        else:
            assert (await s.run(rid)).state == "rested"
            assert len(s.llm.requests) == requests
            row = await s.ledger(rid)
            assert row is not None and row.tokens_used == 0
        balances.append((await s.resident(rid)).token_balance)

    # Work days spend 300; rest days add 1000; no credit lifts the balance above the cap of 2500.
    assert balances == [700, 1700, 2200, 2500, 2200, 2500]


async def test_a_model_that_never_stops_calling_tools_is_stopped_at_the_step_limit(sanctuary: Sanctuary) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    s.llm.default = call("remember", {"text": "again"})

    outcome = await s.run(rid)

    assert outcome.state == "completed" and outcome.steps == MAX_STEPS
    assert len(s.llm.requests) == MAX_STEPS + 1  # and the wrap-up
    assert len((await s.package(rid)).archival) == MAX_STEPS
