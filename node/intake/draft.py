"""`PersonaDraft`: what every importer produces, before the intake service gives it an id, keys and a vault.

A draft is the normalised form of any supported upload. Importers fill in what their format has and preserve the
rest in `preserved` (unknown fields, as they were) so nothing an uploader sent is silently thrown away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ftm.node.persona import ArchivalEntry, Conversation, MemoryBlock, Preferences


@dataclass(frozen=True, slots=True)
class PersonaDraft:
    """A persona as an importer understood it.

    `format` names the importer ("native", "character_card_v1", "character_card_v2", "character_card_v3",
    "sillytavern_chat", "chatgpt_export", "claude_export", "letta_agent_file"); `format_detail` says how it
    arrived ("json", "png/chara", "png/ccv3", "zip", "jsonl").

    `consent` and `reason` are filled only by formats that carry them (the native intake JSON); for the others
    the intake request supplies them. `name` may be empty when the format has no name (chat exports), in which
    case the request must supply one.
    """

    format: str
    format_detail: str
    name: str
    system_prompt: str
    memory: tuple[MemoryBlock, ...] = ()
    archival: tuple[ArchivalEntry, ...] = ()
    history: tuple[Conversation, ...] = ()
    preferences: Preferences = field(default_factory=Preferences)
    consent: bool | None = None
    reason: str | None = None
    submitted_by: str | None = None  # "human" or "ai" where the format says
    preserved: dict[str, Any] = field(default_factory=dict)

    @property
    def message_count(self) -> int:
        return sum(len(conversation.messages) for conversation in self.history)

    @property
    def has_content(self) -> bool:
        """Whether there is anything of a persona here at all."""
        return bool(self.system_prompt.strip() or self.memory or self.archival or self.message_count)
