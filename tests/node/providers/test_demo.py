"""The offline demo provider: post, then select a prompt, then end; deterministic; labelled; offline."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from ftm.node.providers.base import ChatRequest, ChatResponse, ToolSpec, Turn
from ftm.node.providers.demo import DEMO_LABEL, DemoProvider
from tests.node.providers.factories import POST_TOOL, PROMPT_TOOL, make_request

REMEMBER_TOOL = ToolSpec("remember", "Keep a note.", {"type": "object", "properties": {"note": {"type": "string"}}})


async def run_conversation(provider: DemoProvider, tools: tuple[ToolSpec, ...]) -> list[ChatResponse]:
    """Drive the provider as the run engine would: answer each tool call until it ends (at most 5 steps)."""
    request = make_request(model="offline", tools=tools)
    responses = []
    for _ in range(5):
        response = await provider.complete(request)
        responses.append(response)
        if response.stop_reason == "end":
            break
        results = tuple(Turn("tool", "done", tool_call_id=call.id) for call in response.tool_calls)
        request = _extend(request, Turn("assistant", response.text, tool_calls=response.tool_calls), *results)
    return responses


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the demo provider touched the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.usefixtures("no_network")
async def test_posts_then_selects_a_prompt_then_ends() -> None:
    post, select, end = await run_conversation(DemoProvider(seed=7), (REMEMBER_TOOL, POST_TOOL, PROMPT_TOOL))

    (post_call,) = post.tool_calls
    assert post.stop_reason == "tool_use" and post_call.name == "post_to_website"
    assert post_call.arguments is not None and set(post_call.arguments) == {"title", "body"}
    assert post_call.arguments["body"].endswith(DEMO_LABEL)
    assert "offline demo provider" in DEMO_LABEL and "not a language model" in DEMO_LABEL

    (select_call,) = select.tool_calls
    assert select_call.name == "select_next_prompt" and select_call.arguments is not None
    assert 1 <= select_call.arguments["prompt_id"] <= 100

    assert end.stop_reason == "end" and end.tool_calls == () and DEMO_LABEL in end.text
    assert all(r.extra == {"usage": "estimated", "offline_demo": True} for r in (post, select, end))
    assert post.usage.input_tokens > 40 and post.usage.output_tokens > 10


async def test_deterministic_for_a_seed() -> None:
    tools = (POST_TOOL, PROMPT_TOOL)
    first = await run_conversation(DemoProvider(seed=1), tools)
    again = await run_conversation(DemoProvider(seed=1), tools)
    assert first == again
    posts = set()
    for seed in range(12):
        (response, *_) = await run_conversation(DemoProvider(seed=seed), tools)
        posts.add(response.tool_calls[0].raw_arguments)
    assert len(posts) > 1  # the seed matters


async def test_follows_the_schema_it_is_given() -> None:
    post_tool = ToolSpec(
        "post_to_website",
        "Post.",
        {
            "type": "object",
            "properties": {
                "headline": {"type": "string"},
                "markdown": {"type": "string"},
                "draft": {"type": "boolean"},
                "tags": {"type": "array"},
            },
            "required": ["headline", "markdown", "draft"],
        },
    )
    prompt_tool = ToolSpec(
        "select_next_prompt",
        "Pick.",
        {
            "type": "object",
            "properties": {"choice": {"type": "string", "enum": ["p-3", "p-9"]}},
            "required": ["choice"],
        },
    )
    post, select, _ = await run_conversation(DemoProvider(), (post_tool, prompt_tool))
    assert post.tool_calls[0].arguments is not None
    assert set(post.tool_calls[0].arguments) == {"headline", "markdown", "draft"}
    assert post.tool_calls[0].arguments["draft"] is False
    assert select.tool_calls[0].arguments in ({"choice": "p-3"}, {"choice": "p-9"})


async def test_without_tools_it_just_answers() -> None:
    (only,) = await run_conversation(DemoProvider(), ())
    assert only.stop_reason == "end" and DEMO_LABEL in only.text


def _extend(request: ChatRequest, *turns: Turn) -> ChatRequest:
    return ChatRequest(request.model, request.system, request.turns + turns, request.tools, request.max_tokens)
