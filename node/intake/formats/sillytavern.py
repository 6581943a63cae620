"""SillyTavern chat files (`.jsonl`): one JSON object per line.

The first line is the chat's metadata (`user_name`, `character_name`, `create_date`, `chat_metadata`); each line
after it is one message (`name`, `is_user`, `is_system`, `send_date`, `mes`, `swipes`, `swipe_id`, `extra`).
A file whose first line is already a message (older exports) is read as messages only.

Mapping: `is_user` lines become role "user", other lines role "assistant", each with the speaker's `name`; the
persona's name is the metadata's `character_name`. `mes` is the chosen reply; the other `swipes` are alternatives
the user passed over, so like ChatGPT's abandoned branches they are not imported. Per-message `extra` (generation
settings, token counts) is not kept. The metadata line's other fields go to the conversation's `extra`.

`is_system` lines are skipped, not imported as role "system": SillyTavern sets the flag both on its own notices and
on messages the user hid from the character with /hide, and in both cases the character never saw them. The number
skipped is recorded in the conversation's `extra`.
"""

from __future__ import annotations

from typing import Any

from ftm.config.settings import IntakeSettings
from ftm.node.errors import EmptyPersona, MalformedInput
from ftm.node.intake.draft import PersonaDraft
from ftm.node.intake.formats import fields
from ftm.node.intake.formats.fields import JsonObject
from ftm.node.intake.formats.jsontext import parse_json
from ftm.node.intake.limits import HistoryBudget
from ftm.node.persona import Conversation, Message

FORMAT = "sillytavern_chat"

_METADATA_KEYS = frozenset({"user_name", "character_name", "create_date", "chat_metadata"})
_MESSAGE_KEYS = frozenset({"mes", "is_user"})
# SillyTavern's own date styles, besides ISO-8601 and unix milliseconds which `fields.to_unix` reads.
_DATE_FORMATS = (
    "%B %d, %Y %I:%M%p",  # "January 5, 2024 3:04pm" (send_date)
    "%B %d, %Y %I:%M %p",
    "%Y-%m-%d@%Hh%Mm%Ss",  # "2024-1-5@15h04m09s" (create_date)
    "%Y-%m-%d @%Hh %Mm %Ss %fms",  # "2024-1-5 @15h 04m 09s 123ms"
)


def first_line_matches(value: object) -> bool:
    """Whether a parsed first line looks like a SillyTavern chat's metadata or first message."""
    return isinstance(value, dict) and (not _METADATA_KEYS.isdisjoint(value) or _MESSAGE_KEYS.issubset(value))


def import_chat(text: str, limits: IntakeSettings) -> PersonaDraft:
    lines = _parse_lines(text)
    if not lines:
        raise EmptyPersona("the chat file has no lines", code="no_usable_messages")
    number, first = lines[0]
    if _METADATA_KEYS.isdisjoint(first) and _MESSAGE_KEYS.issubset(first):
        metadata: JsonObject = {}
        message_lines = lines
    else:
        metadata = first
        message_lines = lines[1:]
    meta_path = f"line {number}"
    character = fields.get_str(metadata, "character_name", meta_path)
    started_at = _time(metadata.get("create_date"))

    budget = HistoryBudget(limits)
    messages: list[Message] = []
    skipped = 0
    for number, line in message_lines:
        path = f"line {number}"
        if fields.opt_bool(line, "is_system", path):
            skipped += 1
            continue
        content = fields.get_str(line, "mes", path)
        if not content.strip():
            continue
        budget.add_message()
        messages.append(
            Message(
                role="user" if fields.opt_bool(line, "is_user", path) else "assistant",
                content=content,
                name=fields.opt_str(line, "name", path),
                at=_time(line.get("send_date")),
            )
        )
    if not messages:
        raise EmptyPersona("the chat has no messages with text", code="no_usable_messages")
    budget.add_conversation()
    extra = fields.unknown_fields(metadata, {"character_name", "create_date"})
    if skipped:
        extra["skipped_system_messages"] = skipped
    conversation = Conversation(
        title="SillyTavern chat", source=FORMAT, messages=tuple(messages), started_at=started_at, extra=extra
    )
    return PersonaDraft(format=FORMAT, format_detail="jsonl", name=character, system_prompt="", history=(conversation,))


def _parse_lines(text: str) -> list[tuple[int, JsonObject]]:
    """(1-based line number, object) for every non-blank line; anything else is `malformed_jsonl`."""
    parsed: list[tuple[int, JsonObject]] = []
    # Split on "\n" only: str.splitlines would also split inside JSON strings holding U+2028 and friends.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        value: Any = parse_json(line, f"line {number}", code="malformed_jsonl")
        if not isinstance(value, dict):
            raise MalformedInput(f"line {number} is not a JSON object", code="malformed_jsonl")
        parsed.append((number, value))
    return parsed


def _time(value: object) -> int | None:
    if isinstance(value, str):
        text = value.strip()
        at = fields.to_unix(text)
        return at if at is not None else fields.from_datetime_text(text, *_DATE_FORMATS)
    return fields.to_unix(value)
