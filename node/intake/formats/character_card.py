"""Character cards: V1 (flat), V2 (`spec: "chara_card_v2"`) and V3 (`spec: "chara_card_v3"`), from JSON or PNG.

A card describes a character rather than a conversation, so it maps mostly to memory:

- `system_prompt` is the card's own `system_prompt`, kept raw (macros like `{{char}}` included);
- core memory blocks, each only when the card has text for it: "persona" (description and personality),
  "scenario", "example_dialogue" (`mes_example`) and "instructions" (`post_history_instructions`), each with room to
  grow (`limits.memory_limit`);
- `first_mes` becomes the one assistant message of a "Greeting" conversation; `alternate_greetings` and V3's
  `group_only_greetings` are preserved, not imported as messages, because only one greeting was ever "said";
- `character_book` entries become archival entries (text = `content`, tags = `keys`); the book's other settings and
  each entry's other fields are preserved under `character_book` (without the content, which is not duplicated);
- everything else (`creator_notes`, `tags`, `creator`, `character_version`, `extensions`, V3 `assets`, `nickname`,
  `source`, dates, unknown fields) is preserved as it was.

Which of V1/V2/V3 it is comes from the card's `spec`, not from how it arrived; `detail` says that ("json",
"png/chara", "png/ccv3").
"""

from __future__ import annotations

from typing import Any

from ftm.config.settings import IntakeSettings
from ftm.node.intake.draft import PersonaDraft
from ftm.node.intake.formats import fields
from ftm.node.intake.formats.fields import JsonObject
from ftm.node.intake.limits import HistoryBudget, check_count, memory_limit
from ftm.node.persona import ArchivalEntry, Conversation, MemoryBlock, Message

FORMATS = {"chara_card_v2": "character_card_v2", "chara_card_v3": "character_card_v3"}
FORMAT_V1 = "character_card_v1"

V1_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")
_MAPPED = frozenset({*V1_FIELDS, "system_prompt", "post_history_instructions", "character_book", "alternate_greetings"})
_BLOCK_DESCRIPTIONS = {
    "persona": "Who the character is: the card's description and personality.",
    "scenario": "The situation the character's conversations take place in, from the card.",
    "example_dialogue": "Example dialogue from the card, showing how the character speaks.",
    "instructions": "Instructions the card gives for after the chat history (post-history instructions).",
}


def matches(value: object) -> bool:
    if not isinstance(value, dict):
        return False
    spec = value.get("spec")
    if isinstance(spec, str) and spec in FORMATS:
        return True
    # A V1 card is flat; a name plus any of the fields only cards have is enough to tell.
    return "name" in value and ("first_mes" in value or "mes_example" in value or "personality" in value)


def import_card(value: object, limits: IntakeSettings, *, detail: str = "json") -> PersonaDraft:
    card = fields.as_object(value, "")
    spec = card.get("spec")
    if isinstance(spec, str) and spec in FORMATS:
        data = fields.as_object(card.get("data"), "data")
        path = "data"
        fmt = FORMATS[spec]
        preserved = _top_level_extras(card, data)
    else:
        data, path, fmt, preserved = card, "", FORMAT_V1, {}

    name = fields.get_str(data, "name", path)
    preserved.update(fields.unknown_fields(data, _MAPPED))
    alternates = fields.str_list(data, "alternate_greetings", path)
    if alternates:
        preserved["alternate_greetings"] = list(alternates)
    book_path = fields.child(path, "character_book")
    archival, book = _book(fields.opt_object(data, "character_book", path), book_path, limits)
    if book is not None:
        preserved["character_book"] = book

    return PersonaDraft(
        format=fmt,
        format_detail=detail,
        name=name,
        system_prompt=fields.get_str(data, "system_prompt", path),
        memory=_memory(data, path, limits),
        archival=archival,
        history=_greeting(fields.get_str(data, "first_mes", path), name, fmt, limits),
        preserved=preserved,
    )


def _top_level_extras(card: JsonObject, data: JsonObject) -> JsonObject:
    """Top-level fields of a V2/V3 card besides `spec` and `data`.

    Many tools also write the V1 fields at the top level for old readers; where those just repeat `data` they are
    dropped, as they add nothing.
    """
    extras: JsonObject = {}
    for key, value in card.items():
        # Compared only as strings: equality on deeply nested lists would recurse without bound.
        if key in ("spec", "data") or (key in V1_FIELDS and isinstance(value, str) and value == data.get(key)):
            continue
        extras[key] = value
    return extras


def _memory(data: JsonObject, path: str, limits: IntakeSettings) -> tuple[MemoryBlock, ...]:
    identity = [fields.get_str(data, key, path) for key in ("description", "personality")]
    values = {
        "persona": "\n\n".join(text for text in identity if text.strip()),
        "scenario": fields.get_str(data, "scenario", path),
        "example_dialogue": fields.get_str(data, "mes_example", path),
        "instructions": fields.get_str(data, "post_history_instructions", path),
    }
    return tuple(
        MemoryBlock(
            label=label,
            value=value,
            limit=memory_limit(value, limits),
            description=_BLOCK_DESCRIPTIONS[label],
        )
        for label, value in values.items()
        if value.strip()
    )


def _greeting(first_mes: str, name: str, fmt: str, limits: IntakeSettings) -> tuple[Conversation, ...]:
    if not first_mes.strip():
        return ()
    budget = HistoryBudget(limits)
    budget.add_conversation()
    budget.add_message()
    message = Message(role="assistant", content=first_mes, name=name or None)
    return (Conversation(title="Greeting", source=fmt, messages=(message,)),)


def _book(
    book: JsonObject | None, path: str, limits: IntakeSettings
) -> tuple[tuple[ArchivalEntry, ...], JsonObject | None]:
    """Lorebook entries as archival entries, and the rest of the book (settings, entry metadata) to preserve."""
    if book is None:
        return (), None
    entries: list[ArchivalEntry] = []
    kept_entries: list[Any] = []
    entries_path = fields.child(path, "entries")
    for index, raw in enumerate(fields.opt_list(book, "entries", path)):
        entry_path = fields.item(entries_path, index)
        entry = fields.as_object(raw, entry_path)
        text = fields.get_str(entry, "content", entry_path)
        keys = fields.str_list(entry, "keys", entry_path)
        kept_entries.append(fields.unknown_fields(entry, {"content"}))
        if text.strip():
            entries.append(ArchivalEntry(text=text, tags=keys))
            check_count(
                len(entries), limits.max_archival_entries, "too_many_archival_entries", "archival memory entries"
            )
    kept = fields.unknown_fields(book, {"entries"})
    kept["entries"] = kept_entries
    return tuple(entries), kept
