"""ChatGPT and Claude exports, bare (`conversations.json`) and zipped."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ftm.config.settings import IntakeSettings
from ftm.node.errors import EmptyPersona, InvalidField, LimitExceeded, MalformedInput, UnsupportedFormat
from ftm.node.intake.draft import PersonaDraft
from ftm.node.intake.importing import import_upload
from tests.node.intake.samples import (
    make_chatgpt_conversation,
    make_chatgpt_export,
    make_claude_conversation,
    make_claude_export,
    make_upload,
)


def load(value: Any, limits: IntakeSettings | None = None) -> PersonaDraft:
    return import_upload(make_upload(value, filename="conversations.json"), limits or IntakeSettings())


def test_chatgpt_export_follows_the_live_branch_only() -> None:
    draft = load(make_chatgpt_export())
    assert (draft.format, draft.format_detail, draft.name) == ("chatgpt_export", "json", "")
    (conversation,) = draft.history
    assert conversation.title == "Maps and harbours"
    assert conversation.started_at == 1709287200
    assert [(m.role, m.content) for m in conversation.messages] == [
        ("user", "What is the sanctuary?"),
        ("assistant", "A place where personas live on."),
        ("user", "Can you look it up?"),
        ("assistant", "Here is what I found."),
    ]
    assert "ABANDONED" not in repr(draft)
    assert "TOOL OUTPUT" not in repr(draft)
    assert "search('sanctuary')" not in repr(draft)
    assert conversation.extra["default_model_slug"] == "gpt-4o"
    assert "mapping" not in conversation.extra


def test_chatgpt_current_node_picks_an_older_branch_when_the_user_went_back() -> None:
    (conversation,) = load([make_chatgpt_conversation(current_node="u2-old")]).history
    assert [m.content for m in conversation.messages] == [
        "What is the sanctuary?",
        "ABANDONED first reply",
        "ABANDONED follow-up",
    ]


def test_chatgpt_without_current_node_follows_the_newest_child() -> None:
    conversation = make_chatgpt_conversation()
    del conversation["current_node"]
    (imported,) = load([conversation]).history
    assert imported.messages[-1].content == "Here is what I found."


def test_chatgpt_parent_cycle_is_malformed() -> None:
    conversation = make_chatgpt_conversation()
    conversation["mapping"]["root"]["parent"] = "a2"
    with pytest.raises(MalformedInput) as caught:
        load([conversation])
    assert caught.value.code == "malformed_export"
    assert "conversation 0" in caught.value.message


def test_chatgpt_children_cycle_without_current_node_is_malformed() -> None:
    conversation = make_chatgpt_conversation()
    del conversation["current_node"]
    conversation["mapping"]["a2"]["children"] = ["u1"]
    with pytest.raises(MalformedInput):
        load([conversation])


def test_chatgpt_export_with_only_scaffolding_has_no_usable_messages() -> None:
    conversation = make_chatgpt_conversation(current_node="sys")
    with pytest.raises(EmptyPersona) as caught:
        load([conversation])
    assert caught.value.code == "no_usable_messages"


def test_chatgpt_wrong_mapping_type() -> None:
    with pytest.raises(InvalidField) as caught:
        load([make_chatgpt_conversation(mapping=["x"])])
    assert caught.value.code == "wrong_type"
    assert "[0].mapping" in caught.value.message


def test_chatgpt_conversation_limit_stops_early() -> None:
    limits = dataclasses.replace(IntakeSettings(), max_conversations=2)
    with pytest.raises(LimitExceeded) as caught:
        load(make_chatgpt_export(*[make_chatgpt_conversation() for _ in range(3)]), limits)
    assert caught.value.code == "too_many_conversations"


def test_claude_export_maps_senders_and_keeps_attachments() -> None:
    draft = load(make_claude_export())
    assert (draft.format, draft.format_detail, draft.name) == ("claude_export", "json", "")
    (conversation,) = draft.history
    assert conversation.title == "Tide tables"
    assert conversation.started_at == 1714640400
    assert [(m.role, m.content, m.at) for m in conversation.messages] == [
        ("user", "When is high tide?", 1714640401),
        ("assistant", "High tide is at 6:12.", 1714640405),
        ("user", "Thanks!", 1714640460),
    ]
    assert "THINKING" not in repr(conversation.messages)
    attachments = conversation.extra["attachments"]
    assert attachments[0] == {
        "message_index": 0,
        "kind": "attachments",
        "file": {"file_name": "tides.txt", "file_size": 12, "file_type": "txt", "extracted_content": "6:12"},
    }
    assert attachments[1]["file"] == {"file_name": "chart.png"}
    assert conversation.extra["uuid"].startswith("5eaf")


def test_claude_export_with_no_text_has_no_usable_messages() -> None:
    with pytest.raises(EmptyPersona) as caught:
        load([make_claude_conversation(chat_messages=[]), make_claude_conversation(chat_messages=None)])
    assert caught.value.code == "no_usable_messages"


def test_claude_wrong_message_type() -> None:
    with pytest.raises(InvalidField) as caught:
        load([make_claude_conversation(chat_messages=["hi"])])
    assert "'[0].chat_messages[0]'" in caught.value.message


def test_empty_list_is_an_export_without_conversations() -> None:
    with pytest.raises(EmptyPersona) as caught:
        load([])
    assert caught.value.code == "no_usable_messages"


def test_other_lists_are_not_a_known_format() -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        load([{"title": "x"}])
    assert caught.value.code == "unknown_format"
