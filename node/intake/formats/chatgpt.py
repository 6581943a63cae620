"""ChatGPT data exports: `conversations.json`, a list of conversations each holding a message tree.

Each conversation has `title`, `create_time` and a `mapping` from node id to `{id, message, parent, children}`;
editing a prompt or regenerating a reply forks the tree, and `current_node` is the leaf the user last saw. Only that
live branch is imported: from `current_node` up through `parent` to the root, then reversed, so abandoned edits and
regenerations are left out just as they were left out of the conversation. (Without a usable `current_node`, the
newest child is followed down from the root, which is where ChatGPT puts the latest regeneration.) A parent chain
that loops is refused as `malformed_export`.

Kept: user, assistant and system messages with text (`content_type` "text", or the string parts of
"multimodal_text"). Skipped: tool messages and assistant messages addressed to a tool (`recipient` other than
"all"), messages ChatGPT hides from the conversation (`metadata.is_visually_hidden_from_conversation`, the system
scaffolding), other content types (code, browsing results, reasoning summaries, custom-instruction context) and
empty messages. A conversation's other fields go to its `extra`. The export carries no persona name, so `name` is
"" and the intake request supplies one.
"""

from __future__ import annotations

from typing import Any

from ftm.config.settings import IntakeSettings
from ftm.node.errors import MalformedInput
from ftm.node.intake.draft import PersonaDraft
from ftm.node.intake.formats import fields
from ftm.node.intake.formats.exports import export_draft
from ftm.node.intake.formats.fields import JsonObject
from ftm.node.intake.limits import HistoryBudget
from ftm.node.persona import Conversation, Message

FORMAT = "chatgpt_export"

_ROLES = ("user", "assistant", "system")
_CONVERSATION_FIELDS = frozenset({"title", "create_time", "mapping", "current_node"})


def matches(value: object) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and "mapping" in value[0]


def import_export(value: object, limits: IntakeSettings, *, detail: str = "json") -> PersonaDraft:
    return export_draft(value, limits, format=FORMAT, detail=detail, label="ChatGPT", read=_conversation)


def _conversation(conv: JsonObject, index: int, budget: HistoryBudget) -> Conversation | None:
    path = fields.item("", index)
    mapping = fields.as_object(conv.get("mapping"), fields.child(path, "mapping"))
    messages: list[Message] = []
    for node in _live_branch(mapping, conv.get("current_node"), index):
        raw_message = node.get("message")
        if raw_message is None:
            continue  # the root node has no message
        message_path = f"{path}.mapping.<node>.message"
        message = _message(fields.as_object(raw_message, message_path), message_path)
        if message is not None:
            budget.add_message()
            messages.append(message)
    if not messages:
        return None
    budget.add_conversation()
    return Conversation(
        title=fields.get_str(conv, "title", path),
        source=FORMAT,
        messages=tuple(messages),
        started_at=fields.to_unix(conv.get("create_time")),
        extra=fields.unknown_fields(conv, _CONVERSATION_FIELDS),
    )


def _live_branch(mapping: JsonObject, current: object, index: int) -> list[JsonObject]:
    """The nodes from the root to `current`, in conversation order."""
    node_id: object = current if isinstance(current, str) and current in mapping else _newest_leaf(mapping, index)
    seen: set[str] = set()
    chain: list[JsonObject] = []
    while isinstance(node_id, str) and node_id in mapping:
        if node_id in seen:
            raise MalformedInput(
                f"conversation {index} of the ChatGPT export has a loop in its message tree", code="malformed_export"
            )
        seen.add(node_id)
        node = fields.as_object(mapping[node_id], fields.item("", index) + ".mapping.<node>")
        chain.append(node)
        node_id = node.get("parent")
    chain.reverse()
    return chain


def _newest_leaf(mapping: JsonObject, index: int) -> str | None:
    """Follow the last child from the root; used when `current_node` is missing or unknown."""
    roots = [key for key, node in mapping.items() if isinstance(node, dict) and node.get("parent") is None]
    node_id = roots[0] if roots else None
    seen: set[str] = set()
    while node_id is not None:
        if node_id in seen:
            raise MalformedInput(
                f"conversation {index} of the ChatGPT export has a loop in its message tree", code="malformed_export"
            )
        seen.add(node_id)
        node = mapping.get(node_id)
        children: Any = node.get("children") if isinstance(node, dict) else None
        if not isinstance(children, list) or not children:
            return node_id
        last = children[-1]
        if not isinstance(last, str) or last not in mapping:
            return node_id
        node_id = last
    return None


def _message(msg: JsonObject, path: str) -> Message | None:
    """A message worth keeping, or None for tool traffic, hidden scaffolding and non-text content."""
    author = fields.opt_object(msg, "author", path) or {}
    role = author.get("role")
    if role not in _ROLES:
        return None
    metadata = fields.opt_object(msg, "metadata", path) or {}
    if metadata.get("is_visually_hidden_from_conversation") is True:
        return None
    recipient = msg.get("recipient")
    if role == "assistant" and recipient not in (None, "all"):
        return None  # the assistant calling a tool (browser, code interpreter), not speaking to the user
    content = fields.opt_object(msg, "content", path) or {}
    if content.get("content_type") not in ("text", "multimodal_text"):
        return None
    parts = content.get("parts")
    if not isinstance(parts, list):
        return None
    # Non-string parts are images and files (asset pointers); only the words are imported.
    text = "\n".join(part for part in parts if isinstance(part, str) and part)
    if not text.strip():
        return None
    name = author.get("name")
    return Message(
        role=str(role),
        content=text,
        name=name if isinstance(name, str) else None,
        at=fields.to_unix(msg.get("create_time")),
    )
