from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ftm.config.settings import IntakeSettings
from ftm.node.errors import InvalidField, LimitExceeded
from ftm.node.intake.draft import PersonaDraft
from ftm.node.intake.importing import import_upload
from ftm.node.intake.limits import enforce_limits, memory_limit
from ftm.node.persona import ArchivalEntry, Conversation, MemoryBlock, Message
from tests.node.intake.samples import CANARY, make_card_v2, make_native, make_upload


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def limits(**overrides: int) -> IntakeSettings:
    return dataclasses.replace(IntakeSettings(), **overrides)


def draft(**fields: Any) -> PersonaDraft:
    base: dict[str, Any] = {"format": "native", "format_detail": "json", "name": "A", "system_prompt": "p"}
    base.update(fields)
    return PersonaDraft(**base)


def conversation(*contents: str) -> Conversation:
    return Conversation(title="t", source="native", messages=tuple(Message("user", text) for text in contents))


def block(label: str, value: str = "v", limit: int = 100) -> MemoryBlock:
    return MemoryBlock(label=label, value=value, limit=limit)


@pytest.mark.parametrize(
    ("candidate", "settings", "code"),
    [
        (draft(name=CANARY * 10), limits(max_name_chars=20), "name_too_long"),
        (draft(system_prompt=CANARY * 10), limits(max_system_prompt_chars=20), "system_prompt_too_long"),
        (draft(history=(conversation("a"), conversation("b"))), limits(max_conversations=1), "too_many_conversations"),
        (draft(history=(conversation("a", "b"), conversation("c"))), limits(max_messages=2), "too_many_messages"),
        (draft(history=(conversation("ok", CANARY * 10),)), limits(max_message_chars=20), "message_too_long"),
        (draft(memory=(block("a"), block("b"))), limits(max_memory_blocks=1), "too_many_memory_blocks"),
        (draft(memory=(block("a", CANARY * 10, 1000),)), limits(max_memory_block_chars=20), "memory_block_too_long"),
        (
            draft(archival=(ArchivalEntry("a"), ArchivalEntry("b"))),
            limits(max_archival_entries=1),
            "too_many_archival_entries",
        ),
        (draft(archival=(ArchivalEntry(CANARY * 10),)), limits(max_message_chars=20), "archival_entry_too_long"),
        (draft(preserved={"deep": _nested(40)}), limits(), "nested_too_deeply"),
        (
            draft(history=(Conversation("t", "native", (Message("user", "x"),), extra={"d": _nested(40)}),)),
            limits(),
            "nested_too_deeply",
        ),
    ],
)
def test_every_limit(candidate: PersonaDraft, settings: IntakeSettings, code: str) -> None:
    with pytest.raises(LimitExceeded) as caught:
        enforce_limits(candidate, settings)
    assert caught.value.code == code
    assert CANARY not in caught.value.message


@pytest.mark.parametrize(
    ("memory", "code"),
    [
        ((block(" "),), "missing_memory_label"),
        ((block("a"), block("a")), "duplicate_memory_label"),
        ((block("a", "v", 0),), "invalid_memory_limit"),
        ((block("a", "vvvv", 2),), "memory_over_block_limit"),
    ],
)
def test_inconsistent_memory_blocks(memory: tuple[MemoryBlock, ...], code: str) -> None:
    with pytest.raises(InvalidField) as caught:
        enforce_limits(draft(memory=memory), IntakeSettings())
    assert caught.value.code == code


def test_a_draft_within_limits_passes() -> None:
    enforce_limits(draft(memory=(block("a"),), history=(conversation("hello"),)), IntakeSettings())


def test_memory_limit_defaults_and_caps() -> None:
    settings = limits(max_memory_block_chars=8000)
    assert memory_limit("x" * 10, settings) == 5000
    assert memory_limit("x" * 6000, settings) == 6000
    assert memory_limit("x" * 9000, settings) == 8000
    assert memory_limit("x", settings, requested=100_000) == 8000
    assert memory_limit("x", settings, requested=50) == 50


def test_limits_apply_through_import_upload() -> None:
    with pytest.raises(LimitExceeded) as caught:
        import_upload(make_upload(make_native(persona_name="n" * 101)), IntakeSettings())
    assert caught.value.code == "name_too_long"
    with pytest.raises(LimitExceeded) as caught:
        import_upload(make_upload(make_card_v2(description="d" * 60_000)), IntakeSettings())
    assert caught.value.code == "memory_block_too_long"
