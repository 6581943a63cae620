"""A fake LLM server: a real aiohttp app on 127.0.0.1 speaking both wire formats the providers use.

- Anthropic Messages: `POST /v1/messages`, JSON or SSE events.
- OpenAI Chat Completions: `POST /v1/chat/completions`, JSON or SSE chunks ending with `data: [DONE]` (and a usage
  chunk when `stream_options.include_usage` is set).
- OpenAI Moderations: `POST /v1/moderations`, answered with a scripted `ModerationReply` (api "moderation").

Each request takes the next scripted item: a `Reply` (text, tool calls, usage, stop reason), rendered in whichever
format was asked for (see `llm_wire`), or a fault: `http_error` (429/500/401/404... in the provider's error JSON
shape), `hang` (longer than the client's timeout), `drop_connection`, `drop_mid_stream`, `stream_error`,
`malformed` (200 with a body that is not the reply's shape, or not JSON at all). Every
request is recorded (headers and JSON body) so tests can assert what the SDK sent.

    async with FakeLLM() as llm:
        llm.script(Reply(text="Hello"), http_error(429), Reply(tool_calls=(FakeToolCall("remember", {"x": 1}),)))
        provider = AnthropicProvider("key", llm.anthropic_url, 5.0, stream=True)
        ...
        assert llm.requests[0].headers["Authorization"] == "Bearer key"
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.fakes import llm_wire as wire
from tests.fakes.llm_wire import FakeToolCall, ModerationReply, Reply

__all__ = [
    "FakeLLM",
    "FakeToolCall",
    "Fault",
    "ModerationReply",
    "RecordedRequest",
    "Reply",
    "drop_connection",
    "drop_mid_stream",
    "hang",
    "http_error",
    "malformed",
    "stream_error",
]

Api = Literal["anthropic", "openai", "moderation"]


@dataclass(frozen=True, slots=True)
class Fault:
    """A failure instead of a reply; build one with the functions below."""

    kind: Literal["http_error", "hang", "drop", "drop_mid_stream", "stream_error", "malformed"]
    status: int = 500
    seconds: float = 0.0
    message: str = "scripted failure"
    headers: tuple[tuple[str, str], ...] = ()


def http_error(status: int, message: str | None = None, *, headers: dict[str, str] | None = None) -> Fault:
    """An HTTP error with the provider's own error JSON shape (and extra headers, such as Retry-After)."""
    extra = tuple((headers or {}).items())
    return Fault("http_error", status=status, message=message or f"scripted HTTP {status}", headers=extra)


def hang(seconds: float = 30.0) -> Fault:
    """Send nothing for `seconds` (or until the server closes): longer than the client's timeout."""
    return Fault("hang", seconds=seconds)


def drop_connection() -> Fault:
    """Close the connection without answering."""
    return Fault("drop")


def drop_mid_stream() -> Fault:
    """Start a streamed reply, then close the connection (a non-streaming request just loses its connection)."""
    return Fault("drop_mid_stream")


def stream_error(message: str = "Overloaded") -> Fault:
    """Start a streamed reply, then report an error inside the stream, after the 200 status has gone out (a
    non-streaming request just loses its connection)."""
    return Fault("stream_error", message=message)


def malformed(body: str) -> Fault:
    """Answer 200 with `body`, sent as it is under a JSON content type (broken JSON, or JSON of the wrong shape)."""
    return Fault("malformed", status=200, message=body)


Scripted = Reply | ModerationReply | Fault


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    api: Api
    path: str
    headers: Mapping[str, str]
    body: dict[str, Any]
    answered_with: Scripted | None = None

    @property
    def streamed(self) -> bool:
        return bool(self.body.get("stream"))


