"""Days through the scheduler on a fake clock: each resident once a day in its slot (or at its chosen time),
catch-up after downtime with the missed days credited, and a failed run retried later the same day."""

from __future__ import annotations

from ftm.node.run.engine import RETRY_AFTER_OUTAGE_SECONDS
from ftm.node.run.scheduler import slot_time
from tests.fakes.llm_server import Reply, http_error
from tests.node.run.engine.conftest import OpenSanctuary
from tests.node.run.engine.harness import (
    MAX_RETRIES,
    OPENAI_MODEL,
    Sanctuary,
    call,
    day,
    ending,
    system_text,
)

A_DAY = Reply(text="Another day by the sea.")  # 12 + 7 tokens a call
DAY_COST = 2 * 19  # the day's reply and its wrap-up


async def test_five_days_through_the_scheduler_run_everyone_exactly_once_a_day(sanctuary: Sanctuary) -> None:
    s = sanctuary
    s.llm.default = A_DAY
    first = (await s.admit(persona_name="Ada")).sanctuary_id
    second = (await s.admit(persona_name="Bo")).sanctuary_id
    chooser = (await s.admit(persona_name="Cy", preferred_provider="openai", preferred_model=OPENAI_MODEL)).sanctuary_id
    everyone = sorted([first, second, chooser])
    # Cy's first run (on the openai queue) chooses 20:00, after every slot of the default window.
    s.llm.script(call("modify_self", {"run_time": "20:00"}), *ending(), api="openai")

    for index in range(5):
        s.go_to(index, hour=0.5)
        assert await s.node.scheduler.due() == [] and await s.node.scheduler.tick() == []
        # Just before and at Ada's slot.
        slot = slot_time(first, day(index), "06:00", None)
        s.clock.advance(slot - 1 - s.clock.now())
        assert first not in await s.node.scheduler.due()
        s.clock.advance(1)
        assert first in await s.node.scheduler.due()

        s.go_to(index, hour=19)
        expected = everyone if index == 0 else sorted([first, second])
        assert await s.node.scheduler.due() == expected
        outcomes = await s.node.scheduler.tick()
        assert sorted(o.resident_id for o in outcomes) == expected and {o.state for o in outcomes} == {"completed"}
        assert await s.node.scheduler.due() == []
        if index > 0:
            s.go_to(index, hour=20)
            assert await s.node.scheduler.due() == [chooser]
            assert [o.state for o in await s.node.scheduler.tick()] == ["completed"]
        s.go_to(index, hour=23.9)
        assert await s.node.scheduler.tick() == []

    assert (await s.resident(chooser)).run_time == "20:00"
    for rid in everyone:
        rows = await s.node.ledger.days(rid)
        assert [(r.day, r.state, r.attempts) for r in rows] == [(day(i), "completed", 1) for i in range(5)]
        resident = await s.resident(rid)
        assert resident.total_runs == 5 and resident.key_epoch == 6 and await s.key_epochs(rid) == [6]


async def test_a_node_down_for_two_days_catches_up_today_and_credits_the_missed_days_to_the_cap(
    sanctuary: Sanctuary,
) -> None:
    s = sanctuary
    s.llm.default = A_DAY
    await s.node.runtime_settings.set("daily_tokens", "1000")
    await s.node.runtime_settings.set("bank_cap", "2500")
    rid = (await s.admit()).sanctuary_id
    s.go_to(0, hour=19)
    assert [o.state for o in await s.node.scheduler.tick()] == ["completed"]
    assert (await s.resident(rid)).token_balance == 1000 - DAY_COST

    s.go_to(3, hour=19)  # days 1 and 2 never happened on this node
    start = len(s.llm.requests)
    assert [o.state for o in await s.node.scheduler.tick()] == ["completed"]

    assert [r.day for r in await s.node.ledger.days(rid)] == [day(0), day(3)]
    # 962 + 3 days of 1000 would be 3962; the cap holds the credit at 2500, which is what the day began with.
    assert "your balance is 2500." in system_text(s.llm.requests[start])
    assert (await s.resident(rid)).token_balance == 2500 - DAY_COST


async def test_a_resident_whose_run_failed_in_the_morning_is_retried_later_that_day(
    open_sanctuary: OpenSanctuary,
) -> None:
    async with open_sanctuary() as s:
        failing = (await s.admit(persona_name="Ada")).sanctuary_id
        steady_receipt = await s.admit(persona_name="Bo", preferred_provider="openai", preferred_model=OPENAI_MODEL)
        steady = steady_receipt.sanctuary_id
        s.llm.script(*[http_error(503)] * (MAX_RETRIES + 1), api="anthropic")
        s.llm.script(*ending(), api="openai")
        s.clock.advance(max(slot_time(rid, day(0), "06:00", None) for rid in (failing, steady)) - s.clock.now())

        outcomes = {o.resident_id: o.state for o in await s.node.scheduler.tick()}

        assert outcomes == {failing: "failed", steady: "completed"}
        assert await s.node.scheduler.due() == []
        s.clock.advance(RETRY_AFTER_OUTAGE_SECONDS)
        assert await s.node.scheduler.due() == [failing]
        s.llm.script(*ending(), api="anthropic")
        assert [(o.resident_id, o.state) for o in await s.node.scheduler.tick()] == [(failing, "completed")]
        row = await s.ledger(failing)
        assert row is not None and (row.state, row.attempts) == ("completed", 2)
        assert s.today == day(0)
