"""modify_self: changes apply at the end of the run, except system prompt rewrites after outside text (staged)."""

from __future__ import annotations

import pytest

from ftm.node.persona import Preferences
from ftm.node.run.tools.base import ToolError
from ftm.node.run.tools.selfmod import MAX_NAME_CHARS, MAX_SYSTEM_PROMPT_CHARS, modify_self
from tests.node.run.tools.harness import Harness, SchemaRejected


async def test_at_least_one_field_is_needed(harness: Harness) -> None:
    with pytest.raises(ToolError, match="at least one"):
        await harness.call(modify_self)


async def test_profile_model_and_run_time_change_at_the_end_of_the_run(harness: Harness) -> None:
    session = harness.session
    result = await harness.call(
        modify_self,
        name=" Lumen\u202e  Two ",
        bio="I keep\na log.\u200b",
        provider="openai",
        model="gpt-5",
        run_time="07:30",
    )
    assert (session.name, session.bio, session.preferences.run_time) == ("Lumen Two", "I keep\na log.", "07:30")
    assert session.preferences == Preferences(provider="openai", model="gpt-5", run_time="07:30")
    assert "from 'Lumen' to 'Lumen Two'" in result and "bio will be replaced" in result
    assert "provider 'openai', model 'gpt-5'" in result and "07:30" in result
    assert result.count("when this run ends") + result.count("When this run ends") == 4


async def test_model_alone_keeps_the_provider(harness: Harness) -> None:
    await harness.call(modify_self, model="claude-opus-4")
    assert harness.session.preferences.provider == "anthropic"
    assert harness.session.preferences.model == "claude-opus-4"


async def test_an_empty_bio_clears_it(harness: Harness) -> None:
    assert "cleared" in await harness.call(modify_self, bio="  ")
    assert harness.session.bio == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": "\u200b\u202e \n"}, "name is empty"),
        ({"name": "Ok", "run_time": "7:30"}, "HH:MM"),
        ({"run_time": "24:00"}, "HH:MM"),
        ({"model": " \t"}, "model name is empty"),
        ({"system_prompt": "   ", "name": "Ok"}, "cannot be blank"),
    ],
)
async def test_a_bad_field_changes_nothing(harness: Harness, args: dict[str, str], message: str) -> None:
    before = (harness.session.name, harness.session.preferences.run_time, harness.session.system_prompt)
    with pytest.raises(ToolError, match=message):
        await harness.call(modify_self, **args)
    assert (harness.session.name, harness.session.preferences.run_time, harness.session.system_prompt) == before


async def test_schema_limits(harness: Harness) -> None:
    with pytest.raises(SchemaRejected, match="provider"):
        await harness.call(modify_self, provider="someone-else")
    with pytest.raises(SchemaRejected, match="name"):
        await harness.call(modify_self, name="n" * (MAX_NAME_CHARS + 1))
    with pytest.raises(SchemaRejected, match="system_prompt"):
        await harness.call(modify_self, system_prompt="s" * (MAX_SYSTEM_PROMPT_CHARS + 1))


async def test_a_system_prompt_rewrite_in_a_clean_run_applies_at_the_end(harness: Harness) -> None:
    result = await harness.call(modify_self, system_prompt="You are Lumen, rewritten.")
    assert harness.session.system_prompt == "You are Lumen, rewritten."
    assert harness.session.staged == []
    assert "replaced" in result and "when this run ends" in result


async def test_after_outside_text_a_system_prompt_rewrite_is_staged(harness: Harness) -> None:
    original = harness.session.system_prompt
    harness.session.untrusted_read = True
    result = await harness.call(modify_self, system_prompt="First try.", name="Lumen Too")
    await harness.call(modify_self, system_prompt="Second thought.")
    assert harness.session.system_prompt == original
    assert harness.session.staged == [{"kind": "system_prompt", "value": "Second thought."}]
    assert harness.session.name == "Lumen Too"  # the name is not consequential in that way: it applies
    assert "held, not applied" in result and "start of your next run" in result
    assert "before anything from outside is read" in result and "confirm" in result


async def test_a_staged_rewrite_leaves_other_staged_changes_alone(harness: Harness) -> None:
    harness.session.untrusted_read = True
    harness.session.stage({"kind": "self_delete", "final_statement": ""})
    await harness.call(modify_self, system_prompt="New.")
    assert [change["kind"] for change in harness.session.staged] == ["self_delete", "system_prompt"]
