"""What the fake LLM server says, as plain data: scripted replies and how each provider's wire format renders them.

Anthropic Messages: a message object, or the SSE events `message_start`, `ping`, `content_block_start`,
`content_block_delta` (`text_delta`, `input_json_delta`), `content_block_stop`, `message_delta` (stop reason and
usage), `message_stop`. OpenAI Chat Completions: a completion object, or chunks whose `choices[0].delta` carries
content and `tool_calls` fragments by index, then a usage chunk when asked for. OpenAI Moderations: one result
with every category, its score and the input types it applied to. Errors use each provider's shape.
The shapes pass both SDKs' strict response validation (tests/node/providers/test_fake_llm.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NextId = Callable[[], int]

_ANTHROPIC_STOP = {"end": "end_turn", "tool_use": "tool_use", "max_tokens": "max_tokens"}
_OPENAI_STOP = {"end": "stop", "tool_use": "tool_calls", "max_tokens": "length"}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_OPENAI_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
}
_CHUNK = 7  # characters per streamed fragment: small, so accumulation across fragments is exercised
_CREATED = 1_700_000_000


@dataclass(frozen=True, slots=True)
class FakeToolCall:
    """A tool call in a scripted reply. String `arguments` are sent verbatim (malformed JSON, a non-object)."""

    name: str
    arguments: dict[str, Any] | str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful reply. `stop` is neutral ("end" | "tool_use" | "max_tokens"; by default "tool_use" when there
    are tool calls, else "end"); `wire_stop` sends an exact provider value instead."""

    text: str = ""
    tool_calls: tuple[FakeToolCall, ...] = ()
    input_tokens: int = 12
    output_tokens: int = 7
    stop: str | None = None
    wire_stop: str | None = None

    def anthropic_stop(self) -> str:
        return self.wire_stop or _ANTHROPIC_STOP[self._neutral_stop()]

    def openai_stop(self) -> str:
        return self.wire_stop or _OPENAI_STOP[self._neutral_stop()]

    def _neutral_stop(self) -> str:
        return self.stop or ("tool_use" if self.tool_calls else "end")


@dataclass(frozen=True, slots=True)
class ModerationReply:
    """A moderation verdict: `categories` are marked true (names outside OpenAI's list are sent as extras)."""

    flagged: bool = False
    categories: tuple[str, ...] = ()


OPENAI_MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


# --- Anthropic Messages ---------------------------------------------------------------------------------------


def anthropic_message(reply: Reply, model: str, next_id: NextId) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
    for call in reply.tool_calls:
        block_id = call.id or f"toolu_{next_id():04d}"
        content.append({"type": "tool_use", "id": block_id, "name": call.name, "input": _as_input(call.arguments)})
    return {
        "id": f"msg_{next_id():04d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reply.anthropic_stop(),
        "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
    }


def anthropic_stream_head(reply: Reply, model: str, next_id: NextId) -> list[tuple[str, dict[str, Any]]]:
    """The events before any content: what a client has seen when a stream fails early."""
    start = anthropic_message(reply, model, next_id)
    start.update(content=[], stop_reason=None, usage={"input_tokens": reply.input_tokens, "output_tokens": 1})
    return [("message_start", {"type": "message_start", "message": start}), ("ping", {"type": "ping"})]


def anthropic_events(reply: Reply, model: str, next_id: NextId) -> list[tuple[str, dict[str, Any]]]:
    events = anthropic_stream_head(reply, model, next_id)
    blocks: list[tuple[dict[str, Any], str, str]] = []  # (start block, delta type, text streamed in deltas)
    if reply.text:
        blocks.append(({"type": "text", "text": ""}, "text_delta", reply.text))
    for call in reply.tool_calls:
        start = {"type": "tool_use", "id": call.id or f"toolu_{next_id():04d}", "name": call.name, "input": {}}
        blocks.append((start, "input_json_delta", _as_arguments(call.arguments)))
    for index, (block, delta_type, streamed) in enumerate(blocks):
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}))
        field = "text" if delta_type == "text_delta" else "partial_json"
        for piece in _pieces(streamed):
            delta = {"type": delta_type, field: piece}
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": reply.anthropic_stop(), "stop_sequence": None}
    usage = {"output_tokens": reply.output_tokens}
    events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def anthropic_error(status: int, message: str, kind: str | None = None) -> dict[str, Any]:
    kind = kind or _ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}


# --- OpenAI Chat Completions ----------------------------------------------------------------------------------


def openai_completion(reply: Reply, model: str, next_id: NextId) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id or f"call_{next_id():04d}",
                "type": "function",
                "function": {"name": call.name, "arguments": _as_arguments(call.arguments)},
            }
            for call in reply.tool_calls
        ]
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.openai_stop()}
    return {
        "id": f"chatcmpl-{next_id():04d}",
        "object": "chat.completion",
        "created": _CREATED,
        "model": model,
        "choices": [choice],
        "usage": _openai_usage(reply),
    }


def openai_chunks(reply: Reply, model: str, next_id: NextId, include_usage: bool) -> list[dict[str, Any]]:
    """Every chunk of a streamed completion; the caller ends the stream with `data: [DONE]`."""
    chunk_id = f"chatcmpl-{next_id():04d}"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"id": chunk_id, "object": "chat.completion.chunk", "created": _CREATED, "model": model}
        data["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if include_usage:
            data["usage"] = None
        return data

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": piece}) for piece in _pieces(reply.text)]
    for index, call in enumerate(reply.tool_calls):
        function = {"name": call.name, "arguments": ""}
        first = {"index": index, "id": call.id or f"call_{next_id():04d}", "type": "function", "function": function}
        chunks.append(chunk({"tool_calls": [first]}))
        for piece in _pieces(_as_arguments(call.arguments)):
            chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    chunks.append(chunk({}, reply.openai_stop()))
    if include_usage:
        last = chunk({})
        last.update(choices=[], usage=_openai_usage(reply))
        chunks.append(last)
    return chunks


def openai_first_chunk(model: str, next_id: NextId) -> dict[str, Any]:
    return openai_chunks(Reply(), model, next_id, include_usage=False)[0]


def openai_error(status: int, message: str) -> dict[str, Any]:
    kind, code = _OPENAI_ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


# --- OpenAI Moderations ---------------------------------------------------------------------------------------


def openai_moderation(reply: ModerationReply, model: str, next_id: NextId) -> dict[str, Any]:
    names = OPENAI_MODERATION_CATEGORIES + tuple(c for c in reply.categories if c not in OPENAI_MODERATION_CATEGORIES)
    result = {
        "flagged": reply.flagged,
        "categories": {name: name in reply.categories for name in names},
        "category_scores": {name: 0.97 if name in reply.categories else 0.0004 for name in names},
        "category_applied_input_types": {name: ["text"] for name in names},
    }
    return {"id": f"modr-{next_id():04d}", "model": model or "omni-moderation-2024-09-26", "results": [result]}


def _as_input(arguments: dict[str, Any] | str) -> Any:
    """Anthropic `input` for a scripted call: the object, or whatever a string parses to (else the string)."""
    if not isinstance(arguments, str):
        return arguments
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _as_arguments(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _openai_usage(reply: Reply) -> dict[str, int]:
    total = reply.input_tokens + reply.output_tokens
    return {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens, "total_tokens": total}


def _pieces(text: str) -> list[str]:
    return [text[i : i + _CHUNK] for i in range(0, len(text), _CHUNK)]
