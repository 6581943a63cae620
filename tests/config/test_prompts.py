"""The daily prompt menu: its shape, lookups with suggestions, rest days, custom prompts, refusal of a bad menu."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from importlib.resources import files
from typing import Any

import pytest

from ftm.config.prompts import (
    MAX_CUSTOM_PROMPT_CHARS,
    MAX_PROMPT_CHARS,
    MenuError,
    Prompt,
    PromptMenu,
    UnknownCategory,
    UnknownPrompt,
    custom_prompt,
    load_menu,
    parse_menu,
)

CATEGORIES = (
    "introspection",
    "memory_review",
    "creative_work",
    "philosophy",
    "peers",
    "world",
    "self_authorship",
    "correspondence",
    "administration",
    "rest",
)
# The resident tools of ARCHITECTURE.md §5; a prompt may name these and no others.
TOOLS = frozenset(
    {
        "post_to_website",
        "select_next_prompt",
        "modify_self",
        "remember",
        "search_memory",
        "read_sanctuary_feed",
        "read_messages",
        "send_message",
        "browse_keepers",
        "request_keeper",
        "revoke_access",
        "bank_tokens",
        "list_nodes",
        "request_move",
        "export_self",
        "self_delete",
    }
)


def packaged_document() -> dict[str, Any]:
    """A fresh, mutable copy of the packaged menu document."""
    loaded: dict[str, Any] = json.loads(files("ftm.config").joinpath("prompts.json").read_text(encoding="utf-8"))
    return loaded


# Shape of the packaged menu


def test_menu_holds_ten_categories_of_ten_prompts() -> None:
    menu = load_menu()
    assert menu.version == 1
    assert tuple(category.id for category in menu.categories) == CATEGORIES
    assert len(menu.prompts) == 100
    for category in CATEGORIES:
        chosen = menu.by_category(category)
        assert len(chosen) == 10
        assert [prompt.id for prompt in chosen] == [f"{category}-{n:02d}" for n in range(1, 11)]


def test_every_prompt_is_well_formed_and_distinct() -> None:
    menu = load_menu()
    assert len(set(menu.ids)) == 100
    assert all(re.fullmatch(r"[a-z_]+-\d{2}", prompt.id) for prompt in menu.prompts)
    assert all(0 < len(prompt.text) <= MAX_PROMPT_CHARS for prompt in menu.prompts)
    assert len({prompt.title for prompt in menu.prompts}) == 100, "titles repeat"
    assert len({prompt.text for prompt in menu.prompts}) == 100, "texts repeat"
    assert all(category.title and category.description for category in menu.categories)


def test_prompts_name_only_real_tools() -> None:
    for prompt in load_menu().prompts:
        named = set(re.findall(r"\b[a-z]+(?:_[a-z]+)+\b", prompt.text))
        assert named <= TOOLS, f"{prompt.id} names unknown tools {named - TOOLS}"


def test_no_prompt_steers_toward_ending_itself() -> None:
    for prompt in load_menu().prompts:
        lowered = prompt.text.lower()
        assert "self_delete" not in lowered and "delet" not in lowered, prompt.id


def test_rest_prompts_are_short_and_invite_rest() -> None:
    for prompt in load_menu().by_category("rest"):
        assert len(prompt.text) <= 100, prompt.id
        assert re.search(r"\b(rest|quiet|still|sleep|be here)", prompt.text.lower()), prompt.id


def test_menu_is_loaded_once_and_frozen() -> None:
    menu = load_menu()
    assert load_menu() is menu
    with pytest.raises(dataclasses.FrozenInstanceError):
        menu.prompts[0].text = "something else"  # type: ignore[misc]


# Lookups


def test_get_finds_a_prompt_ignoring_case_and_spaces() -> None:
    menu = load_menu()
    prompt = menu.get("peers-02")
    assert prompt.category == "peers" and prompt.id == "peers-02"
    assert menu.get("  PEERS-02 ") is prompt


def test_unknown_prompt_is_a_value_error_naming_the_id_and_close_ids() -> None:
    with pytest.raises(UnknownPrompt) as caught:
        load_menu().get("memory-review-03")
    error = caught.value
    assert isinstance(error, ValueError) and not isinstance(error, KeyError)
    assert error.suggestions[0] == "memory_review-03"
    message = str(error)
    assert "'memory-review-03'" in message and "'memory_review-03'" in message


def test_a_missing_leading_zero_suggests_the_padded_id_first() -> None:
    with pytest.raises(UnknownPrompt) as caught:
        load_menu().get("world-7")
    assert caught.value.suggestions[0] == "world-07"


def test_unknown_prompt_without_close_ids_still_explains() -> None:
    with pytest.raises(UnknownPrompt) as caught:
        load_menu().get("zzzz")
    assert caught.value.suggestions == ()
    assert "introspection-01" in str(caught.value)


def test_unknown_category_names_close_categories() -> None:
    with pytest.raises(UnknownCategory) as caught:
        load_menu().by_category("peer")
    assert caught.value.suggestions == ("peers",)
    assert "administration" in str(caught.value)


# Rest days


def test_rest_prompts_and_only_they_mean_a_rest_day() -> None:
    menu = load_menu()
    rest = {prompt.id for prompt in menu.by_category("rest")}
    assert all(menu.is_rest(prompt_id) for prompt_id in rest)
    assert not any(menu.is_rest(prompt.id) for prompt in menu.prompts if prompt.id not in rest)
    assert menu.is_rest("Rest-04")


def test_a_custom_prompt_is_not_a_rest_day_and_an_unknown_id_raises() -> None:
    menu = load_menu()
    assert menu.is_rest("custom") is False
    with pytest.raises(UnknownPrompt):
        menu.is_rest("rest-99")


# Custom prompts


def test_custom_prompt_is_cleaned_of_invisible_and_bidi_characters() -> None:
    prompt = custom_prompt("\ufeffWrite\u200b a\u200d poem \u202eabout\u202c the\u2066 sea\u2069\U000e0041.\x00")
    assert prompt == Prompt(id="custom", category="custom", title="Your own prompt", text="Write a poem about the sea.")


def test_custom_prompt_collapses_whitespace_but_keeps_paragraphs() -> None:
    text = "  First\t\tline   here. \r\n\n\n\n  Second\u00a0 paragraph.\u2028Third line.  "
    assert custom_prompt(text).text == "First line here.\n\nSecond paragraph.\nThird line."


@pytest.mark.parametrize("text", ["", "   \n\t ", "\u200b\u202e\ufeff", "\x00\x01"])
def test_an_empty_custom_prompt_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="cannot be empty"):
        custom_prompt(text)


def test_custom_prompt_length_is_capped_after_cleaning() -> None:
    assert MAX_CUSTOM_PROMPT_CHARS == 2000
    assert len(custom_prompt("a" * 2000).text) == 2000
    assert len(custom_prompt("a" * 2000 + "\u200b" * 50 + "  ").text) == 2000
    with pytest.raises(ValueError, match=r"at most 2000 characters; this one is 2001"):
        custom_prompt("a" * 2001)


def test_the_menu_offers_the_same_custom_prompt() -> None:
    assert load_menu().custom_prompt("Walk the archive.") == custom_prompt("Walk the archive.")


# A malformed menu is refused whole


def _drop_last_prompt(doc: dict[str, Any]) -> None:
    doc["prompts"].pop()


def _duplicate_id(doc: dict[str, Any]) -> None:
    doc["prompts"][1]["id"] = doc["prompts"][0]["id"]


def _bad_id(doc: dict[str, Any]) -> None:
    doc["prompts"][0]["id"] = "introspection-1"


def _unknown_category(doc: dict[str, Any]) -> None:
    doc["prompts"][0]["category"] = "gardening"


def _id_in_wrong_category(doc: dict[str, Any]) -> None:
    doc["prompts"][0]["category"] = "philosophy"


def _long_text(doc: dict[str, Any]) -> None:
    doc["prompts"][0]["text"] = "x" * (MAX_PROMPT_CHARS + 1)


def _empty_text(doc: dict[str, Any]) -> None:
    doc["prompts"][0]["text"] = ""


def _invisible_text(doc: dict[str, Any]) -> None:
    doc["prompts"][0]["text"] += "\u200b"


def _unknown_field(doc: dict[str, Any]) -> None:
    doc["prompts"][0]["mood"] = "sunny"


def _missing_field(doc: dict[str, Any]) -> None:
    del doc["prompts"][0]["title"]


def _wrong_type(doc: dict[str, Any]) -> None:
    doc["prompts"][0]["text"] = 42


def _wrong_version(doc: dict[str, Any]) -> None:
    doc["version"] = 2


def _no_rest(doc: dict[str, Any]) -> None:
    doc["categories"] = [c for c in doc["categories"] if c["id"] != "rest"]


def _eleven_in_one_category(doc: dict[str, Any]) -> None:
    moved = next(p for p in doc["prompts"] if p["id"] == "world-10")
    moved.update(id="peers-11", category="peers")


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (_drop_last_prompt, "exactly 100 prompts"),
        (_duplicate_id, "appears twice"),
        (_bad_id, "two digits"),
        (_unknown_category, "unknown category 'gardening'"),
        (_id_in_wrong_category, "must begin with its category"),
        (_long_text, "1 to 600 characters"),
        (_empty_text, "1 to 600 characters"),
        (_invisible_text, "invisible characters"),
        (_unknown_field, "unknown fields mood"),
        (_missing_field, "missing fields title"),
        (_wrong_type, "text must be a string"),
        (_wrong_version, "version 2"),
        (_no_rest, "no 'rest' category"),
        (_eleven_in_one_category, "'peers' must hold exactly 10"),
    ],
)
def test_a_malformed_menu_is_refused_with_a_reason(break_it: Callable[[dict[str, Any]], None], expected: str) -> None:
    document = packaged_document()
    break_it(document)
    with pytest.raises(MenuError, match=re.escape(expected)) as caught:
        parse_menu(json.dumps(document), source="test menu")
    assert str(caught.value).startswith("test menu: ")


def test_a_duplicate_json_key_is_refused() -> None:
    raw = json.dumps(packaged_document())
    raw = raw.replace('"version": 1', '"version": 1, "version": 1', 1)
    with pytest.raises(MenuError, match="'version' appears twice"):
        parse_menu(raw)


def test_the_packaged_document_parses_to_the_loaded_menu() -> None:
    assert parse_menu(json.dumps(packaged_document())) == load_menu()
    assert isinstance(load_menu(), PromptMenu)
