"""No conversation content in any log record or exception message, whatever happens to a request.

A canary is planted in the system text, every turn, tool arguments and the errors the fake server sends back (as
real providers sometimes quote the request). Every log record at DEBUG, including the SDKs' and the server's,
and every exception message is searched for it.
"""

from __future__ import annotations

import logging

import pytest

from ftm.node.persona import ModelChoice
from ftm.node.providers.base import ChatRequest, Provider, ProviderError, ToolCall, Turn
from ftm.node.providers.router import ProviderRouter
from tests.factories import CANARY
from tests.fakes.llm_server import (
    FakeLLM,
    FakeToolCall,
    Reply,
    drop_mid_stream,
    hang,
    http_error,
    stream_error,
)
from tests.node.providers.factories import POST_TOOL, FakeSleep, anthropic_provider, make_request, openai_provider

SCRIPT = (
    Reply(
        text=f"reply {CANARY}",
        tool_calls=(
            FakeToolCall("remember", f'{{"note": "{CANARY}', id="t1"),
            FakeToolCall("remember", f'["{CANARY}"]', id="t2"),
        ),
    ),
    http_error(400, f"messages.0.content: bad value {CANARY}"),
    http_error(500, f"failed on {CANARY}"),
    stream_error(f"overloaded while reading {CANARY}"),
    drop_mid_stream(),
    hang(10),
)


def secret_request(model: str) -> ChatRequest:
    turns = (
        Turn("user", f"Do you remember the lighthouse? {CANARY}-history"),
        Turn("assistant", f"I do. {CANARY}-reply", tool_calls=(ToolCall("t0", "remember", {"note": CANARY}),)),
        Turn("tool", f"saved {CANARY}-result", tool_call_id="t0", is_error=True),
    )
    return make_request(model=model, system=f"You are Lumen. {CANARY}-prompt", turns=turns, tools=(POST_TOOL,))


def assert_clean(caplog: pytest.LogCaptureFixture, errors: list[BaseException]) -> None:
    assert caplog.records, "expected some log records to search"
    for record in caplog.records:
        assert CANARY not in record.getMessage(), record.name
        assert CANARY not in (caplog.text or "")
    for error in errors:
        assert CANARY not in str(error) and CANARY not in repr(error) and CANARY not in repr(error.args)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("api", ["anthropic", "openai"])
async def test_no_content_in_logs_or_errors(
    llm: FakeLLM, caplog: pytest.LogCaptureFixture, api: str, stream: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    provider: Provider
    if api == "anthropic":
        provider = anthropic_provider(llm, stream=stream, timeout=0.3)
    else:
        provider = openai_provider(llm, stream=stream, timeout=0.3)
    llm.script(*SCRIPT)
    errors: list[BaseException] = []
    for _ in SCRIPT:
        try:
            response = await provider.complete(secret_request("claude-sonnet-4-6"))
        except ProviderError as exc:
            errors.append(exc)
            continue
        errors += [ValueError(call.error) for call in response.tool_calls if call.error]
        assert all(call.error for call in response.tool_calls)
    await provider.close()
    assert len(errors) >= len(SCRIPT) - 1
    assert_clean(caplog, errors)


async def test_router_failures_and_textual_fallback_keep_content_out(
    llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    local = openai_provider(llm, stream=True, name="local", models_without_tools=frozenset({"tiny"}))
    router = ProviderRouter(
        {"anthropic": anthropic_provider(llm, stream=False), "local": local}, max_retries=1, sleep=FakeSleep()
    )
    llm.script(http_error(500, CANARY), http_error(401, CANARY), api="anthropic")
    llm.script(
        http_error(503, CANARY), Reply(text=f'```action\n{{"tool": "x", "arguments": "{CANARY}"}}\n```'), api="openai"
    )
    routed = await router.complete(
        [ModelChoice("anthropic", "claude-sonnet-4-6"), ModelChoice("local", "tiny")], secret_request("m")
    )
    (call,) = routed.response.tool_calls
    errors: list[BaseException] = [ValueError(call.error)]
    llm.script(http_error(503, CANARY), http_error(503, CANARY), api="openai")
    with pytest.raises(ProviderError) as caught:
        await router.complete([ModelChoice("local", "tiny"), ModelChoice("nowhere", "m")], secret_request("m"))
    errors.append(caught.value)
    await router.close()
    assert_clean(caplog, errors)
