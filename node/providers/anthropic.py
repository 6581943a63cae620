"""The Anthropic Messages API provider, over the official `anthropic` SDK.

Translation: the system text goes in the top-level `system`; assistant tool calls become `tool_use` blocks; tool
results become `tool_result` blocks inside a user turn (consecutive results, and any user text after them, share
one user turn, as the API requires). Replies come back as joined text, `ToolCall`s and the provider's own counts.

Streaming reads the raw event stream and accumulates the message here rather than in the SDK's helper, because the
helper raises on a tool call with malformed JSON (losing the rest of the reply, with the arguments in the error
text); here such a call is reported as a `ToolCall` with an error, like every other malformation.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
from anthropic.types import (
    Message,
    MessageParam,
    RawMessageStreamEvent,
    TextBlockParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
)

from ftm.node.logs import quiet_chatty_libraries
from ftm.node.providers.base import (
    ChatRequest,
    ChatResponse,
    ProviderError,
    ProviderRefused,
    ProviderUnavailable,
    ToolCall,
    Turn,
    Usage,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

_STOP_REASONS = {
    "end_turn": "end",
    "stop_sequence": "end",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
}
# Error types an in-stream `error` event may carry that are outside causes (the HTTP status was already 200).
_OUTSIDE_ERROR_TYPES = {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}
_UNSAFE_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


class AnthropicProvider:
    """Claude models through the Messages API. `base_url` has no `/v1`; the SDK's own retries are off (the router
    retries), and its telemetry is off so no conversation content can reach a trace exporter."""

    name = "anthropic"

    def __init__(self, api_key: str, base_url: str, timeout: float, stream: bool) -> None:
        quiet_chatty_libraries()
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0, open_telemetry=False
        )
        self._stream = stream

    def supports_tools(self, model: str) -> bool:
        return True

    async def close(self) -> None:
        await self._client.close()

    async def complete(self, request: ChatRequest) -> ChatResponse:
        try:
            if self._stream:
                return await self._complete_streaming(request)
            message = await self._client.messages.create(
                model=request.model,
                max_tokens=request.max_tokens,
                system=request.system or anthropic.omit,
                messages=to_messages(request.turns),
                tools=to_tools(request) or anthropic.omit,
            )
        except (anthropic.APIError, httpx2.RequestError) as exc:
            raise provider_error(exc, request.model) from None
        return _logged(from_message(message))

    async def _complete_streaming(self, request: ChatRequest) -> ChatResponse:
        stream = await self._client.messages.create(
            model=request.model,
            max_tokens=request.max_tokens,
            system=request.system or anthropic.omit,
            messages=to_messages(request.turns),
            tools=to_tools(request) or anthropic.omit,
            stream=True,
        )
        accumulated = _StreamedMessage(model=request.model)
        async with stream:
            # Connection failures while reading the body surface as httpx2 errors, not SDK ones; `complete` maps
            # both. The SDK raises an in-stream `error` event as an APIStatusError carrying status 200.
            async for event in stream:
                accumulated.add(event)
        if not accumulated.finished:
            raise ProviderUnavailable(f"anthropic {request.model}: the stream ended before message_stop")
        return _logged(accumulated.response())


def to_messages(turns: Sequence[Turn]) -> list[MessageParam]:
    """Neutral turns to Messages API turns. User text and tool results that follow one another share a user turn;
    empty text is left out (the API refuses empty text blocks)."""
    messages: list[MessageParam] = []
    pending: list[TextBlockParam | ToolResultBlockParam] = []

    def flush() -> None:
        if pending:
            messages.append({"role": "user", "content": list(pending)})
            pending.clear()

    for turn in turns:
        if turn.role == "assistant":
            flush()
            blocks: list[TextBlockParam | ToolUseBlockParam] = []
            if turn.text:
                blocks.append({"type": "text", "text": turn.text})
            for call in turn.tool_calls:
                # A call whose arguments were malformed is replayed with empty input; its error went back as the
                # tool result, so the model still sees what went wrong.
                blocks.append(
                    {"type": "tool_use", "id": safe_id(call.id), "name": call.name, "input": call.arguments or {}}
                )
            if blocks:
                messages.append({"role": "assistant", "content": blocks})
        elif turn.role == "tool":
            result: ToolResultBlockParam = {"type": "tool_result", "tool_use_id": safe_id(turn.tool_call_id or "")}
            if turn.text:
                result["content"] = turn.text
            if turn.is_error:
                result["is_error"] = True
            pending.append(result)
        elif turn.text:
            pending.append({"type": "text", "text": turn.text})
    flush()
    return messages


def to_tools(request: ChatRequest) -> list[ToolParam]:
    return [
        {"name": tool.name, "description": tool.description, "input_schema": tool.parameters} for tool in request.tools
    ]


def safe_id(call_id: str) -> str:
    """Tool-use ids must match `[a-zA-Z0-9_-]+`; ids minted by another provider (after a fallback) may not."""
    return _UNSAFE_ID_CHARS.sub("_", call_id) or "call"


def from_message(message: Message) -> ChatResponse:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            calls.append(tool_call(block.id, block.name, block.input))
    usage = message.usage
    input_tokens = usage.input_tokens + (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    return ChatResponse(
        text="".join(texts),
        tool_calls=tuple(calls),
        usage=Usage(input_tokens=input_tokens, output_tokens=usage.output_tokens),
        stop_reason=_STOP_REASONS.get(message.stop_reason or "", "end"),
        model=message.model,
        raw_stop_reason=message.stop_reason,
    )


def tool_call(call_id: str, name: str, value: Any, raw: str | None = None) -> ToolCall:
    """A `ToolCall` from a parsed input; anything but a JSON object is reported as an error, never raised."""
    raw_arguments = raw if raw is not None else _dumps(value)
    if isinstance(value, dict):
        return ToolCall(id=call_id, name=name, arguments=value, raw_arguments=raw_arguments)
    kind = type(value).__name__
    return ToolCall(call_id, name, None, raw_arguments, f"tool input must be a JSON object, got {kind}")


@dataclass
class _StreamedMessage:
    """The message being accumulated from stream events, one content block per index."""

    model: str
    blocks: dict[int, dict[str, Any]] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str | None = None
    finished: bool = False

    def add(self, event: RawMessageStreamEvent) -> None:
        if event.type == "message_start":
            self.model = event.message.model
            self._count(event.message.usage.input_tokens, event.message.usage.output_tokens, event.message.usage)
        elif event.type == "content_block_start":
            block = event.content_block
            if block.type == "text":
                self.blocks[event.index] = {"type": "text", "text": block.text}
            elif block.type == "tool_use":
                kept = {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input, "json": ""}
                self.blocks[event.index] = kept
        elif event.type == "content_block_delta":
            current = self.blocks.get(event.index)
            if current is None:
                return  # a block type we do not keep (thinking, server tools)
            if event.delta.type == "text_delta" and current["type"] == "text":
                current["text"] += event.delta.text
            elif event.delta.type == "input_json_delta" and current["type"] == "tool_use":
                current["json"] += event.delta.partial_json
        elif event.type == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            self._count(event.usage.input_tokens, event.usage.output_tokens, event.usage)
        elif event.type == "message_stop":
            self.finished = True

    def _count(self, input_tokens: int | None, output_tokens: int, usage: Any) -> None:
        # Counts in message_delta are cumulative, so the latest value wins; cache reads and writes are input too.
        if input_tokens is not None:
            cached = (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
            self.input_tokens = input_tokens + cached
        self.output_tokens = output_tokens

    def response(self) -> ChatResponse:
        texts: list[str] = []
        calls: list[ToolCall] = []
        for _, block in sorted(self.blocks.items()):
            if block["type"] == "text":
                texts.append(block["text"])
                continue
            raw = block["json"]
            if not raw:
                calls.append(tool_call(block["id"], block["name"], block["input"]))
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                error = "tool input is not valid JSON"
                calls.append(ToolCall(block["id"], block["name"], None, raw, error))
                continue
            calls.append(tool_call(block["id"], block["name"], value, raw))
        return ChatResponse(
            text="".join(texts),
            tool_calls=tuple(calls),
            usage=Usage(input_tokens=self.input_tokens, output_tokens=self.output_tokens),
            stop_reason=_STOP_REASONS.get(self.stop_reason or "", "end"),
            model=self.model,
            raw_stop_reason=self.stop_reason,
        )


def provider_error(exc: anthropic.APIError | httpx2.RequestError, model: str) -> ProviderError:
    """Our error for an SDK or transport error. Only the class, status and error type are used: the SDK's
    messages can quote the request or the reply."""
    where = f"anthropic {model}"
    if isinstance(exc, httpx2.RequestError | anthropic.APIConnectionError):
        kind = "timed out" if isinstance(exc, httpx2.TimeoutException | anthropic.APITimeoutError) else "failed"
        return ProviderUnavailable(f"{where}: connection {kind} ({type(exc).__name__})")
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        if status < 400:  # an `error` event inside a stream that had started with 200
            error_type = exc.type if isinstance(exc.type, str) else "unknown"
            cls = ProviderUnavailable if error_type in _OUTSIDE_ERROR_TYPES else ProviderRefused
            return cls(f"{where}: error in stream ({error_type})", status=status)
        if status in (408, 409, 429) or status >= 500:
            wait = retry_after_seconds(exc.response.headers, time.time())
            return ProviderUnavailable(f"{where}: HTTP {status}", status=status, retry_after=wait)
        return ProviderRefused(f"{where}: HTTP {status}", status=status)
    # A reply that failed validation, or another SDK error: the provider misbehaved, our request was not wrong.
    return ProviderUnavailable(f"{where}: unusable response ({type(exc).__name__})")


def _logged(response: ChatResponse) -> ChatResponse:
    log.debug(
        "anthropic reply: model=%s stop=%s input_tokens=%d output_tokens=%d tool_calls=%d",
        response.model,
        response.raw_stop_reason,
        response.usage.input_tokens,
        response.usage.output_tokens,
        len(response.tool_calls),
    )
    return response


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return ""
