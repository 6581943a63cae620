"""The neutral conversation model every provider speaks, and the errors a run engine must tell apart.

A run engine builds a `ChatRequest` (system text, turns, tool specs, an output-token cap) and gets a
`ChatResponse` (text, tool calls, the provider's own token counts). Each provider module translates to and from
its SDK's wire format; nothing outside `ftm.node.providers` sees an SDK type.

    ProviderError
    ├── ProviderUnavailable   outside causes (connection, timeout, 429, 5xx): retry later; the run costs no tokens
    └── ProviderRefused       the request itself is wrong (auth, unknown model, 4xx): retrying will not help
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Protocol

TURN_ROLES = ("user", "assistant", "tool")
STOP_REASONS = ("end", "tool_use", "max_tokens")


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: its name, what it does (the model reads this) and a JSON Schema for its input."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model made. When its arguments were not valid JSON (or not an object), `arguments` is None
    and `error` says why, so the engine can report the mistake back to the model instead of failing the run."""

    id: str
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str = ""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn of the conversation. Assistant turns may carry tool calls; tool turns answer one call each."""

    role: str
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # for role "tool": the call this result answers
    is_error: bool = False  # for role "tool": the result reports a failure

    def __post_init__(self) -> None:
        if self.role not in TURN_ROLES:
            raise ValueError(f"turn role must be one of {', '.join(TURN_ROLES)}")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool turn must name the call it answers")


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    system: str
    turns: tuple[Turn, ...]
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int = 1024


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the provider reported them (never estimated by us)."""

    input_tokens: int
    output_tokens: int

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class ChatResponse:
    text: str
    tool_calls: tuple[ToolCall, ...]
    usage: Usage
    stop_reason: str  # one of STOP_REASONS
    model: str
    raw_stop_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ProviderError(Exception):
    """Base of provider failures. Messages name the provider, model and status, never conversation content.

    `status` is the HTTP status the provider answered with, when there was one (none for connection failures).
    `retry_after` is how many seconds the provider asked us to wait (its Retry-After header), when it said.
    """

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float | None:
    """The wait a provider asked for: `retry-after-ms` (OpenAI), else `retry-after` as seconds or an HTTP date.

    None when absent or unreadable; never negative. `now` is the current Unix time, for the HTTP-date form.
    """
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            value = float(milliseconds) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return max(0.0, value)
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is always GMT; a zone-less one is read as such
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else None


class ProviderUnavailable(ProviderError):
    """Connection failures, timeouts, rate limits and server errors: outside causes, worth retrying later."""


class ProviderRefused(ProviderError):
    """The provider rejected the request (authentication, unknown model, invalid request)."""


class Provider(Protocol):
    """One configured LLM endpoint."""

    name: str

    async def complete(self, request: ChatRequest) -> ChatResponse: ...

    def supports_tools(self, model: str) -> bool: ...

    async def close(self) -> None: ...
