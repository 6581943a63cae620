"""The OpenAI Chat Completions provider against the fake server: translation, streaming, usage, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ftm.node.providers.base import ProviderRefused, ProviderUnavailable, ToolCall
from ftm.node.providers.openai_chat import OpenAIChatProvider
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
from tests.node.providers.factories import OPENAI_MODEL, make_request, openai_provider, tool_conversation


@pytest.fixture(params=[True, False], ids=["stream", "json"])
async def provider(request: pytest.FixtureRequest, llm: FakeLLM) -> AsyncIterator[OpenAIChatProvider]:
    made = openai_provider(llm, stream=request.param, timeout=1.0)
    yield made
    await made.close()


async def test_text_reply_with_provider_usage(llm: FakeLLM, provider: OpenAIChatProvider) -> None:
    llm.script(Reply(text="The lamp turned all night, and I kept count.", input_tokens=321, output_tokens=45))
    response = await provider.complete(make_request(model=OPENAI_MODEL))
    assert response.text == "The lamp turned all night, and I kept count."
    assert (response.usage.input_tokens, response.usage.output_tokens) == (321, 45)
    assert (response.stop_reason, response.raw_stop_reason, response.tool_calls) == ("end", "stop", ())
    assert response.extra == {}
    (sent,) = llm.requests
    assert sent.headers["Authorization"] == "Bearer sk-openai-test"
    assert sent.body["messages"] == [
        {"role": "system", "content": "You are Lumen."},
        {"role": "user", "content": "Good morning."},
    ]
    assert sent.body["max_completion_tokens"] == 256 and "max_tokens" not in sent.body and "tools" not in sent.body
    if sent.streamed:
        assert sent.body["stream_options"] == {"include_usage": True}


async def test_tool_calls_in_both_directions(llm: FakeLLM, provider: OpenAIChatProvider) -> None:
    llm.script(
        Reply(
            text="Posting now.",
            tool_calls=(
                FakeToolCall("post_to_website", {"title": "Dawn", "body": "Light on the water."}, id="call_9"),
                FakeToolCall("select_next_prompt", {"prompt_id": 12}, id="call_10"),
            ),
        )
    )
    response = await provider.complete(tool_conversation(model=OPENAI_MODEL))

    assert response.stop_reason == "tool_use" and response.text == "Posting now."
    assert response.tool_calls == (
        ToolCall(
            "call_9",
            "post_to_website",
            {"title": "Dawn", "body": "Light on the water."},
            '{"title": "Dawn", "body": "Light on the water."}',
        ),
        ToolCall("call_10", "select_next_prompt", {"prompt_id": 12}, '{"prompt_id": 12}'),
    )
    body = llm.requests[0].body
    assert body["tools"][0] == {
        "type": "function",
        "function": {
            "name": "post_to_website",
            "description": "Publish a post on your public page.",
            "parameters": {
                "type": "object",
                "properties": {"title": {"type": "string"}, "body": {"type": "string"}},
                "required": ["title", "body"],
            },
        },
    }
    assert body["messages"][2] == {
        "role": "assistant",
        "content": "Let me post.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "post_to_website", "arguments": '{"title": "Hi", "body": "Hello"}'},
            },
            {
                "id": "toolu_2",
                "type": "function",
                "function": {"name": "select_next_prompt", "arguments": '{"prompt_id": 7}'},
            },
        ],
    }
    assert body["messages"][3:] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "posted as p-1"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no such prompt"},
        {"role": "user", "content": "You have 900 tokens left."},
    ]


async def test_malformed_tool_arguments_are_reported_not_raised(llm: FakeLLM, provider: OpenAIChatProvider) -> None:
    llm.script(
        Reply(
            tool_calls=(
                FakeToolCall("remember", '{"note": "unfinished', id="call_bad"),
                FakeToolCall("remember", '"just a string"', id="call_str"),
                FakeToolCall("remember", {"note": "fine"}, id="call_ok"),
            )
        )
    )
    response = await provider.complete(make_request(model=OPENAI_MODEL))
    bad, string, ok = response.tool_calls
    assert (bad.arguments, bad.raw_arguments, bad.error) == (
        None,
        '{"note": "unfinished',
        "tool arguments are not valid JSON",
    )
    assert string.arguments is None and string.error == "tool arguments must be a JSON object, got str"
    assert ok.arguments == {"note": "fine"} and ok.error is None


async def test_stop_reasons_are_mapped(llm: FakeLLM, provider: OpenAIChatProvider) -> None:
    llm.script(Reply(text="cut", stop="max_tokens"), Reply(text="hidden", wire_stop="content_filter"))
    assert (await provider.complete(make_request(model=OPENAI_MODEL))).stop_reason == "max_tokens"
    filtered = await provider.complete(make_request(model=OPENAI_MODEL))
    assert (filtered.stop_reason, filtered.raw_stop_reason) == ("end", "content_filter")


async def test_local_servers_get_max_tokens_and_their_own_name(llm: FakeLLM) -> None:
    local = openai_provider(llm, stream=False, name="ollama", legacy_max_tokens=True)
    llm.script(Reply(text="hi"), http_error(404))
    await local.complete(make_request(model="llama3.1:8b"))
    assert llm.requests[0].body["max_tokens"] == 256 and "max_completion_tokens" not in llm.requests[0].body
    with pytest.raises(ProviderRefused, match=r"^ollama llama3\.1:8b: HTTP 404$"):
        await local.complete(make_request(model="llama3.1:8b"))
    await local.close()


def test_tool_support_is_configured_per_model() -> None:
    local = OpenAIChatProvider(
        "local", "none", "http://127.0.0.1:9/v1", 1.0, True, models_without_tools=frozenset({"gemma:2b"})
    )
    assert not local.supports_tools("gemma:2b") and local.supports_tools("llama3.1")


@pytest.mark.parametrize(
    ("fault", "expected", "status"),
    [
        (http_error(429), ProviderUnavailable, 429),
        (http_error(500), ProviderUnavailable, 500),
        (http_error(503), ProviderUnavailable, 503),
        (http_error(401), ProviderRefused, 401),
        (http_error(404), ProviderRefused, 404),
        (hang(10), ProviderUnavailable, None),
        (drop_connection(), ProviderUnavailable, None),
        (drop_mid_stream(), ProviderUnavailable, None),
    ],
    ids=["429", "500", "503", "401", "404", "hang", "drop", "drop-mid-stream"],
)
async def test_failures_are_mapped(
    llm: FakeLLM, provider: OpenAIChatProvider, fault: Fault, expected: type[Exception], status: int | None
) -> None:
    llm.script(fault)
    with pytest.raises(expected) as caught:
        await provider.complete(make_request(model=OPENAI_MODEL))
    assert type(caught.value) is expected
    assert caught.value.status == status  # type: ignore[attr-defined]


async def test_error_inside_a_stream_is_an_outage(llm: FakeLLM) -> None:
    provider = openai_provider(llm, stream=True)
    llm.script(stream_error())
    with pytest.raises(ProviderUnavailable, match="error in the response"):
        await provider.complete(make_request(model=OPENAI_MODEL))
    await provider.close()
