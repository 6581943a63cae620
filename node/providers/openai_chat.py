"""The OpenAI Chat Completions provider, over the official `openai` SDK: OpenAI itself and any compatible server
(Ollama, vLLM, the llama.cpp server), each configured under its own provider name.

Translation: the system text is a system message; assistant tool calls are `tool_calls` of type `function`; tool
results are `role: "tool"` messages naming the call. Streaming asks for a final usage chunk and accumulates text
and tool-call argument fragments by index. Arguments that are not a JSON object become a `ToolCall` with an error.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass, field

import httpx2
import openai
from openai.types import CompletionUsage
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
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

_STOP_REASONS = {"stop": "end", "tool_calls": "tool_use", "function_call": "tool_use", "length": "max_tokens"}


class OpenAIChatProvider:
    """One Chat Completions endpoint. `base_url` includes `/v1`. OpenAI wants the output cap as
    `max_completion_tokens` (its reasoning models refuse `max_tokens`); compatible servers have long understood
    only `max_tokens`, so `legacy_max_tokens` sends that instead. `models_without_tools` names models known to
    have no tool calling; the router wraps those in the plain-text action fallback."""

    def __init__(
        self,
        name: str,
        api_key: str,
        base_url: str,
        timeout: float,
        stream: bool,
        *,
        legacy_max_tokens: bool = False,
        models_without_tools: frozenset[str] = frozenset(),
    ) -> None:
        quiet_chatty_libraries()
        self.name = name
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)
        self._stream = stream
        self._legacy_max_tokens = legacy_max_tokens
        self._models_without_tools = models_without_tools

    def supports_tools(self, model: str) -> bool:
        return model not in self._models_without_tools

    async def close(self) -> None:
        await self._client.close()

    async def complete(self, request: ChatRequest) -> ChatResponse:
        max_tokens = request.max_tokens if self._legacy_max_tokens else openai.omit
        max_completion_tokens = openai.omit if self._legacy_max_tokens else request.max_tokens
        tools = to_tools(request) or openai.omit
        try:
            if not self._stream:
                completion = await self._client.chat.completions.create(
                    model=request.model,
                    messages=to_messages(request),
                    tools=tools,
                    max_tokens=max_tokens,
                    max_completion_tokens=max_completion_tokens,
                )
                return self._logged(from_completion(completion, self.name, request.model))
            stream = await self._client.chat.completions.create(
                model=request.model,
                messages=to_messages(request),
                tools=tools,
                max_tokens=max_tokens,
                max_completion_tokens=max_completion_tokens,
                stream=True,
                stream_options={"include_usage": True},
            )
            accumulated = _StreamedCompletion(model=request.model)
            async with stream:
                async for chunk in stream:
                    accumulated.add(chunk)
        except (openai.OpenAIError, httpx2.RequestError) as exc:
            raise provider_error(exc, self.name, request.model) from None
        if accumulated.finish_reason is None:
            raise ProviderUnavailable(f"{self.name} {request.model}: the stream ended without a finish reason")
        return self._logged(accumulated.response())

    def _logged(self, response: ChatResponse) -> ChatResponse:
        log.debug(
            "%s reply: model=%s stop=%s input_tokens=%d output_tokens=%d tool_calls=%d",
            self.name,
            response.model,
            response.raw_stop_reason,
            response.usage.input_tokens,
            response.usage.output_tokens,
            len(response.tool_calls),
        )
        return response


def to_messages(request: ChatRequest) -> list[ChatCompletionMessageParam]:
    messages: list[ChatCompletionMessageParam] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for turn in request.turns:
        messages.append(_to_message(turn))
    return messages


def _to_message(turn: Turn) -> ChatCompletionMessageParam:
    if turn.role == "user":
        return {"role": "user", "content": turn.text}
    if turn.role == "tool":
        # Chat Completions has no error flag on tool results, so the text carries it.
        text = f"Error: {turn.text}" if turn.is_error else turn.text
        return {"role": "tool", "tool_call_id": turn.tool_call_id or "", "content": text}
    if not turn.tool_calls:
        return {"role": "assistant", "content": turn.text}
    calls: list[ChatCompletionMessageFunctionToolCallParam] = [
        # A call whose arguments were malformed is replayed as `{}`: some compatible servers parse these and
        # would fail on the original text. Its error went back as the tool result.
        {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": _dumps(call.arguments)}}
        for call in turn.tool_calls
    ]
    return {"role": "assistant", "content": turn.text or None, "tool_calls": calls}


def to_tools(request: ChatRequest) -> list[ChatCompletionFunctionToolParam]:
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in request.tools
    ]


def from_completion(completion: ChatCompletion, provider: str, model: str) -> ChatResponse:
    if not completion.choices:
        raise ProviderUnavailable(f"{provider} {model}: the reply had no choices")
    choice = completion.choices[0]
    calls = [
        tool_call(call.id, call.function.name, call.function.arguments)
        for call in choice.message.tool_calls or ()
        if call.type == "function"
    ]
    return ChatResponse(
        text=choice.message.content or "",
        tool_calls=tuple(calls),
        usage=_usage(completion.usage),
        stop_reason=_STOP_REASONS.get(choice.finish_reason, "end"),
        model=completion.model or model,
        raw_stop_reason=choice.finish_reason,
        extra={} if completion.usage else {"usage_missing": True},
    )


def tool_call(call_id: str | None, name: str, arguments: str) -> ToolCall:
    """A `ToolCall` from the arguments text; malformed JSON or a non-object is reported, never raised. Servers
    that mint no call id get a fresh one, so results can still be matched to calls."""
    call_id = call_id or f"call_{secrets.token_hex(8)}"
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return ToolCall(call_id, name, None, arguments, "tool arguments are not valid JSON")
    if not isinstance(value, dict):
        error = f"tool arguments must be a JSON object, got {type(value).__name__}"
        return ToolCall(call_id, name, None, arguments, error)
    return ToolCall(call_id, name, value, arguments)


@dataclass
class _StreamedCall:
    id: str | None = None
    name: str = ""
    arguments: str = ""


@dataclass
class _StreamedCompletion:
    """A completion accumulated from chunks: text deltas, tool-call fragments by index, the final usage chunk."""

    model: str
    text: list[str] = field(default_factory=list)
    calls: dict[int, _StreamedCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: CompletionUsage | None = None

    def add(self, chunk: ChatCompletionChunk) -> None:
        self.model = chunk.model or self.model
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            if choice.delta.content:
                self.text.append(choice.delta.content)
            for fragment in choice.delta.tool_calls or ():
                call = self.calls.setdefault(fragment.index, _StreamedCall())
                call.id = fragment.id or call.id
                if fragment.function is not None:
                    call.name += fragment.function.name or ""
                    call.arguments += fragment.function.arguments or ""
            self.finish_reason = choice.finish_reason or self.finish_reason

    def response(self) -> ChatResponse:
        finish = self.finish_reason or "stop"
        return ChatResponse(
            text="".join(self.text),
            tool_calls=tuple(tool_call(c.id, c.name, c.arguments) for _, c in sorted(self.calls.items())),
            usage=_usage(self.usage),
            stop_reason=_STOP_REASONS.get(finish, "end"),
            model=self.model,
            raw_stop_reason=finish,
            extra={} if self.usage else {"usage_missing": True},
        )


def _usage(usage: CompletionUsage | None) -> Usage:
    # Some compatible servers report no usage; zero (flagged `usage_missing` in `extra`) rather than a guess.
    if usage is None:
        return Usage(input_tokens=0, output_tokens=0)
    return Usage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens)


def provider_error(exc: openai.OpenAIError | httpx2.RequestError, provider: str, model: str) -> ProviderError:
    """Our error for an SDK or transport error. Only the class and status are used: the SDK's messages can quote
    the request or the reply."""
    where = f"{provider} {model}"
    if isinstance(exc, httpx2.RequestError | openai.APIConnectionError):
        kind = "timed out" if isinstance(exc, httpx2.TimeoutException | openai.APITimeoutError) else "failed"
        return ProviderUnavailable(f"{where}: connection {kind} ({type(exc).__name__})")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in (408, 409, 429) or status >= 500:
            wait = retry_after_seconds(exc.response.headers, time.time())
            return ProviderUnavailable(f"{where}: HTTP {status}", status=status, retry_after=wait)
        return ProviderRefused(f"{where}: HTTP {status}", status=status)
    if isinstance(exc, openai.APIError):
        # An error object inside a stream that had started with 200, or a reply that failed validation: the
        # provider misbehaved, our request was not wrong.
        return ProviderUnavailable(f"{where}: error in the response ({type(exc).__name__})")
    return ProviderRefused(f"{where}: client error ({type(exc).__name__})")


def _dumps(arguments: dict[str, object] | None) -> str:
    return json.dumps(arguments if arguments is not None else {})
