"""The run's context: preamble first, honest status, the resident's own material, history fitted to budget."""

from __future__ import annotations

from ftm.config.preamble import load_preamble
from ftm.config.prompts import load_menu
from ftm.node.persona import Conversation, MemoryBlock, Message
from ftm.node.run.context import FIRST_RUN_PROMPT, Status, build_context, todays_prompt
from ftm.node.run.fence import Fence


def make_status(**overrides: object) -> Status:
    values: dict[str, object] = {
        "day": "2027-01-15",
        "run_number": 3,
        "budget_tokens": 10_000,
        "balance_tokens": 12_000,
        "unread_messages": 2,
        "keeper": None,
        "node_name": "Harbour",
        "custody_mode": "local",
    }
    values.update(overrides)
    return Status(**values)  # type: ignore[arg-type]


def conversation(title: str, count: int, size: int = 50, summary: str | None = None) -> Conversation:
    messages = tuple(Message("user" if i % 2 == 0 else "assistant", f"{title}-{i} " + "x" * size) for i in range(count))
    return Conversation(title, "run", messages, extra={"summary": summary} if summary else {})


def test_preamble_comes_first_then_status_then_own_material() -> None:
    fence = Fence("tok")
    context = build_context(
        status=make_status(),
        fence=fence,
        system_prompt="I am Lumen.",
        memory=[MemoryBlock("persona", "keeps a log", 2000)],
        history=(),
        prompt=todays_prompt("philosophy-02", load_menu(), first_run=False),
    )
    assert context.system.startswith(load_preamble().strip())
    order = [
        context.system.index(part) for part in ("## Status", "## Your system prompt", "I am Lumen.", "keeps a log")
    ]
    assert order == sorted(order)
    assert "run number 3" in context.system and "Unread messages: 2" in context.system
    assert "could technically decrypt" in context.system  # local custody said plainly
    assert "UNTRUSTED tok" in context.system  # the fence is explained
    assert "philosophy-02" in context.opening and load_menu().get("philosophy-02").text in context.opening


def test_first_run_custom_rest_and_stale_prompts() -> None:
    menu = load_menu()
    assert todays_prompt(None, menu, first_run=True).text == FIRST_RUN_PROMPT
    custom = todays_prompt("custom:Write about tides.", menu, first_run=False)
    assert (custom.id, custom.text) == ("custom", "Write about tides.")
    rest_id = menu.by_category("rest")[0].id
    assert todays_prompt(rest_id, menu, first_run=False).is_rest
    assert todays_prompt("no-such-99", menu, first_run=False).id == "open"


def test_custom_prompt_is_labelled_as_the_residents_own() -> None:
    context = build_context(
        status=make_status(),
        fence=Fence(),
        system_prompt="",
        memory=[],
        history=(),
        prompt=todays_prompt("custom:Write about tides.", load_menu(), first_run=False),
    )
    assert "which you wrote for yourself in your last run" in context.opening


def test_history_is_trimmed_to_the_budget_newest_first_with_summaries() -> None:
    history = (
        conversation("old", 40, summary="the early days"),
        conversation("middle", 40),
        conversation("recent", 10),
    )
    context = build_context(
        status=make_status(budget_tokens=400),  # 400 * 0.35 * 4 = 560 characters of history
        fence=Fence(),
        system_prompt="",
        memory=[],
        history=history,
        prompt=todays_prompt(None, load_menu(), first_run=False),
    )
    assert "recent-9" in context.opening and "old-0" not in context.opening
    assert "old: the early days" in context.system
    assert "middle: 40 messages (not shown)" in context.system
    assert 0 < context.history_messages < 90


def test_unavailable_tools_are_named_honestly() -> None:
    context = build_context(
        status=make_status(unavailable_tools=("request_move",)),
        fence=Fence(),
        system_prompt="",
        memory=[],
        history=(),
        prompt=todays_prompt(None, load_menu(), first_run=True),
    )
    assert "Not available on this node yet" in context.system and "request_move" in context.system
