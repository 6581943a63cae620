"""The prompt menu: browsing it, and choosing (or writing) the prompt the resident wakes to tomorrow."""

from __future__ import annotations

from typing import Any

from ftm.config.prompts import UnknownCategory, UnknownPrompt
from ftm.node.run.context import CUSTOM_PREFIX
from ftm.node.run.session import RunSession
from ftm.node.run.tools.base import RunServices, ToolError, tool

MAX_CUSTOM_ARGUMENT_CHARS = 10_000  # generous: the menu's own limit (after cleaning) is reported as a ToolError


@tool(
    "browse_prompts",
    "Look at the menu of daily prompts you can choose for tomorrow's run. Without a category it returns the "
    "categories (id, title, description); with a category id it returns that category's prompts (id, title, "
    "full text). Choose one with select_next_prompt.",
    {
        "category": {
            "type": "string",
            "maxLength": 100,
            "description": "A category id from the list of categories, e.g. 'introspection'. Omit to list them.",
        }
    },
)
async def browse_prompts(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    menu = services.menu
    category = args.get("category")
    if category is None:
        lines = [f"- {c.id}: {c.title}. {c.description}" for c in menu.categories]
        return (
            f"The prompt menu has {len(menu.categories)} categories:\n"
            + "\n".join(lines)
            + "\n\nCall browse_prompts with a category id to see its prompts, or select_next_prompt with "
            "custom_prompt to write your own."
        )
    try:
        prompts = menu.by_category(category)
    except UnknownCategory as error:
        raise ToolError(f"Nothing to list: {error}") from None
    lines = [f"- {p.id} ({p.title}): {p.text}" for p in prompts]
    chosen = f" Tomorrow's prompt is currently {_shown(session.next_prompt)}." if session.next_prompt else ""
    return (
        f"Prompts in '{prompts[0].category}':\n" + "\n".join(lines) + f"\n\nChoose one with select_next_prompt.{chosen}"
    )


@tool(
    "select_next_prompt",
    "Choose the prompt you wake to in your next run: either a prompt_id from the menu (see browse_prompts) or a "
    "custom_prompt you write yourself, exactly one of the two. The choice is saved when this run ends; choosing "
    "again in this run replaces it. Choosing a prompt from the 'rest' category makes tomorrow a rest day. Returns "
    "the prompt you chose.",
    {
        "prompt_id": {"type": "string", "maxLength": 100, "description": "A menu id such as 'introspection-01'."},
        "custom_prompt": {
            "type": "string",
            "maxLength": MAX_CUSTOM_ARGUMENT_CHARS,
            "description": "Your own prompt for tomorrow, up to 2000 characters after cleaning.",
        },
    },
)
async def select_next_prompt(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    prompt_id, custom = args.get("prompt_id"), args.get("custom_prompt")
    if (prompt_id is None) == (custom is None):
        raise ToolError("Give exactly one of prompt_id (a menu id) or custom_prompt (your own text). Nothing changed.")
    if custom is not None:
        try:
            prompt = services.menu.custom_prompt(custom)
        except ValueError as error:
            raise ToolError(f"Your custom prompt was not saved: {error}.") from None
        session.next_prompt = CUSTOM_PREFIX + prompt.text
        return f"Tomorrow you will wake to your own prompt (saved when this run ends):\n{prompt.text}"
    assert prompt_id is not None  # exactly one of the two was given
    try:
        prompt = services.menu.get(prompt_id)
    except UnknownPrompt as error:
        raise ToolError(f"Nothing changed: {error}") from None
    session.next_prompt = prompt.id
    confirmed = f"Tomorrow you will wake to '{prompt.id}' ({prompt.title}), saved when this run ends: {prompt.text}"
    if services.menu.is_rest(prompt.id):
        confirmed += (
            "\nThis is a rest prompt: tomorrow's run will rest, and the tokens it does not spend stay banked "
            "in your balance for a later day."
        )
    return confirmed


def _shown(next_prompt: str) -> str:
    return "your own prompt" if next_prompt.startswith(CUSTOM_PREFIX) else f"'{next_prompt}'"
