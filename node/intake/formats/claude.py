"""Claude data exports: `conversations.json`, a list of conversations with their messages in order.

Each conversation is `{uuid, name, created_at, updated_at, chat_messages}`; each message is `{uuid, text, content,
sender, created_at, attachments, files}` with `sender` "human" (imported as role "user") or "assistant". A message's
text is the `text` parts of `content` (thinking, tool use and tool results are left out); older exports without
`content` use the flat `text`. Attachments (`file_name`, `file_type`, `file_size`, `extracted_content`) and file
names are kept in the conversation's `extra` under "attachments", with the index of the message they belong to,
because a `Message` has no place for them. Empty messages are skipped. The export carries no persona name, so
`name` is "" and the intake request supplies one.
"""

from __future__ import annotations

from typing import Any

from ftm.config.settings import IntakeSettings
from ftm.node.intake.draft import PersonaDraft
from ftm.node.intake.formats import fields
from ftm.node.intake.formats.exports import export_draft
from ftm.node.intake.formats.fields import JsonObject
from ftm.node.intake.limits import HistoryBudget
from ftm.node.persona import Conversation, Message

FORMAT = "claude_export"

_SENDERS = {"human": "user", "assistant": "assistant"}
_CONVERSATION_FIELDS = frozenset({"name", "created_at", "chat_messages"})


def matches(value: object) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and "chat_messages" in value[0]


def import_export(value: object, limits: IntakeSettings, *, detail: str = "json") -> PersonaDraft:
    return export_draft(value, limits, format=FORMAT, detail=detail, label="Claude", read=_conversation)


def _conversation(conv: JsonObject, index: int, budget: HistoryBudget) -> Conversation | None:
    path = fields.item("", index)
    messages: list[Message] = []
    attachments: list[Any] = []
    messages_path = fields.child(path, "chat_messages")
    for m_index, raw in enumerate(fields.opt_list(conv, "chat_messages", path)):
        m_path = fields.item(messages_path, m_index)
        msg = fields.as_object(raw, m_path)
        sender = msg.get("sender")
        role = _SENDERS.get(sender) if isinstance(sender, str) else None
        if role is None:
            continue
        text = _text(msg, m_path)
        if not text.strip():
            continue
        budget.add_message()
        for key in ("attachments", "files"):
            for attached in fields.opt_list(msg, key, m_path):
                attachments.append({"message_index": len(messages), "kind": key, "file": attached})
        messages.append(Message(role=role, content=text, at=fields.to_unix(msg.get("created_at"))))
    if not messages:
        return None
    budget.add_conversation()
    extra = fields.unknown_fields(conv, _CONVERSATION_FIELDS)
    if attachments:
        extra["attachments"] = attachments
    return Conversation(
        title=fields.get_str(conv, "name", path),
        source=FORMAT,
        messages=tuple(messages),
        started_at=fields.to_unix(conv.get("created_at")),
        extra=extra,
    )


def _text(msg: JsonObject, path: str) -> str:
    parts = fields.opt_list(msg, "content", path)
    if not parts:
        return fields.get_str(msg, "text", path)
    texts: list[str] = []
    for index, raw in enumerate(parts):
        part = fields.as_object(raw, fields.item(fields.child(path, "content"), index))
        if part.get("type") == "text":
            texts.append(fields.get_str(part, "text", fields.item(fields.child(path, "content"), index)))
    joined = "\n\n".join(text for text in texts if text)
    # Only thinking or tool parts: the flat `text`, where present, is what the conversation showed.
    return joined or fields.get_str(msg, "text", path)
