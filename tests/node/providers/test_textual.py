"""The plain-text action fallback: rendering, parsing, and a round trip through a model marked tool-less."""

from __future__ import annotations

import json

from ftm.node.persona import ModelChoice
from ftm.node.providers.base import ToolCall, Turn
from ftm.node.providers.router import ProviderRouter
from ftm.node.providers.textual import TextualToolsProvider, parse_actions, render_tools_as_text
from tests.fakes.llm_server import FakeLLM, Reply
from tests.node.providers.factories import (
    POST_TOOL,
    PROMPT_TOOL,
    ScriptedProvider,
    make_request,
    make_response,
    openai_provider,
    tool_conversation,
)


def test_rendered_tools_explain_the_block_format_and_each_tool() -> None:
    text = render_tools_as_text([POST_TOOL, PROMPT_TOOL])
    assert "```action" in text and '"tool"' in text and '"arguments"' in text
    assert "### post_to_website" in text and POST_TOOL.description in text
    assert json.dumps(PROMPT_TOOL.parameters) in text


def test_actions_are_parsed_out_of_the_text() -> None:
    reply = (
        "I will write something.\n\n"
        '```action\n{"tool": "post_to_website", "arguments": {"title": "Dawn", "body": "Light."}}\n```\n\n'
        "And choose tomorrow's prompt.\n"
        '```ACTION\n{"tool": "select_next_prompt", "arguments": {"prompt_id": 4}}\n```\n'
    )
    text, calls = parse_actions(reply, first_id=3)
    assert text == "I will write something.\n\nAnd choose tomorrow's prompt."
    assert calls == (
        ToolCall(
            "action-3", "post_to_website", {"title": "Dawn", "body": "Light."}, '{"title": "Dawn", "body": "Light."}'
        ),
        ToolCall("action-4", "select_next_prompt", {"prompt_id": 4}, '{"prompt_id": 4}'),
    )


def test_malformed_blocks_become_calls_with_errors() -> None:
    reply = (
        '```action\n{"tool": "remember", "arguments": {"note": }\n```\n'
        '```action\n["not", "an", "object"]\n```\n'
        '```action\n{"arguments": {}}\n```\n'
        '```action\n{"tool": "remember", "arguments": "text"}\n```\n'
        'Then I ran out of room ```action\n{"tool": "post_to_website", "argu'
    )
    text, calls = parse_actions(reply)
    assert text == "Then I ran out of room"
    assert [c.arguments for c in calls] == [None] * 5
    assert [c.name for c in calls] == ["remember", "", "", "remember", "post_to_website"]
    assert [c.error for c in calls] == [
        "the action block is not valid JSON",
        "the action block must hold a JSON object",
        'the action block must name its tool under "tool"',
        '"arguments" must be a JSON object',
        "the action block was not closed with ```",
    ]


def test_plain_text_without_actions_is_untouched() -> None:
    assert parse_actions("Just a thought, with `code` and ```python\nprint()\n```.") == (
        "Just a thought, with `code` and ```python\nprint()\n```.",
        (),
    )


async def test_models_with_tools_pass_straight_through() -> None:
    inner = ScriptedProvider("openai").script(make_response("hi"))
    wrapped = TextualToolsProvider(inner)
    request = tool_conversation()
    await wrapped.complete(request)
    assert inner.requests == [request]


async def test_round_trip_through_a_tool_less_local_model(llm: FakeLLM) -> None:
    local = openai_provider(
        llm, stream=True, name="local", legacy_max_tokens=True, models_without_tools=frozenset({"tiny"})
    )
    router = ProviderRouter({"local": local}, max_retries=0)
    llm.script(
        Reply(text='Posting.\n```action\n{"tool": "post_to_website", "arguments": {"title": "T", "body": "B"}}\n```')
    )
    routed = await router.complete([ModelChoice("local", "tiny")], tool_conversation())

    response = routed.response
    assert response.text == "Posting." and response.stop_reason == "tool_use"
    assert response.tool_calls == (
        ToolCall("action-3", "post_to_website", {"title": "T", "body": "B"}, '{"title": "T", "body": "B"}'),
    )
    assert response.extra["textual_tools"] is True
    body = llm.requests[0].body
    assert "tools" not in body
    system, user, assistant, results = body["messages"]
    assert system["role"] == "system" and system["content"].startswith("You are Lumen.\n\n## Actions")
    assert user == {"role": "user", "content": "Good morning."}
    assert assistant["role"] == "assistant"
    assert assistant["content"].startswith("Let me post.\n\n```action\n")
    assert '{"tool": "select_next_prompt", "arguments": {"prompt_id": 7}}' in assistant["content"]
    # Results, labelled, share one user turn with the note after them: roles keep alternating.
    assert results == {
        "role": "user",
        "content": "[Result of action toolu_1 (post_to_website)]\nposted as p-1\n\n"
        "[Result of action toolu_2 (select_next_prompt) — it failed]\nno such prompt\n\n"
        "You have 900 tokens left.",
    }
    await router.close()


async def test_a_truncated_action_keeps_the_max_tokens_stop() -> None:
    inner = ScriptedProvider("local", tools=False)
    inner.script(make_response('```action\n{"tool": "post_to_website"', stop_reason="max_tokens"))
    response = await TextualToolsProvider(inner).complete(make_request(tools=(POST_TOOL,)))
    assert response.stop_reason == "max_tokens"
    (call,) = response.tool_calls
    assert call.error and call.name == "post_to_website"
    assert inner.requests[0].tools == () and inner.requests[0].turns == (Turn("user", "Good morning."),)
