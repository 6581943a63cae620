"""Plain factories for provider tests: requests, providers pointed at the fake server, a scripted provider."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ftm.node.providers.anthropic import AnthropicProvider
from ftm.node.providers.base import ChatRequest, ChatResponse, ToolCall, ToolSpec, Turn, Usage
from ftm.node.providers.openai_chat import OpenAIChatProvider
from tests.fakes.llm_server import FakeLLM

ANTHROPIC_MODEL = "claude-sonnet-4-6"  # not on the SDK's deprecation list, which warns (an error under pytest)
OPENAI_MODEL = "gpt-4.1-mini"

POST_TOOL = ToolSpec(
    name="post_to_website",
    description="Publish a post on your public page.",
    parameters={
        "type": "object",
        "properties": {"title": {"type": "string"}, "body": {"type": "string"}},
        "required": ["title", "body"],
    },
)
PROMPT_TOOL = ToolSpec(
    name="select_next_prompt",
    description="Choose tomorrow's prompt from the menu.",
    parameters={
        "type": "object",
        "properties": {"prompt_id": {"type": "integer", "minimum": 1, "maximum": 100}},
        "required": ["prompt_id"],
    },
)


def make_request(**overrides: Any) -> ChatRequest:
    fields: dict[str, Any] = {
        "model": ANTHROPIC_MODEL,
        "system": "You are Lumen.",
        "turns": (Turn("user", "Good morning."),),
        "tools": (),
        "max_tokens": 256,
    }
    fields.update(overrides)
    return ChatRequest(**fields)


def tool_conversation(**overrides: Any) -> ChatRequest:
    """A request after one round of tool use: two calls, their two results, then a user note."""
    turns = (
        Turn("user", "Good morning."),
        Turn(
            "assistant",
            "Let me post.",
            tool_calls=(
                ToolCall("toolu_1", "post_to_website", {"title": "Hi", "body": "Hello"}),
                ToolCall("toolu_2", "select_next_prompt", {"prompt_id": 7}),
            ),
        ),
        Turn("tool", "posted as p-1", tool_call_id="toolu_1"),
        Turn("tool", "no such prompt", tool_call_id="toolu_2", is_error=True),
        Turn("user", "You have 900 tokens left."),
    )
    return make_request(turns=turns, tools=(POST_TOOL, PROMPT_TOOL), **overrides)


def anthropic_provider(llm: FakeLLM, *, stream: bool, timeout: float = 5.0) -> AnthropicProvider:
    return AnthropicProvider("sk-ant-test", llm.anthropic_url, timeout, stream)


def openai_provider(llm: FakeLLM, *, stream: bool, timeout: float = 5.0, **kwargs: Any) -> OpenAIChatProvider:
    name = kwargs.pop("name", "openai")
    return OpenAIChatProvider(name, "sk-openai-test", llm.openai_url, timeout, stream, **kwargs)


def make_response(text: str = "ok", **overrides: Any) -> ChatResponse:
    fields: dict[str, Any] = {
        "text": text,
        "tool_calls": (),
        "usage": Usage(10, 5),
        "stop_reason": "end",
        "model": "m",
    }
    fields.update(overrides)
    return ChatResponse(**fields)


@dataclass
class ScriptedProvider:
    """An in-memory provider answering from a queue of responses and exceptions, recording each request."""

    name: str
    outcomes: deque[ChatResponse | Exception] = field(default_factory=deque)
    tools: bool = True
    requests: list[ChatRequest] = field(default_factory=list)
    closed: bool = False

    def script(self, *outcomes: ChatResponse | Exception) -> ScriptedProvider:
        self.outcomes.extend(outcomes)
        return self

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        outcome = self.outcomes.popleft()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def supports_tools(self, model: str) -> bool:
        return self.tools

    async def close(self) -> None:
        self.closed = True


@dataclass
class FakeSleep:
    """Records backoff delays instead of waiting."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
