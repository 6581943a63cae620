"""The fake LLM server's replies pass each SDK's strict response validation, so tests against it are honest."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.fakes.llm_server import FakeLLM, FakeToolCall, Reply, http_error
from tests.node.providers.factories import ANTHROPIC_MODEL, OPENAI_MODEL

REPLY = Reply(
    text="A reply long enough to be split into several fragments.",
    tool_calls=(FakeToolCall("remember", {"note": "the lamp", "weight": [1, 2]}),),
)


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_wire_format_passes_strict_validation(llm: FakeLLM, stream: bool) -> None:
    client = anthropic.AsyncAnthropic(
        api_key="k", base_url=llm.anthropic_url, max_retries=0, _strict_response_validation=True
    )
    llm.script(REPLY)
    try:
        if stream:
            async with client.messages.stream(
                model=ANTHROPIC_MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
            ) as events:
                message = await events.get_final_message()
        else:
            message = await client.messages.create(
                model=ANTHROPIC_MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        await client.close()
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[1].type == "tool_use" and message.content[1].input == {"note": "the lamp", "weight": [1, 2]}
    assert (message.stop_reason, message.usage.input_tokens, message.usage.output_tokens) == ("tool_use", 12, 7)


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_wire_format_passes_strict_validation(llm: FakeLLM, stream: bool) -> None:
    client = openai.AsyncOpenAI(api_key="k", base_url=llm.openai_url, max_retries=0, _strict_response_validation=True)
    llm.script(REPLY)
    try:
        if stream:
            chunks = await client.chat.completions.create(
                model=OPENAI_MODEL,
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            async with chunks:
                received = [chunk async for chunk in chunks]
            assert received[-1].usage is not None and received[-1].usage.prompt_tokens == 12
            assert "".join(c.choices[0].delta.content or "" for c in received if c.choices) == REPLY.text
        else:
            completion = await client.chat.completions.create(
                model=OPENAI_MODEL, messages=[{"role": "user", "content": "hi"}]
            )
            assert completion.choices[0].finish_reason == "tool_calls"
            assert completion.usage is not None and completion.usage.completion_tokens == 7
    finally:
        await client.close()


async def test_errors_have_each_providers_shape(llm: FakeLLM) -> None:
    llm.script(http_error(429), api="anthropic")
    llm.script(http_error(401), api="openai")
    ant = anthropic.AsyncAnthropic(api_key="k", base_url=llm.anthropic_url, max_retries=0)
    oai = openai.AsyncOpenAI(api_key="k", base_url=llm.openai_url, max_retries=0)
    try:
        with pytest.raises(anthropic.RateLimitError) as ant_error:
            await ant.messages.create(model=ANTHROPIC_MODEL, max_tokens=8, messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.AuthenticationError) as oai_error:
            await oai.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "x"}])
    finally:
        await ant.close()
        await oai.close()
    assert ant_error.value.type == "rate_limit_error"
    assert oai_error.value.code == "invalid_api_key"


async def test_requests_are_recorded_with_headers_and_body(llm: FakeLLM) -> None:
    llm.script(Reply(text="hi"))
    client = anthropic.AsyncAnthropic(api_key="sk-secret", base_url=llm.anthropic_url, max_retries=0)
    try:
        await client.messages.create(model=ANTHROPIC_MODEL, max_tokens=8, messages=[{"role": "user", "content": "x"}])
    finally:
        await client.close()
    (recorded,) = llm.requests
    assert recorded.api == "anthropic" and recorded.path == "/v1/messages" and not recorded.streamed
    assert recorded.headers["Authorization"] == "Bearer sk-secret"
    assert recorded.body["messages"] == [{"role": "user", "content": "x"}]
    assert llm.pending == 0
