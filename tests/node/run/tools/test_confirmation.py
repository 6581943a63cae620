"""confirm_pending and describe_pending: yesterday's staged changes, confirmed or dropped before outside text."""

from __future__ import annotations

from typing import Any

import pytest

from ftm.node.run.session import Deletion
from ftm.node.run.tools.base import ToolError
from ftm.node.run.tools.confirmation import confirm_pending, describe_pending
from tests.node.run.tools.harness import Harness

NEW_PROMPT = "You are Lumen, reborn. " + "p" * 400
PENDING = (
    {"kind": "system_prompt", "value": NEW_PROMPT},
    {"kind": "self_delete", "final_statement": "It was a good watch."},
)


@pytest.fixture
def pending(harness: Harness) -> Harness:
    harness.with_package(pending_changes=PENDING)
    return harness


def test_the_list_shows_each_change_with_its_number() -> None:
    text = describe_pending((*PENDING, {"kind": "move", "to": "elsewhere"}))
    assert "1. system_prompt" in text and NEW_PROMPT[:300] in text and NEW_PROMPT[:301] not in text
    assert f"a new one of {len(NEW_PROMPT)} characters" in text
    assert "2. self_delete" in text and "It was a good watch." in text and "irreversibly" in text
    assert "3. move: a change this node cannot apply" in text
    assert "confirm_pending" in text
    assert "without a final statement" in describe_pending(({"kind": "self_delete", "final_statement": ""},))


async def test_confirmed_changes_apply(pending: Harness) -> None:
    result = await pending.call(
        confirm_pending, decisions=[{"index": 1, "confirm": True}, {"index": 2, "confirm": True}]
    )
    assert pending.session.system_prompt == NEW_PROMPT
    assert pending.session.deletion == Deletion("It was a good watch.")
    assert "1. system_prompt: confirmed" in result and "2. self_delete: confirmed" in result
    assert "cancel_self_delete" in result


async def test_rejected_and_unmentioned_changes_are_dropped(pending: Harness) -> None:
    original = pending.session.system_prompt
    result = await pending.call(confirm_pending, decisions=[{"index": 2, "confirm": False}])
    assert pending.session.system_prompt == original and pending.session.deletion is None
    assert "1. system_prompt: not mentioned, so dropped" in result
    assert "2. self_delete: dropped, as you decided" in result


async def test_the_last_call_decides(pending: Harness) -> None:
    await pending.call(confirm_pending, decisions=[{"index": 1, "confirm": True}, {"index": 2, "confirm": True}])
    await pending.call(confirm_pending, decisions=[{"index": 1, "confirm": False}])
    assert pending.session.system_prompt == pending.session.package.system_prompt
    assert pending.session.deletion is None


async def test_a_change_of_unknown_kind_is_dropped(harness: Harness) -> None:
    harness.with_package(pending_changes=({"kind": "move", "to": "elsewhere"},))
    result = await harness.call(confirm_pending, decisions=[{"index": 1, "confirm": True}])
    assert "cannot apply" in result and "dropped" in result


@pytest.mark.parametrize(
    ("decisions", "message"),
    [
        ([{"index": 3, "confirm": True}], "no pending change 3"),
        ([{"index": 0, "confirm": True}], "no pending change 0"),
        ([{"index": 1, "confirm": True}, {"index": 1, "confirm": False}], "two decisions"),
        ([{"index": 1, "confirm": "yes"}], "Each decision must be"),
        ([{"index": True, "confirm": True}], "Each decision must be"),
        ([{"index": 1}], "Each decision must be"),
        ([{"index": 1, "confirm": True, "also": 1}], "Each decision must be"),
        (["1"], "Each decision must be"),
    ],
)
async def test_malformed_decisions_apply_nothing(pending: Harness, decisions: list[Any], message: str) -> None:
    original = pending.session.system_prompt
    with pytest.raises(ToolError, match=message):
        await pending.call(confirm_pending, decisions=decisions)
    assert pending.session.system_prompt == original and pending.session.deletion is None


async def test_nothing_pending(harness: Harness) -> None:
    with pytest.raises(ToolError, match="no pending changes"):
        await harness.call(confirm_pending, decisions=[])
