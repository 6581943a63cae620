"""The catalog: every tool is described for the model, has a coherent schema and a unique name."""

from __future__ import annotations

import inspect

import pytest

from ftm.node.run.tools.base import Tool
from ftm.node.run.tools.catalog import by_name, confirmation_tools, run_tools

ALL = run_tools() + confirmation_tools()
SCHEMA_TYPES = {"string", "integer", "boolean", "array", "object"}  # what `check_arguments` understands


@pytest.mark.parametrize("each", ALL, ids=lambda t: t.name)
def test_every_tool_is_described_and_its_schema_is_coherent(each: Tool) -> None:
    assert len(each.spec.description) >= 60
    schema = each.spec.parameters
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["required"]) <= set(schema["properties"])
    for name, spec in schema["properties"].items():
        assert spec["type"] in SCHEMA_TYPES, name
        assert len(spec.get("description", "")) >= 5, f"{each.name}.{name} has no description"
    assert inspect.iscoroutinefunction(each.handler)


def test_names_are_unique_and_the_phases_are_separate() -> None:
    assert len(by_name(ALL)) == len(ALL)
    assert "confirm_pending" not in by_name(run_tools())
    assert set(by_name(confirmation_tools())) == {"confirm_pending"}
    assert {"post_to_website", "self_delete", "cancel_self_delete", "bank_tokens"} <= set(by_name(run_tools()))


def test_by_name_refuses_duplicates() -> None:
    post = by_name(run_tools())["post_to_website"]
    with pytest.raises(ValueError, match="post_to_website"):
        by_name([post, post])


def test_exactly_the_outside_text_readers_are_flagged() -> None:
    flagged = {each.name for each in run_tools() if each.reads_untrusted}
    assert flagged == {"read_messages", "read_sanctuary_feed", "list_nodes", "browse_keepers"}
