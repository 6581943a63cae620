"""remember, replace_memory, create_memory_block and search_memory: the resident's own memory, edited in the session."""

from __future__ import annotations

import pytest

from ftm.node.persona import ArchivalEntry, Conversation, MemoryBlock, Message
from ftm.node.run.tools.base import ToolError
from ftm.node.run.tools.memory import (
    DEFAULT_BLOCK_LIMIT,
    MAX_ARCHIVAL_ENTRIES,
    MAX_BLOCKS,
    create_memory_block,
    remember,
    replace_memory,
    search_memory,
)
from tests.node.run.tools.harness import Harness, SchemaRejected


def block(harness: Harness, label: str) -> MemoryBlock:
    return next(b for b in harness.session.memory if b.label == label)


async def test_remember_without_a_block_goes_to_archival(harness: Harness) -> None:
    before = len(harness.session.archival)
    result = await harness.call(remember, text="  The fog horn sounds at dawn.  ")
    assert harness.session.archival[-1] == ArchivalEntry("The fog horn sounds at dawn.", created_at=harness.session.now)
    assert len(harness.session.archival) == before + 1
    assert "archival memory" in result and "search_memory" in result


async def test_remember_with_a_block_appends_to_it(harness: Harness) -> None:
    old = block(harness, "persona").value
    result = await harness.call(remember, text="I like storms.", block="persona")
    assert block(harness, "persona").value == old + "\nI like storms."
    assert f"now holds {len(old) + 15} of 2000" in result


async def test_remember_refuses_to_overflow_a_block_and_says_how_much_room_is_left(harness: Harness) -> None:
    old = block(harness, "persona").value
    room = 2000 - len(old) - 1
    with pytest.raises(ToolError, match=f"room for {room} more characters"):
        await harness.call(remember, text="x" * (room + 1), block="persona")
    assert block(harness, "persona").value == old
    await harness.call(remember, text="x" * room, block="persona")
    assert len(block(harness, "persona").value) == 2000


async def test_remember_into_an_empty_block_adds_no_line_break(harness: Harness) -> None:
    await harness.call(create_memory_block, label="notes", value="")
    await harness.call(remember, text="first", block="notes")
    assert block(harness, "notes").value == "first"


async def test_an_unknown_block_lists_the_labels(harness: Harness) -> None:
    with pytest.raises(ToolError, match=r"no core memory block 'diary'\. Your blocks: persona"):
        await harness.call(remember, text="x", block="diary")


async def test_remember_refuses_empty_text(harness: Harness) -> None:
    with pytest.raises(ToolError, match="nothing to remember"):
        await harness.call(remember, text=" ")


async def test_archival_memory_is_capped(harness: Harness) -> None:
    harness.session.archival = [ArchivalEntry("x")] * MAX_ARCHIVAL_ENTRIES
    with pytest.raises(ToolError, match="maximum of 100000 entries"):
        await harness.call(remember, text="one more")
    assert len(harness.session.archival) == MAX_ARCHIVAL_ENTRIES


async def test_remember_text_is_limited(harness: Harness) -> None:
    with pytest.raises(SchemaRejected, match="text"):
        await harness.call(remember, text="x" * 10_001)


async def test_replace_memory_replaces_and_deletes(harness: Harness) -> None:
    await harness.call(create_memory_block, label="notes", value="red boat, blue door", limit=100)
    result = await harness.call(replace_memory, block="notes", old="red", new="green")
    assert block(harness, "notes").value == "green boat, blue door" and "Replaced 3 characters" in result
    result = await harness.call(replace_memory, block="notes", old=", blue door", new="")
    assert block(harness, "notes").value == "green boat" and "Deleted" in result


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("purple", "x", "does not appear"),
        ("o", "x", "appears 3 times"),
        ("", "x", "'old' is empty"),
        ("boat", "b" * 100, "over its limit of 30"),
    ],
)
async def test_replace_memory_refuses_what_it_cannot_do_exactly(
    harness: Harness, old: str, new: str, message: str
) -> None:
    await harness.call(create_memory_block, label="notes", value="red boat, blue door", limit=30)
    with pytest.raises(ToolError, match=message):
        await harness.call(replace_memory, block="notes", old=old, new=new)
    assert block(harness, "notes").value == "red boat, blue door"