@dataclass
class FakeLLM:
    """The fake server. Use as an async context manager, or `start()` and `close()`."""

    default: Reply | None = None  # the answer when nothing is scripted; None answers 400 "nothing scripted"
    requests: list[RecordedRequest] = field(default_factory=list)
    _shared: deque[Scripted] = field(default_factory=deque)
    _per_api: dict[str, deque[Scripted]] = field(
        default_factory=lambda: {"anthropic": deque(), "openai": deque(), "moderation": deque()}
    )
    _server: TestServer | None = None
    _closing: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def __aenter__(self) -> FakeLLM:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/moderations", self._moderation)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        self._closing.set()  # releases hanging handlers, so shutdown does not wait for them
        if self._server is not None:
            await self._server.close()

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.port is not None, "start the fake first"
        return self._server.port

    @property
    def anthropic_url(self) -> str:
        """Base URL for the Anthropic SDK (no `/v1`)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        """Base URL for the OpenAI SDK (with `/v1`)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *items: Scripted, api: Api | None = None) -> None:
        """Queue replies or faults, answered in order. With `api`, only requests in that format take them (they
        are consulted before the shared queue)."""
        (self._per_api[api] if api else self._shared).extend(items)

    @property
    def pending(self) -> int:
        return len(self._shared) + sum(len(queue) for queue in self._per_api.values())

    def requests_for(self, api: Api) -> list[RecordedRequest]:
        return [r for r in self.requests if r.api == api]

    def _next_id(self) -> int:
        return next(self._ids)

    async def _take(self, request: web.Request, api: Api) -> tuple[dict[str, Any], Scripted | None]:
        body = await request.json()
        item = next((queue.popleft() for queue in (self._per_api[api], self._shared) if queue), self.default)
        self.requests.append(RecordedRequest(api, request.path, dict(request.headers), body, item))
        return body, item

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        body, item = await self._take(request, "anthropic")
        model, streamed = str(body.get("model", "")), bool(body.get("stream"))
        if item is None or isinstance(item, ModerationReply):
            return web.json_response(wire.anthropic_error(400, "fake LLM: nothing scripted"), status=400)
        if isinstance(item, Fault):
            if (early := await self._early_fault(request, item, "anthropic", streamed)) is not None:
                return early
            response = await _start_sse(request)
            for name, data in wire.anthropic_stream_head(Reply(), model, self._next_id):
                await _write(response, data, name)
            if item.kind == "stream_error":
                await _write(response, wire.anthropic_error(200, item.message, "overloaded_error"), "error")
            return await _end_or_abort(request, response, item)
        if not streamed:
            return web.json_response(wire.anthropic_message(item, model, self._next_id))
        response = await _start_sse(request)
        for name, data in wire.anthropic_events(item, model, self._next_id):
            await _write(response, data, name)
        await response.write_eof()
        return response

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        body, item = await self._take(request, "openai")
        model, streamed = str(body.get("model", "")), bool(body.get("stream"))
        if item is None or isinstance(item, ModerationReply):
            return web.json_response(wire.openai_error(400, "fake LLM: nothing scripted"), status=400)
        if isinstance(item, Fault):
            if (early := await self._early_fault(request, item, "openai", streamed)) is not None:
                return early
            response = await _start_sse(request)
            await _write(response, wire.openai_first_chunk(model, self._next_id))
            if item.kind == "stream_error":
                await _write(response, wire.openai_error(500, item.message))
            return await _end_or_abort(request, response, item)
        if not streamed:
            return web.json_response(wire.openai_completion(item, model, self._next_id))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        response = await _start_sse(request)
        for chunk in wire.openai_chunks(item, model, self._next_id, include_usage):
            await _write(response, chunk)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _moderation(self, request: web.Request) -> web.StreamResponse:
        body, item = await self._take(request, "moderation")
        if isinstance(item, Fault):
            early = await self._early_fault(request, item, "openai", streamed=False)
            assert early is not None  # unstreamed: every fault answers early
            return early
        if not isinstance(item, ModerationReply):
            return web.json_response(wire.openai_error(400, "fake LLM: no moderation reply scripted"), status=400)
        return web.json_response(wire.openai_moderation(item, str(body.get("model", "")), self._next_id))

    async def _early_fault(
        self, request: web.Request, fault: Fault, api: Api, streamed: bool
    ) -> web.StreamResponse | None:
        """Answer a fault that happens before any reply; None for the faults that happen inside a stream."""
        error = wire.anthropic_error if api == "anthropic" else wire.openai_error
        if fault.kind == "http_error":
            return web.json_response(
                error(fault.status, fault.message), status=fault.status, headers=dict(fault.headers)
            )
        if fault.kind == "malformed":
            return web.Response(text=fault.message, content_type="application/json")
        if fault.kind == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), fault.seconds)
            return web.json_response(error(500, "hung"), status=500)  # the client has long given up
        if fault.kind == "drop" or not streamed:
            assert request.transport is not None
            request.transport.abort()
            return web.Response()  # never reaches the client: the connection is gone
        return None


async def _start_sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    return response


async def _write(response: web.StreamResponse, data: dict[str, Any], event: str | None = None) -> None:
    prefix = f"event: {event}\n" if event else ""
    await response.write(f"{prefix}data: {json.dumps(data)}\n\n".encode())


async def _end_or_abort(request: web.Request, response: web.StreamResponse, fault: Fault) -> web.StreamResponse:
    if fault.kind == "drop_mid_stream":
        assert request.transport is not None
        request.transport.abort()
    else:
        await response.write_eof()
    return response
