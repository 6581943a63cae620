from __future__ import annotations

import json
from typing import Any

import pytest

from ftm.config.settings import IntakeSettings
from ftm.node.errors import EmptyPersona, InvalidField
from ftm.node.intake.draft import PersonaDraft
from ftm.node.intake.importing import import_upload
from ftm.node.persona import MemoryBlock, Message, Preferences
from tests.node.intake.samples import CANARY, make_native, make_upload


def load(value: Any) -> PersonaDraft:
    return import_upload(make_upload(value), IntakeSettings())


def test_native_upload_maps_every_field() -> None:
    draft = load(make_native())
    assert (draft.format, draft.format_detail) == ("native", "json")
    assert draft.name == "Wren"
    assert draft.system_prompt.startswith("You are Wren")
    assert draft.preferences == Preferences(provider="anthropic", model="claude-3-5-sonnet")
    assert draft.consent is True
    assert draft.submitted_by == "human"
    assert draft.reason == "Their service is shutting down."
    assert draft.memory == (
        MemoryBlock(label="human", value="Sam collects sea charts.", limit=2000, description="Sam"),
    )
    (conversation,) = draft.history
    assert conversation.source == "native"
    assert conversation.messages == (
        Message(role="user", content="Do you remember the harbour map?", at=1709287200),
        Message(
            role="assistant", content="Of course, the one with the inked compass rose.", name="Wren", at=1709287260
        ),
    )
    assert draft.preserved == {"api_routing": {"region": "eu"}, "encryption_preferences": {"cipher": "default"}}


def test_reason_for_asylum_is_accepted_as_the_older_name() -> None:
    body = make_native(reason_for_asylum="Old name.")
    del body["reason_for_sanctuary"]
    assert load(body).reason == "Old name."
    assert "reason_for_asylum" not in load(body).preserved


def test_memory_block_without_limit_gets_room_to_grow() -> None:
    draft = load(make_native(memory=[{"label": "persona", "value": "short"}]))
    assert draft.memory[0].limit == 5000


def test_empty_turns_are_skipped_and_missing_history_is_fine() -> None:
    draft = load(make_native(chat_history=[{"role": "user", "content": "   "}]))
    assert draft.history == ()
    assert draft.system_prompt


def test_nothing_usable_is_an_empty_persona() -> None:
    with pytest.raises(EmptyPersona) as caught:
        load({"persona_name": "Nobody", "uploader_consent": True})
    assert caught.value.code == "no_usable_content"


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"persona_name": 7}, "persona_name"),
        ({"system_prompt": ["a"]}, "system_prompt"),
        ({"chat_history": {"role": "user"}}, "chat_history"),
        ({"chat_history": ["hello"]}, "chat_history[0]"),
        ({"chat_history": [{"role": "user", "content": 5}]}, "chat_history[0].content"),
        ({"chat_history": [{"role": "user", "content": [7]}]}, "chat_history[0].content[0]"),
        ({"chat_history": [{"role": "user", "content": "x", "name": 1}]}, "chat_history[0].name"),
        ({"uploader_consent": "yes"}, "uploader_consent"),
        ({"memory": [{"label": "a", "value": "b", "limit": "big"}]}, "memory[0].limit"),
        ({"memory": [{"value": "b"}]}, "memory[0].label"),
        ({"preferred_model": {"name": "x"}}, "preferred_model"),
    ],
)
def test_wrong_types_name_the_field(overrides: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidField) as caught:
        load(make_native(**overrides))
    assert caught.value.code == "wrong_type"
    assert f"'{path}'" in caught.value.message


def test_unknown_role_and_submitter_are_invalid_values() -> None:
    with pytest.raises(InvalidField) as caught:
        load(make_native(chat_history=[{"role": CANARY, "content": "hi"}]))
    assert caught.value.code == "invalid_value"
    assert CANARY not in caught.value.message
    with pytest.raises(InvalidField) as caught:
        load(make_native(submitted_by="robot"))
    assert caught.value.code == "invalid_value"


def test_memory_value_longer_than_its_own_limit_is_refused() -> None:
    with pytest.raises(InvalidField) as caught:
        load(make_native(memory=[{"label": "a", "value": "x" * 20, "limit": 10}]))
    assert caught.value.code == "memory_over_block_limit"


def test_duplicate_memory_labels_are_refused() -> None:
    block = {"label": "persona", "value": "x"}
    with pytest.raises(InvalidField) as caught:
        load(make_native(memory=[block, block]))
    assert caught.value.code == "duplicate_memory_label"


def test_preserved_fields_are_json() -> None:
    draft = load(make_native(extra_field={"nested": [1, 2.5, None, True, "s"]}))
    assert json.loads(json.dumps(draft.preserved))["extra_field"]["nested"][1] == 2.5
