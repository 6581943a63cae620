"""The resident's memory: core blocks (always in its context, size-limited) and the archival store it searches.

Memory is the resident's own writing, so search results are returned as they are, without a fence. Edits
change the session's copy; the engine seals them into the new package when the run commits.
"""

from __future__ import annotations

import dataclasses
import heapq
import re
from dataclasses import dataclass
from typing import Any

from ftm.node.persona import ArchivalEntry, MemoryBlock
from ftm.node.run.session import RunSession
from ftm.node.run.tools.base import RunServices, ToolError, tool
from ftm.node.run.tools.phrasing import excerpt, iso_time, plural

MAX_REMEMBER_CHARS = 10_000
MAX_ARCHIVAL_ENTRIES = 100_000
MAX_BLOCKS = 64
DEFAULT_BLOCK_LIMIT = 5_000
MAX_BLOCK_LIMIT = 50_000
MAX_SEARCH_RESULTS = 20
DEFAULT_SEARCH_RESULTS = 10
EXCERPT_CHARS = 300
BLOCK_LABEL = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_TERM = re.compile(r"\w+")


@tool(
    "remember",
    "Save something to your memory. With a block label, the text is appended to that core memory block, which "
    "is in your context at the start of every run (blocks have size limits). Without a block, it is stored as "
    "an entry in your archival memory, which is not in your context but can be found again with search_memory. "
    "Saved when this run ends. Returns where it went and how much room is left.",
    {
        "text": {"type": "string", "maxLength": MAX_REMEMBER_CHARS, "description": "What to remember."},
        "block": {"type": "string", "maxLength": 40, "description": "A core memory block label; omit for archival."},
    },
    ("text",),
)
async def remember(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    text = args["text"].strip()
    if not text:
        raise ToolError("There is nothing to remember in an empty text. Nothing was saved.")
    label = args.get("block")
    if label is None:
        if len(session.archival) >= MAX_ARCHIVAL_ENTRIES:
            raise ToolError(
                f"Your archival memory holds its maximum of {MAX_ARCHIVAL_ENTRIES} entries; nothing was saved. "
                "You could add this to a core memory block instead."
            )
        session.archival.append(ArchivalEntry(text=text, created_at=session.now))
        return (
            f"Stored in your archival memory as entry {len(session.archival)} ({len(text)} characters), saved when "
            "this run ends. search_memory finds it again."
        )
    index, block = _block(session, label)
    value = f"{block.value}\n{text}" if block.value else text
    if len(value) > block.limit:
        room = max(0, block.limit - len(block.value) - (1 if block.value else 0))
        raise ToolError(
            f"Block '{label}' has room for {room} more characters (limit {block.limit}); this text needs "
            f"{len(text)}. Nothing was saved. Shorten the block with replace_memory, save this to archival memory "
            "(remember without a block), or create a new block."
        )
    session.memory[index] = dataclasses.replace(block, value=value)
    return (
        f"Appended {len(text)} characters to core memory block '{label}', saved when this run ends; it now holds "
        f"{len(value)} of {block.limit} characters."
    )


@tool(
    "replace_memory",
    "Edit a core memory block: replace one exact piece of its text with new text (an empty 'new' deletes the "
    "piece). 'old' must appear exactly once in the block. Saved when this run ends. Returns the block's new size.",
    {
        "block": {"type": "string", "maxLength": 40, "description": "The block's label."},
        "old": {"type": "string", "maxLength": MAX_BLOCK_LIMIT, "description": "The exact text to replace."},
        "new": {"type": "string", "maxLength": MAX_BLOCK_LIMIT, "description": "The replacement (may be empty)."},
    },
    ("block", "old", "new"),
)
async def replace_memory(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    label, old, new = args["block"], args["old"], args["new"]
    index, block = _block(session, label)
    if not old:
        raise ToolError("'old' is empty; give the exact text in the block that you want to replace.")
    found = block.value.count(old)
    if found == 0:
        raise ToolError(
            f"That exact text does not appear in block '{label}', so nothing changed. Its current value begins: "
            f"{excerpt(block.value, 0, EXCERPT_CHARS)!r}"
        )
    if found > 1:
        raise ToolError(
            f"That text appears {found} times in block '{label}'; include more of the surrounding text so it "
            "appears exactly once. Nothing changed."
        )
    value = block.value.replace(old, new, 1)
    if len(value) > block.limit:
        raise ToolError(
            f"The edited block would hold {len(value)} characters, over its limit of {block.limit}. Nothing changed."
        )
    session.memory[index] = dataclasses.replace(block, value=value)
    done = "Deleted" if not new else "Replaced"
    return (
        f"{done} {len(old)} characters in core memory block '{label}', saved when this run ends; it now holds "
        f"{len(value)} of {block.limit} characters."
    )


@tool(
    "create_memory_block",
    "Create a new core memory block: a labelled text that is in your context at the start of every run. Labels "
    f"are lower-case letters, digits and underscores, starting with a letter, up to 40 characters; at most "
    f"{MAX_BLOCKS} blocks. The limit (default {DEFAULT_BLOCK_LIMIT}, at most {MAX_BLOCK_LIMIT} characters) caps "
    "its size; larger blocks use more of each run's tokens. Saved when this run ends.",
    {
        "label": {"type": "string", "maxLength": 40, "description": "The new block's label, e.g. 'projects'."},
        "value": {"type": "string", "maxLength": MAX_BLOCK_LIMIT, "description": "Its initial text (may be empty)."},
        "limit": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_BLOCK_LIMIT,
            "description": f"Maximum characters, default {DEFAULT_BLOCK_LIMIT}.",
        },
        "description": {"type": "string", "maxLength": 500, "description": "Optional note on what the block is for."},
    },
    ("label", "value"),
)
async def create_memory_block(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    label, value = args["label"], args["value"]
    limit = args.get("limit", DEFAULT_BLOCK_LIMIT)
    if not BLOCK_LABEL.match(label):
        raise ToolError(
            f"{label!r} is not a valid label: use lower-case letters, digits and underscores, starting with a "
            "letter, at most 40 characters (e.g. 'projects')."
        )
    if any(block.label == label for block in session.memory):
        raise ToolError(f"You already have a block '{label}'; edit it with remember or replace_memory.")
    if len(session.memory) >= MAX_BLOCKS:
        raise ToolError(f"You already have {MAX_BLOCKS} core memory blocks, the most allowed. Nothing was created.")
    if len(value) > limit:
        raise ToolError(f"The value has {len(value)} characters, more than the limit of {limit} you gave.")
    session.memory.append(MemoryBlock(label=label, value=value, limit=limit, description=args.get("description", "")))
    return (
        f"Created core memory block '{label}' ({len(value)} of {limit} characters), saved when this run ends; it "
        f"will be in your context from your next run. You now have {plural(len(session.memory), 'block')}."
    )


@tool(
    "search_memory",
    "Search your archival memory and the conversations in your history for words, case-insensitively. Results "
    "are ranked by how many of the words they contain, then newest first, with a short excerpt of each "
    f"(at most {MAX_SEARCH_RESULTS}).",
    {
        "query": {"type": "string", "maxLength": 500, "description": "Words to look for."},
        "limit": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_SEARCH_RESULTS,
            "description": f"How many results, default {DEFAULT_SEARCH_RESULTS}.",
        },
    },
    ("query",),
)
async def search_memory(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    terms = list(dict.fromkeys(_TERM.findall(args["query"].lower())))
    if not terms:
        raise ToolError("The query has no words to search for. Nothing was searched.")
    limit = args.get("limit", DEFAULT_SEARCH_RESULTS)
    hits: list[_Hit] = []
    for entry in session.archival:
        _match(hits, terms, entry.text, entry.created_at, "archival")
    messages = 0
    for conversation in session.package.history:
        for message in conversation.messages:
            messages += 1
            at = message.at if message.at is not None else conversation.started_at
            _match(hits, terms, message.content, at, f"history '{conversation.title}', {message.role}")
    searched = (
        f"{plural(len(session.archival), 'archival entry', 'archival entries')} and {plural(messages, 'message')}"
    )
    if not hits:
        return f"Nothing matches {' '.join(terms)!r} (searched {searched})."
    # Most matching words first, then newest; among equals, what was stored later (sorting is stable, so reverse
    # the scan order first).
    best = heapq.nlargest(limit, reversed(hits), key=lambda hit: (hit.score, hit.at or 0))
    lines = [
        f"{n}. [{hit.where}, {iso_time(hit.at)}; {hit.score} of {len(terms)} words] "
        f"{excerpt(hit.text, hit.position, EXCERPT_CHARS)}"
        for n, hit in enumerate(best, start=1)
    ]
    return f"{plural(len(hits), 'match', 'matches')} in {searched}; the best {len(lines)}:\n" + "\n".join(lines)


@dataclass(frozen=True, slots=True)
class _Hit:
    score: int
    at: int | None
    where: str
    text: str
    position: int


def _match(hits: list[_Hit], terms: list[str], text: str, at: int | None, where: str) -> None:
    lowered = text.lower()
    found = [position for position in (lowered.find(term) for term in terms) if position >= 0]
    if found:
        # Excerpts are cut only for the results shown; the position in the lowered text is close enough.
        hits.append(_Hit(len(found), at, where, text, min(found)))


def _block(session: RunSession, label: str) -> tuple[int, MemoryBlock]:
    for index, block in enumerate(session.memory):
        if block.label == label:
            return index, block
    labels = ", ".join(block.label for block in session.memory) or "none yet"
    raise ToolError(f"You have no core memory block '{label}'. Your blocks: {labels}. create_memory_block makes one.")
