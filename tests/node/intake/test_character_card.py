from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ftm.config.settings import IntakeSettings
from ftm.node.errors import EmptyPersona, InvalidField, LimitExceeded, UnsupportedFormat
from ftm.node.intake.draft import PersonaDraft
from ftm.node.intake.importing import Upload, import_upload
from tests.node.intake.samples import (
    card_text_chunk,
    make_card_png,
    make_card_v1,
    make_card_v2,
    make_card_v3,
    make_png,
    make_upload,
    png_chunk,
)


def load(value: Any, limits: IntakeSettings | None = None) -> PersonaDraft:
    return import_upload(make_upload(value), limits or IntakeSettings())


def test_v2_card_maps_identity_to_memory_and_greeting_to_history() -> None:
    draft = load(make_card_v2())
    assert (draft.format, draft.format_detail) == ("character_card_v2", "json")
    assert draft.name == "Seraphina"
    assert draft.system_prompt == "Write {{char}}'s next reply in a fictional chat."
    blocks = {block.label: block for block in draft.memory}
    assert list(blocks) == ["persona", "scenario", "example_dialogue", "instructions"]
    assert blocks["persona"].value == (
        "Seraphina is a guardian of the enchanted forest.\n\nKind, protective, quietly funny."
    )
    assert blocks["instructions"].value == "Stay in character as {{char}}."
    assert all(block.limit == 5000 and block.description for block in draft.memory)
    (greeting,) = draft.history
    assert greeting.title == "Greeting"
    assert [(m.role, m.content, m.name) for m in greeting.messages] == [
        ("assistant", "*Seraphina smiles* You're awake at last.", "Seraphina")
    ]
    assert [(entry.text, entry.tags) for entry in draft.archival] == [
        ("The glade is protected by old wards.", ("glade", "clearing")),
        ("The silver river sings at night.", ("river",)),
    ]
    preserved = draft.preserved
    assert preserved["alternate_greetings"] == ["*Seraphina hums softly*", "Welcome back, traveller."]
    assert preserved["creator_notes"] == "Best with a warm temperature."
    assert preserved["tags"] == ["fantasy", "guardian"]
    assert preserved["extensions"]["talkativeness"] == "0.5"
    assert preserved["spec_version"] == "2.0"
    book = preserved["character_book"]
    assert book["name"] == "Forest lore"
    assert book["entries"][0]["insertion_order"] == 10
    assert all("content" not in entry for entry in book["entries"])


def test_v3_card_preserves_its_additions() -> None:
    draft = load(make_card_v3())
    assert draft.format == "character_card_v3"
    for key in ("nickname", "assets", "creator_notes_multilingual", "source", "group_only_greetings"):
        assert key in draft.preserved
    assert draft.preserved["creation_date"] == 1700000000


def test_v1_card_is_flat() -> None:
    draft = load(make_card_v1())
    assert draft.format == "character_card_v1"
    assert draft.system_prompt == ""
    assert [block.label for block in draft.memory] == ["persona", "scenario", "example_dialogue"]
    assert draft.preserved == {"avatar": "none"}


def test_top_level_v1_copies_beside_data_are_dropped_but_differences_kept() -> None:
    card = make_card_v2()
    card["name"] = card["data"]["name"]
    card["first_mes"] = "a different greeting"
    draft = load(card)
    assert "name" not in draft.preserved
    assert draft.preserved["first_mes"] == "a different greeting"


def test_memory_limit_is_capped_by_the_node_setting() -> None:
    limits = dataclasses.replace(IntakeSettings(), max_memory_block_chars=3000)
    draft = load(make_card_v2(scenario="s" * 100), limits)
    assert {block.limit for block in draft.memory} == {3000}
    long = load(make_card_v2(scenario="s" * 7000))
    assert next(b for b in long.memory if b.label == "scenario").limit == 7000


def test_card_with_only_a_name_is_empty() -> None:
    empty = dict.fromkeys(("description", "personality", "scenario", "first_mes", "mes_example"), "")
    with pytest.raises(EmptyPersona):
        load(make_card_v2(**empty, system_prompt="", post_history_instructions="", character_book=None))


@pytest.mark.parametrize(
    ("card", "path"),
    [
        ({"spec": "chara_card_v2", "data": "nope"}, "data"),
        (make_card_v2(name=5), "data.name"),
        (make_card_v2(character_book={"entries": "x"}), "data.character_book.entries"),
        (
            make_card_v2(character_book={"entries": [{"content": "c", "keys": [1]}]}),
            "data.character_book.entries[0].keys[0]",
        ),
        (make_card_v2(alternate_greetings="hi"), "data.alternate_greetings"),
    ],
)
def test_wrong_types_name_the_field(card: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidField) as caught:
        load(card)
    assert caught.value.code == "wrong_type"
    assert f"'{path}'" in caught.value.message


@pytest.mark.parametrize("chunk", ["tEXt", "zTXt", "iTXt", "iTXt-compressed"])
def test_png_card_in_any_text_chunk(chunk: str) -> None:
    draft = import_upload(Upload(make_card_png(make_card_v2(), chunk=chunk)), IntakeSettings())
    assert (draft.format, draft.format_detail) == ("character_card_v2", "png/chara")
    assert draft.name == "Seraphina"


def test_png_prefers_ccv3_over_chara() -> None:
    image = make_png(
        [card_text_chunk(make_card_v2(name="Old"), "chara"), card_text_chunk(make_card_v3(name="New"), "ccv3")]
    )
    draft = import_upload(Upload(image, filename="card.json"), IntakeSettings())
    assert (draft.format, draft.format_detail, draft.name) == ("character_card_v3", "png/ccv3", "New")


def test_png_without_a_card_says_so() -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        import_upload(Upload(make_png([png_chunk(b"tEXt", b"Comment\0hello")])), IntakeSettings())
    assert caught.value.code == "no_character_card"
    assert "character card" in caught.value.message


def test_png_chunk_holding_something_else_than_a_card() -> None:
    image = make_png([png_chunk(b"tEXt", b"chara\0" + b"WzEsIDJd")])  # base64 of [1, 2]
    with pytest.raises(UnsupportedFormat) as caught:
        import_upload(Upload(image), IntakeSettings())
    assert caught.value.code == "no_character_card"


def test_too_many_lorebook_entries_stops_early() -> None:
    limits = dataclasses.replace(IntakeSettings(), max_archival_entries=1)
    with pytest.raises(LimitExceeded) as caught:
        load(make_card_v2(), limits)
    assert caught.value.code == "too_many_archival_entries"
