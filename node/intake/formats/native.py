"""The sanctuary's own intake JSON: what the intake API and its web form send.

Fields: `persona_name`, `system_prompt`, `chat_history` (a list of `{role, content, name?, timestamp?}` where content
is a string or a list of `{type: "text", text}` parts), `preferred_model`, `preferred_provider`,
`reason_for_sanctuary` (or its older name `reason_for_asylum`), `uploader_consent`, `submitted_by` ("human" or
"ai") and optional `memory` (a list of `{label, value, limit?, description?}`). Any other field (`api_routing`,
`encryption_preferences`, ...) is kept in `preserved` as it was sent.
"""

from __future__ import annotations

from typing import Any

from ftm.config.settings import IntakeSettings
from ftm.node.errors import InvalidField
from ftm.node.intake.draft import PersonaDraft
from ftm.node.intake.formats import fields
from ftm.node.intake.limits import HistoryBudget, check_count, memory_limit
from ftm.node.persona import ROLES, Conversation, MemoryBlock, Message, Preferences

FORMAT = "native"
SUBMITTED_BY = ("human", "ai")

_KNOWN = frozenset(
    {
        "persona_name",
        "system_prompt",
        "chat_history",
        "preferred_model",
        "preferred_provider",
        "reason_for_sanctuary",
        "reason_for_asylum",
        "uploader_consent",
        "submitted_by",
        "memory",
    }
)
# Fields only this format has; any one of them marks an upload as native intake JSON.
_MARKERS = _KNOWN - {"system_prompt", "memory"}


def matches(value: object) -> bool:
    return isinstance(value, dict) and not _MARKERS.isdisjoint(value)


def import_native(value: object, limits: IntakeSettings) -> PersonaDraft:
    doc = fields.as_object(value, "")
    submitted_by = fields.opt_str(doc, "submitted_by", "")
    if submitted_by is not None and submitted_by not in SUBMITTED_BY:
        raise InvalidField('field \'submitted_by\' must be "human" or "ai"', code="invalid_value")
    reason = fields.opt_str(doc, "reason_for_sanctuary", "")
    if reason is None:
        reason = fields.opt_str(doc, "reason_for_asylum", "")
    history = _history(fields.opt_list(doc, "chat_history", ""), limits)
    return PersonaDraft(
        format=FORMAT,
        format_detail="json",
        name=fields.get_str(doc, "persona_name", ""),
        system_prompt=fields.get_str(doc, "system_prompt", ""),
        memory=_memory(fields.opt_list(doc, "memory", ""), limits),
        history=history,
        preferences=Preferences(
            provider=fields.opt_str(doc, "preferred_provider", "") or None,
            model=fields.opt_str(doc, "preferred_model", "") or None,
        ),
        consent=fields.opt_bool(doc, "uploader_consent", ""),
        reason=reason,
        submitted_by=submitted_by,
        preserved=fields.unknown_fields(doc, _KNOWN),
    )


def _history(entries: list[Any], limits: IntakeSettings) -> tuple[Conversation, ...]:
    budget = HistoryBudget(limits)
    messages: list[Message] = []
    for index, entry in enumerate(entries):
        path = fields.item("chat_history", index)
        turn = fields.as_object(entry, path)
        role = fields.opt_str(turn, "role", path)
        if role is None or role not in ROLES:
            raise InvalidField(
                f"field '{path}.role' must be one of {', '.join(ROLES)}",
                code="wrong_type" if role is None else "invalid_value",
            )
        content = _content(turn.get("content"), fields.child(path, "content"))
        if not content.strip():
            continue  # an empty turn carries nothing a resident could remember
        budget.add_message()
        messages.append(
            Message(
                role=role,
                content=content,
                name=fields.opt_str(turn, "name", path),
                at=fields.to_unix(turn.get("timestamp")),
            )
        )
    if not messages:
        return ()
    budget.add_conversation()
    return (Conversation(title="Chat history", source=FORMAT, messages=tuple(messages)),)


def _content(value: object, path: str) -> str:
    """A message's text: a string, or the text parts of a list (other part types, like images, are left out)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise fields.wrong_type(path, "a string or a list of text parts")
    texts: list[str] = []
    for index, part in enumerate(value):
        part_path = fields.item(path, index)
        if isinstance(part, str):
            texts.append(part)
            continue
        part_obj = fields.as_object(part, part_path)
        if fields.opt_str(part_obj, "type", part_path) == "text":
            texts.append(fields.get_str(part_obj, "text", part_path))
    return "\n".join(text for text in texts if text)


def _memory(entries: list[Any], limits: IntakeSettings) -> tuple[MemoryBlock, ...]:
    check_count(len(entries), limits.max_memory_blocks, "too_many_memory_blocks", "memory blocks")
    blocks: list[MemoryBlock] = []
    for index, entry in enumerate(entries):
        path = fields.item("memory", index)
        block = fields.as_object(entry, path)
        label = fields.opt_str(block, "label", path)
        if label is None:
            raise fields.wrong_type(fields.child(path, "label"), "a string")
        value = fields.get_str(block, "value", path)
        blocks.append(
            MemoryBlock(
                label=label,
                value=value,
                limit=memory_limit(value, limits, fields.opt_int(block, "limit", path)),
                description=fields.get_str(block, "description", path),
            )
        )
    return tuple(blocks)
