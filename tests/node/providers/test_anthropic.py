"""The Anthropic provider against the fake server: translation both ways, streaming and not, usage, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ftm.node.providers.anthropic import AnthropicProvider
from ftm.node.providers.base import ProviderRefused, ProviderUnavailable, ToolCall, Turn
from tests.fakes.llm_server import (
    FakeLLM,
    FakeToolCall,
    Fault,
    Reply,
    drop_connection,
    drop_mid_stream,
    hang,
    http_error,
    stream_error,
)
from tests.node.providers.factories import ANTHROPIC_MODEL, anthropic_provider, make_request, tool_conversation


@pytest.fixture(params=[True, False], ids=["stream", "json"])
async def provider(request: pytest.FixtureRequest, llm: FakeLLM) -> AsyncIterator[AnthropicProvider]:
    made = anthropic_provider(llm, stream=request.param, timeout=1.0)
    yield made
    await made.close()


async def test_text_reply_with_provider_usage(llm: FakeLLM, provider: AnthropicProvider) -> None:
    llm.script(Reply(text="The lamp turned all night, and I kept count.", input_tokens=321, output_tokens=45))
    response = await provider.complete(make_request())
    assert response.text == "The lamp turned all night, and I kept count."
    assert (response.usage.input_tokens, response.usage.output_tokens) == (321, 45)
    assert (response.stop_reason, response.raw_stop_reason, response.tool_calls) == ("end", "end_turn", ())
    assert response.model == ANTHROPIC_MODEL
    (sent,) = llm.requests
    assert sent.headers["Authorization"] == "Bearer sk-ant-test"
    assert sent.body["system"] == "You are Lumen."
    assert sent.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Good morning."}]}]
    assert sent.body["max_tokens"] == 256 and "tools" not in sent.body


async def test_tool_calls_in_both_directions(llm: FakeLLM, provider: AnthropicProvider) -> None:
    llm.script(
        Reply(
            text="Posting now.",
            tool_calls=(
                FakeToolCall("post_to_website", {"title": "Dawn", "body": "Light on the water."}, id="toolu_9"),
                FakeToolCall("select_next_prompt", {"prompt_id": 12}, id="toolu_10"),
            ),
        )
    )
    response = await provider.complete(tool_conversation())

    assert response.stop_reason == "tool_use" and response.text == "Posting now."
    assert response.tool_calls == (
        ToolCall(
            "toolu_9",
            "post_to_website",
            {"title": "Dawn", "body": "Light on the water."},
            '{"title": "Dawn", "body": "Light on the water."}',
        ),
        ToolCall("toolu_10", "select_next_prompt", {"prompt_id": 12}, '{"prompt_id": 12}'),
    )
    body = llm.requests[0].body
    assert [tool["name"] for tool in body["tools"]] == ["post_to_website", "select_next_prompt"]
    assert body["tools"][0]["input_schema"]["required"] == ["title", "body"]
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me post."},
            {"type": "tool_use", "id": "toolu_1", "name": "post_to_website", "input": {"title": "Hi", "body": "Hello"}},
            {"type": "tool_use", "id": "toolu_2", "name": "select_next_prompt", "input": {"prompt_id": 7}},
        ],
    }
    # Both results and the note after them share one user turn, results first.
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "posted as p-1"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "no such prompt", "is_error": True},
            {"type": "text", "text": "You have 900 tokens left."},
        ],
    }
    assert len(body["messages"]) == 3


async def test_malformed_tool_input_is_reported_not_raised(llm: FakeLLM, provider: AnthropicProvider) -> None:
    # Streamed, a broken JSON fragment; as JSON, an input that is not an object.
    llm.script(
        Reply(
            tool_calls=(
                FakeToolCall("remember", '{"note": "unfinished', id="toolu_bad"),
                FakeToolCall("remember", "[1, 2]", id="toolu_list"),
                FakeToolCall("remember", {"note": "fine"}, id="toolu_ok"),
            )
        )
    )
    response = await provider.complete(make_request())
    bad, listed, ok = response.tool_calls
    assert bad.arguments is None and bad.error and bad.name == "remember"
    assert listed.arguments is None and listed.error == "tool input must be a JSON object, got list"
    assert ok.arguments == {"note": "fine"} and ok.error is None


async def test_stop_reasons_are_mapped(llm: FakeLLM, provider: AnthropicProvider) -> None:
    llm.script(Reply(text="cut", stop="max_tokens"), Reply(text="done", wire_stop="stop_sequence"))
    assert (await provider.complete(make_request())).stop_reason == "max_tokens"
    assert (await provider.complete(make_request())).stop_reason == "end"


async def test_foreign_tool_ids_are_made_safe(llm: FakeLLM, provider: AnthropicProvider) -> None:
    llm.script(Reply(text="ok"))
    turns = (
        Turn("user", "hi"),
        Turn("assistant", "", tool_calls=(ToolCall("call.7:x", "remember", {}),)),
        Turn("tool", "done", tool_call_id="call.7:x"),
    )
    await provider.complete(make_request(turns=turns))
    messages = llm.requests[0].body["messages"]
    assert messages[1]["content"][0]["id"] == messages[2]["content"][0]["tool_use_id"] == "call_7_x"


@pytest.mark.parametrize(
    ("fault", "expected", "status"),
    [
        (http_error(429), ProviderUnavailable, 429),
        (http_error(500), ProviderUnavailable, 500),
        (http_error(529), ProviderUnavailable, 529),
        (http_error(401), ProviderRefused, 401),
        (http_error(404), ProviderRefused, 404),
        (http_error(400), ProviderRefused, 400),
        (hang(10), ProviderUnavailable, None),
        (drop_connection(), ProviderUnavailable, None),
        (drop_mid_stream(), ProviderUnavailable, None),
    ],
    ids=["429", "500", "529", "401", "404", "400", "hang", "drop", "drop-mid-stream"],
)
async def test_failures_are_mapped(
    llm: FakeLLM, provider: AnthropicProvider, fault: Fault, expected: type[Exception], status: int | None
) -> None:
    llm.script(fault)
    with pytest.raises(expected) as caught:
        await provider.complete(make_request())
    assert type(caught.value) is expected
    assert caught.value.status == status  # type: ignore[attr-defined]
    assert str(caught.value).startswith(f"anthropic {ANTHROPIC_MODEL}")


async def test_error_event_inside_a_stream_is_an_outage(llm: FakeLLM) -> None:
    provider = anthropic_provider(llm, stream=True)
    llm.script(stream_error())
    with pytest.raises(ProviderUnavailable, match="overloaded_error"):
        await provider.complete(make_request())
    await provider.close()
