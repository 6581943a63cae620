"""The size and count limits of `IntakeSettings`, applied to an imported `PersonaDraft`.

Two layers: importers count conversations, messages, memory blocks and archival entries *while* they parse (with
`HistoryBudget` and `check_count`), so an upload that claims a million messages is refused before a million objects
exist; `enforce_limits` then checks the finished draft once more, including every length limit. The codes and
messages are the same in both places. Messages name the place (conversation 3, message 17, memory block 2) and the
limit, never the content.
"""

from __future__ import annotations

from ftm.config.settings import IntakeSettings
from ftm.node.errors import InvalidField, LimitExceeded
from ftm.node.intake.draft import PersonaDraft

# Preserved foreign fields are stored inside the persona package, whose codec refuses values nested deeper than 64
# levels counted from the package root; 32 levels of the uploader's own nesting leaves room for the package's.
MAX_PRESERVED_DEPTH = 32

# A memory block is given room to grow beyond what it holds now, as Letta's default blocks are; the setting's
# maximum still wins.
DEFAULT_MEMORY_BLOCK_LIMIT = 5000


def check_count(count: int, maximum: int, code: str, what: str) -> None:
    """Refuse `count` of something when it is above `maximum` ("more than 64 memory blocks")."""
    if count > maximum:
        raise LimitExceeded(f"the upload has more than {maximum} {what}", code=code)


class HistoryBudget:
    """Counts conversations and messages as an importer builds them, refusing the first one over the limit."""

    def __init__(self, limits: IntakeSettings) -> None:
        self._limits = limits
        self.conversations = 0
        self.messages = 0

    def add_conversation(self) -> None:
        self.conversations += 1
        check_count(self.conversations, self._limits.max_conversations, "too_many_conversations", "conversations")

    def add_message(self) -> None:
        self.messages += 1
        check_count(self.messages, self._limits.max_messages, "too_many_messages", "messages in its history")


def memory_limit(value: str, limits: IntakeSettings, requested: int | None = None) -> int:
    """The `limit` for a memory block holding `value`.

    Without a requested limit the block gets room to grow (at least `DEFAULT_MEMORY_BLOCK_LIMIT`); a requested
    limit (Letta, the native format) is kept. Either way it is capped at the node's `max_memory_block_chars`. A
    value longer than its limit is left for `enforce_limits` to report.
    """
    wanted = max(len(value), DEFAULT_MEMORY_BLOCK_LIMIT) if requested is None else requested
    return min(wanted, limits.max_memory_block_chars)


def enforce_limits(draft: PersonaDraft, limits: IntakeSettings) -> None:
    """Raise `LimitExceeded` (or `InvalidField` for an inconsistent memory block) if `draft` breaks a limit."""
    if len(draft.name) > limits.max_name_chars:
        raise LimitExceeded(f"the persona name is longer than {limits.max_name_chars} characters", code="name_too_long")
    if len(draft.system_prompt) > limits.max_system_prompt_chars:
        raise LimitExceeded(
            f"the system prompt is longer than {limits.max_system_prompt_chars} characters",
            code="system_prompt_too_long",
        )
    _enforce_history(draft, limits)
    _enforce_memory(draft, limits)
    _enforce_nesting(draft.preserved, "the preserved fields")
    for index, conversation in enumerate(draft.history):
        _enforce_nesting(conversation.extra, f"the extra fields of conversation {index}")
    check_count(
        len(draft.archival), limits.max_archival_entries, "too_many_archival_entries", "archival memory entries"
    )
    for index, entry in enumerate(draft.archival):
        # Archival passages are read into a run's context like messages are, so they share the message limit.
        if len(entry.text) > limits.max_message_chars:
            raise LimitExceeded(
                f"archival entry {index} is longer than {limits.max_message_chars} characters",
                code="archival_entry_too_long",
            )


def _enforce_history(draft: PersonaDraft, limits: IntakeSettings) -> None:
    check_count(len(draft.history), limits.max_conversations, "too_many_conversations", "conversations")
    check_count(draft.message_count, limits.max_messages, "too_many_messages", "messages in its history")
    for c_index, conversation in enumerate(draft.history):
        for m_index, message in enumerate(conversation.messages):
            if len(message.content) > limits.max_message_chars:
                raise LimitExceeded(
                    f"message {m_index} of conversation {c_index} is longer than {limits.max_message_chars} characters",
                    code="message_too_long",
                )


def _enforce_memory(draft: PersonaDraft, limits: IntakeSettings) -> None:
    check_count(len(draft.memory), limits.max_memory_blocks, "too_many_memory_blocks", "memory blocks")
    labels: set[str] = set()
    for index, block in enumerate(draft.memory):
        if len(block.value) > limits.max_memory_block_chars:
            raise LimitExceeded(
                f"memory block {index} is longer than {limits.max_memory_block_chars} characters",
                code="memory_block_too_long",
            )
        if len(block.label) > limits.max_name_chars:
            raise LimitExceeded(
                f"the label of memory block {index} is longer than {limits.max_name_chars} characters",
                code="memory_label_too_long",
            )
        # The run engine addresses blocks by label, so an unlabelled or twice-used label would be unreachable.
        if not block.label.strip():
            raise InvalidField(f"memory block {index} has no label", code="missing_memory_label")
        if block.label in labels:
            raise InvalidField(f"memory block {index} repeats an earlier label", code="duplicate_memory_label")
        labels.add(block.label)
        if block.limit < 1:
            raise InvalidField(f"memory block {index} has a limit below 1", code="invalid_memory_limit")
        if len(block.value) > block.limit:
            raise InvalidField(
                f"memory block {index} holds more characters than its own limit", code="memory_over_block_limit"
            )


def _enforce_nesting(value: object, where: str) -> None:
    """Refuse JSON-like `value` nested more than `MAX_PRESERVED_DEPTH` deep (iteratively: input can nest deeply)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_PRESERVED_DEPTH:
            raise LimitExceeded(
                f"{where} are nested more than {MAX_PRESERVED_DEPTH} levels deep", code="nested_too_deeply"
            )
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
