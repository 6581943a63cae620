from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from ftm.config.settings import IntakeSettings
from ftm.node.errors import EmptyPersona, InvalidField, LimitExceeded
from ftm.node.intake.draft import PersonaDraft
from ftm.node.intake.importing import import_upload
from ftm.node.persona import MemoryBlock, Preferences
from tests.node.intake.samples import CANARY, make_letta_af, make_letta_legacy_af, make_upload

SPOKEN = [
    ("assistant", "Hello, I'm Sam."),
    ("user", "Hi Sam!"),
    ("user", "Do you like sailing?"),
    ("assistant", "I love it."),
]


def load(value: Any, limits: IntakeSettings | None = None) -> PersonaDraft:
    return import_upload(make_upload(value, filename="sam.af"), limits or IntakeSettings())


def test_current_schema_agent_file() -> None:
    draft = load(make_letta_af())
    assert (draft.format, draft.format_detail, draft.name) == ("letta_agent_file", "json", "Sam")
    assert draft.system_prompt == "You are Sam, a curious and empathetic companion."
    assert draft.memory == (
        MemoryBlock(
            label="persona",
            value="I am Sam. I'm curious and empathetic.",
            limit=20000,
            description="The persona block.",
        ),
        MemoryBlock(label="human", value="First name: Chad. Likes sailing.", limit=20000),
    )
    assert draft.preferences == Preferences(provider="openai", model="gpt-4o-mini")
    (conversation,) = draft.history
    assert [(m.role, m.content) for m in conversation.messages] == SPOKEN
    assert "INNER THOUGHT" not in repr(draft)
    assert "RENDERED SYSTEM PROMPT" not in repr(draft)
    preserved = draft.preserved
    assert preserved["tools"] == ["roll_dice", "send_message"]
    assert preserved["mcp_servers"] == ["notes"]
    assert preserved["other_agents"] == [{"id": "agent-1", "name": "Sam-sleeptime"}]
    assert preserved["blocks"][0] == {"id": "block-0", "read_only": False, "metadata": {}, "label": "persona"}
    assert preserved["agent"]["llm_config"]["context_window"] == 32000
    assert preserved["agent"]["tool_exec_environment_variables"] == ["WEATHER_API_KEY"]
    assert preserved["agent"]["secrets"] == ["GITHUB_TOKEN"]
    assert preserved["metadata"] == {"revision_id": "b1c2d3e4f5a6"}
    # The companion agent's prompt and blocks are not imported.
    assert "SLEEPTIME AGENT PROMPT" not in repr(draft)
    assert "COMPANION BLOCK" not in repr(draft)
    json.dumps(preserved)


@pytest.mark.parametrize("factory", [make_letta_af, make_letta_legacy_af])
def test_tool_code_and_secrets_never_reach_the_draft(factory: Any) -> None:
    doc = factory()
    doc["unexpected"] = {"nested": [{"source_code": CANARY, "json_schema": {"x": CANARY}}]}
    draft = load(doc)
    assert CANARY not in repr(draft)
    # The current schema keeps unknown top-level fields at the top; the older one keeps them with the agent.
    kept = draft.preserved.get("unexpected") or draft.preserved["agent"]["unexpected"]
    assert kept == {"nested": [{}]}


def test_legacy_single_agent_file() -> None:
    draft = load(make_letta_legacy_af())
    assert draft.format == "letta_agent_file"
    assert [(block.label, block.value, block.limit) for block in draft.memory] == [
        ("persona", "I am Sam.", 5000),
        ("human", "Chad likes sailing.", 5000),
    ]
    assert draft.memory[1].description == "About the human."
    assert draft.preferences == Preferences(provider="anthropic", model="claude-3-5-sonnet-20241022")
    assert [(m.role, m.content) for m in draft.history[0].messages] == SPOKEN
    assert draft.preserved["tools"] == ["roll_dice"]
    assert draft.preserved["agent"]["tool_exec_environment_variables"] == ["WEATHER_API_KEY"]
    assert draft.preserved["agent"]["version"] == "0.6.7"


def test_model_handle_is_used_without_llm_config() -> None:
    draft = load(make_letta_af(llm_config=None, model="anthropic/claude-sonnet-4"))
    assert draft.preferences == Preferences(provider="anthropic", model="claude-sonnet-4")


def test_dangling_block_reference() -> None:
    with pytest.raises(InvalidField) as caught:
        load(make_letta_af(block_ids=["block-0", "block-missing"]))
    assert caught.value.code == "dangling_reference"
    assert "agents[0].block_ids[1]" in caught.value.message


def test_no_agents() -> None:
    doc = make_letta_af()
    doc["agents"] = []
    with pytest.raises(EmptyPersona) as caught:
        load(doc)
    assert caught.value.code == "no_agents"


def test_too_many_blocks_stops_early() -> None:
    limits = dataclasses.replace(IntakeSettings(), max_memory_blocks=1)
    with pytest.raises(LimitExceeded) as caught:
        load(make_letta_af(), limits)
    assert caught.value.code == "too_many_memory_blocks"


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"system": 3}, "agents[0].system"),
        ({"messages": {}}, "agents[0].messages"),
        ({"messages": [3]}, "agents[0].messages[0]"),
        ({"block_ids": "block-0"}, "agents[0].block_ids"),
        ({"llm_config": {"model": 4}}, "agents[0].llm_config.model"),
    ],
)
def test_wrong_types_name_the_field(overrides: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidField) as caught:
        load(make_letta_af(**overrides))
    assert caught.value.code == "wrong_type"
    assert f"'{path}'" in caught.value.message