async def test_replace_memory_in_an_unknown_block(harness: Harness) -> None:
    with pytest.raises(ToolError, match="no core memory block 'nope'"):
        await harness.call(replace_memory, block="nope", old="a", new="b")


async def test_create_memory_block(harness: Harness) -> None:
    result = await harness.call(create_memory_block, label="projects", value="a tide table", description="work")
    assert block(harness, "projects") == MemoryBlock("projects", "a tide table", DEFAULT_BLOCK_LIMIT, "work")
    assert "Created core memory block 'projects'" in result and "2 blocks" in result


@pytest.mark.parametrize("label", ["Projects", "1st", "with space", "dash-ed", "_x", ""])
async def test_create_memory_block_checks_the_label(harness: Harness, label: str) -> None:
    with pytest.raises(ToolError, match="not a valid label"):
        await harness.call(create_memory_block, label=label, value="")


async def test_labels_are_at_most_40_characters(harness: Harness) -> None:
    await harness.call(create_memory_block, label="a" * 40, value="")
    with pytest.raises(SchemaRejected, match="longer than 40"):
        await harness.call(create_memory_block, label="a" * 41, value="")


async def test_create_memory_block_refuses_duplicates_too_many_and_oversize(harness: Harness) -> None:
    with pytest.raises(ToolError, match="already have a block 'persona'"):
        await harness.call(create_memory_block, label="persona", value="")
    with pytest.raises(ToolError, match="more than the limit of 10"):
        await harness.call(create_memory_block, label="small", value="x" * 11, limit=10)
    with pytest.raises(SchemaRejected, match="at most 50000"):
        await harness.call(create_memory_block, label="huge", value="", limit=50_001)
    for n in range(MAX_BLOCKS - 1):
        await harness.call(create_memory_block, label=f"b{n}", value="")
    with pytest.raises(ToolError, match="already have 64"):
        await harness.call(create_memory_block, label="one_more", value="")


async def test_search_ranks_by_matching_words_then_recency(harness: Harness) -> None:
    harness.session.archival = [
        ArchivalEntry("the storm came in", created_at=100),
        ArchivalEntry("a storm and a lighthouse", created_at=50),
        ArchivalEntry("another storm", created_at=300),
        ArchivalEntry("nothing relevant", created_at=400),
    ]
    result = await harness.call(search_memory, query="Storm LIGHTHOUSE storm")
    lines = result.splitlines()
    # The imported history also mentions the lighthouse; both-word matches come first.
    assert "2 of 2 words" in lines[1] and "a storm and a lighthouse" in lines[1]
    single = [line for line in lines[1:] if "1 of 2 words" in line]
    assert "another storm" in single[0] and "the storm came in" in single[1]
    assert "nothing relevant" not in result
    assert "4 archival entries and 2 messages" in result


async def test_search_covers_history_with_short_excerpts(harness: Harness) -> None:
    long = "word " * 200 + "needle in the middle " + "word " * 200
    harness.with_package(history=(Conversation("Old chat", "run", (Message("assistant", long, at=5),)),))
    result = await harness.call(search_memory, query="needle", limit=1)
    line = result.splitlines()[1]
    assert "history 'Old chat', assistant, 1970-01-01T00:00:05Z" in line and "needle in the middle" in line
    assert len(line.split("] ", 1)[1]) <= 310 and line.split("] ", 1)[1].startswith("…")


async def test_search_returns_at_most_the_limit(harness: Harness) -> None:
    harness.session.archival = [ArchivalEntry(f"tide {n}", created_at=n) for n in range(30)]
    result = await harness.call(search_memory, query="tide")
    assert "30 matches" in result and "the best 10" in result and "tide 29" in result.splitlines()[1]
    assert "the best 20" in await harness.call(search_memory, query="tide", limit=20)
    with pytest.raises(SchemaRejected, match="at most 20"):
        await harness.call(search_memory, query="tide", limit=21)


async def test_search_without_matches_or_words(harness: Harness) -> None:
    assert "Nothing matches 'zebra'" in await harness.call(search_memory, query="zebra")
    with pytest.raises(ToolError, match="no words"):
        await harness.call(search_memory, query=" ?! ")
