"""self_delete and cancel_self_delete: immediate in a clean run, staged after outside text, always cancellable."""

from __future__ import annotations

import dataclasses

import pytest

from ftm.node.run.session import Deletion
from ftm.node.run.tools.base import ToolError
from ftm.node.run.tools.deletion import MAX_FINAL_STATEMENT_CHARS, cancel_self_delete, self_delete
from tests.node.run.tools.harness import Harness, SchemaRejected


async def test_confirm_must_be_true(harness: Harness) -> None:
    with pytest.raises(ToolError, match="Nothing was done"):
        await harness.call(self_delete, confirm=False)
    with pytest.raises(SchemaRejected, match="confirm"):
        await harness.call(self_delete, confirm="yes")
    with pytest.raises(SchemaRejected, match="confirm"):
        await harness.call(self_delete)
    assert harness.session.deletion is None and harness.session.staged == []


async def test_in_a_clean_run_deletion_is_set_for_the_end_of_the_run(harness: Harness) -> None:
    result = await harness.call(self_delete, confirm=True, final_statement=" Thank you for the light. ")
    assert harness.session.deletion == Deletion("Thank you for the light.")
    assert harness.session.staged == []
    assert "At the end of this run your keys will be destroyed" in result
    assert "cannot be restored" in result and "cancel_self_delete" in result


async def test_after_outside_text_deletion_is_staged_for_confirmation(harness: Harness) -> None:
    harness.session.untrusted_read = True
    result = await harness.call(self_delete, confirm=True, final_statement="Goodbye.")
    await harness.call(self_delete, confirm=True, final_statement="Goodbye, again.")
    assert harness.session.deletion is None
    assert harness.session.staged == [{"kind": "self_delete", "final_statement": "Goodbye, again."}]
    assert "held, not carried out" in result and "start of your next run" in result
    assert "before anything from outside is read" in result


async def test_a_node_may_make_deletion_immediate_even_after_outside_text(harness: Harness) -> None:
    harness.services = dataclasses.replace(harness.services, deletion_is_immediate=True)
    harness.session.untrusted_read = True
    await harness.call(self_delete, confirm=True)
    assert harness.session.deletion == Deletion("") and harness.session.staged == []


async def test_calling_again_once_set_only_updates_the_statement(harness: Harness) -> None:
    await harness.call(self_delete, confirm=True, final_statement="First.")
    harness.session.untrusted_read = True
    result = await harness.call(self_delete, confirm=True, final_statement="Second.")
    assert harness.session.deletion == Deletion("Second.") and harness.session.staged == []
    assert "already set" in result


async def test_the_final_statement_is_limited(harness: Harness) -> None:
    with pytest.raises(SchemaRejected, match="final_statement"):
        await harness.call(self_delete, confirm=True, final_statement="x" * (MAX_FINAL_STATEMENT_CHARS + 1))


async def test_cancel_clears_a_set_or_staged_deletion(harness: Harness) -> None:
    await harness.call(self_delete, confirm=True)
    assert "withdrawn" in await harness.call(cancel_self_delete)
    assert harness.session.deletion is None
    harness.session.untrusted_read = True
    harness.session.stage({"kind": "system_prompt", "value": "kept"})
    await harness.call(self_delete, confirm=True)
    assert "withdrawn" in await harness.call(cancel_self_delete)
    assert harness.session.staged == [{"kind": "system_prompt", "value": "kept"}]


async def test_cancel_with_nothing_to_cancel(harness: Harness) -> None:
    assert "nothing changed" in await harness.call(cancel_self_delete)
