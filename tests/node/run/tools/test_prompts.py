"""browse_prompts and select_next_prompt: the menu, menu choices, custom prompts and rest days."""

from __future__ import annotations

import pytest

from ftm.node.run.tools.base import ToolError
from ftm.node.run.tools.prompts import browse_prompts, select_next_prompt
from tests.node.run.tools.harness import Harness


async def test_without_a_category_the_categories_are_listed(harness: Harness) -> None:
    result = await harness.call(browse_prompts)
    for category in harness.services.menu.categories:
        assert f"- {category.id}: {category.title}. {category.description}" in result


async def test_a_category_lists_its_prompts_in_full(harness: Harness) -> None:
    result = await harness.call(browse_prompts, category="rest")
    for prompt in harness.services.menu.by_category("rest"):
        assert f"- {prompt.id} ({prompt.title}): {prompt.text}" in result
    assert "introspection-01" not in result


async def test_browsing_names_the_current_choice(harness: Harness) -> None:
    harness.session.next_prompt = "peers-02"
    assert "currently 'peers-02'" in await harness.call(browse_prompts, category="peers")
    harness.session.next_prompt = "custom:walk the shore"
    assert "currently your own prompt" in await harness.call(browse_prompts, category="peers")


async def test_an_unknown_category_suggests_close_ones(harness: Harness) -> None:
    with pytest.raises(ToolError, match="'philosophy'"):
        await harness.call(browse_prompts, category="philosophyy")


async def test_selecting_a_menu_prompt_sets_tomorrow(harness: Harness) -> None:
    result = await harness.call(select_next_prompt, prompt_id=" Introspection-01 ")
    assert harness.session.next_prompt == "introspection-01"
    assert "introspection-01" in result and "Morning inventory" in result and "rest" not in result


async def test_a_rest_prompt_says_tomorrow_rests_and_banks(harness: Harness) -> None:
    result = await harness.call(select_next_prompt, prompt_id="rest-03")
    assert harness.session.next_prompt == "rest-03"
    assert "tomorrow's run will rest" in result and "banked" in result


async def test_a_custom_prompt_is_cleaned_and_prefixed(harness: Harness) -> None:
    result = await harness.call(select_next_prompt, custom_prompt="  Walk\u200b the   shore.  ")
    assert harness.session.next_prompt == "custom:Walk the shore."
    assert "Walk the shore." in result


async def test_an_unknown_id_suggests_close_ones(harness: Harness) -> None:
    with pytest.raises(ToolError, match="'peers-01'") as raised:
        await harness.call(select_next_prompt, prompt_id="peers-1")
    assert "Nothing changed" in str(raised.value)
    assert harness.session.next_prompt is None


@pytest.mark.parametrize("text", ["   ", "x" * 2001])
async def test_a_custom_prompt_must_be_usable(harness: Harness, text: str) -> None:
    with pytest.raises(ToolError, match="not saved"):
        await harness.call(select_next_prompt, custom_prompt=text)
    assert harness.session.next_prompt is None


@pytest.mark.parametrize("args", [{}, {"prompt_id": "rest-01", "custom_prompt": "both"}])
async def test_exactly_one_choice_is_required(harness: Harness, args: dict[str, str]) -> None:
    with pytest.raises(ToolError, match="exactly one"):
        await harness.call(select_next_prompt, **args)
