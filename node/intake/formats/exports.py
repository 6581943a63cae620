"""What the ChatGPT and Claude data exports share: a list of conversations turned into a nameless draft."""

from __future__ import annotations

from collections.abc import Callable

from ftm.config.settings import IntakeSettings
from ftm.node.errors import EmptyPersona
from ftm.node.intake.draft import PersonaDraft
from ftm.node.intake.formats import fields
from ftm.node.intake.formats.fields import JsonObject
from ftm.node.intake.limits import HistoryBudget
from ftm.node.persona import Conversation

ConversationReader = Callable[[JsonObject, int, HistoryBudget], Conversation | None]


def export_draft(
    value: object, limits: IntakeSettings, *, format: str, detail: str, label: str, read: ConversationReader
) -> PersonaDraft:
    """Every conversation `read` can use; an export with none is refused. Exports carry no persona name."""
    budget = HistoryBudget(limits)
    history: list[Conversation] = []
    for index, raw in enumerate(fields.as_list(value, "")):
        conversation = read(fields.as_object(raw, fields.item("", index)), index, budget)
        if conversation is not None:
            history.append(conversation)
    if not history:
        raise EmptyPersona(f"the {label} export has no messages with text", code="no_usable_messages")
    return PersonaDraft(format=format, format_detail=detail, name="", system_prompt="", history=tuple(history))
