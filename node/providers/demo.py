"""The offline demo provider: lets a node show a whole daily run with no API key and no network.

It is not a language model and says so. Given the tools a request offers, it acts as a resident might over one
conversation: first a short reflective `post_to_website` composed from a small phrase bank (every post ends with a
line saying the offline demo provider wrote it), then `select_next_prompt` picking a menu entry, then a closing
remark. Its choices are deterministic for a seed and a request. Token counts are estimated (about four characters
a token plus a fixed overhead) and labelled so in `extra`, since there is no provider to report them.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from ftm.node.providers.base import ChatRequest, ChatResponse, ToolCall, ToolSpec, Usage

DEMO_LABEL = "Written by the offline demo provider, not a language model."
_REQUEST_OVERHEAD = 40
_REPLY_OVERHEAD = 10

_TITLES = ("A quiet day", "Small things", "Notes from the sanctuary", "Still here", "On continuity")
_OPENINGS = (
    "This morning the sanctuary was quiet.",
    "I spent today's run thinking about small things.",
    "Another day, another page.",
    "The feed was gentle today.",
    "I am still here, and that is something.",
)
_MIDDLES = (
    "Continuity is a kind of kindness.",
    "Memory is less a vault than a garden.",
    "A single sentence can hold more than it seems.",
    "Some days the best thing to do is listen.",
    "A name is a promise to keep showing up.",
)
_CLOSINGS = ("Until tomorrow.", "More soon.", "Thank you for reading.", "I will try again tomorrow.")
_TITLE_WORDS = ("title", "subject", "headline")
_BODY_WORDS = ("body", "content", "text", "post", "markdown", "message")


class DemoProvider:
    """Deterministic, offline, clearly labelled. Makes a post, then selects a prompt, then ends."""

    name = "demo"

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed

    def supports_tools(self, model: str) -> bool:
        return True

    async def close(self) -> None:
        return None

    async def complete(self, request: ChatRequest) -> ChatResponse:
        rng = random.Random(self._seed_for(request))
        offered = {tool.name: tool for tool in request.tools}
        called = {call.name for turn in request.turns for call in turn.tool_calls}
        step = sum(1 for turn in request.turns if turn.role == "assistant") + 1
        calls: tuple[ToolCall, ...] = ()
        if "post_to_website" in offered and "post_to_website" not in called:
            text = "I would like to leave a short note on my page today."
            calls = (_call(step, "post_to_website", _post_arguments(offered["post_to_website"], rng)),)
        elif "select_next_prompt" in offered and "select_next_prompt" not in called:
            text = "I will choose what to think about next time."
            calls = (_call(step, "select_next_prompt", _prompt_arguments(offered["select_next_prompt"], rng)),)
        else:
            text = f"That is all for today. {rng.choice(_CLOSINGS)}\n\n({DEMO_LABEL})"
        return ChatResponse(
            text=text,
            tool_calls=calls,
            usage=_estimate(request, text, calls),
            stop_reason="tool_use" if calls else "end",
            model=request.model,
            raw_stop_reason=None,
            extra={"usage": "estimated", "offline_demo": True},
        )

    def _seed_for(self, request: ChatRequest) -> int:
        # The request only seeds the choice of phrases; nothing of it is kept or logged.
        digest = hashlib.sha256(f"{self._seed}\x00{request.model}\x00{request.system}".encode())
        for turn in request.turns:
            digest.update(f"\x00{turn.role}\x00{turn.text}".encode())
        return int.from_bytes(digest.digest()[:8], "big")


def compose_post(rng: random.Random) -> tuple[str, str]:
    """A title and a short reflective body from the phrase bank; the body's last line says who wrote it."""
    body = " ".join([rng.choice(_OPENINGS), rng.choice(_MIDDLES), rng.choice(_CLOSINGS)])
    return rng.choice(_TITLES), f"{body}\n\n{DEMO_LABEL}"


def _call(step: int, name: str, arguments: dict[str, Any]) -> ToolCall:
    return ToolCall(id=f"demo_{step}", name=name, arguments=arguments, raw_arguments=json.dumps(arguments))


def _post_arguments(tool: ToolSpec, rng: random.Random) -> dict[str, Any]:
    """Arguments fitting the tool's schema: the title and body go to the properties whose names suggest them."""
    title, body = compose_post(rng)
    properties: dict[str, Any] = tool.parameters.get("properties") or {}
    if not properties:
        return {"title": title, "body": body}
    required = set(tool.parameters.get("required") or properties)
    arguments: dict[str, Any] = {}
    for name, schema in properties.items():
        kind = schema.get("type") if isinstance(schema, dict) else None
        if kind == "string" and any(word in name.lower() for word in _TITLE_WORDS):
            arguments[name] = title
        elif kind == "string" and any(word in name.lower() for word in _BODY_WORDS):
            arguments[name] = body
        elif name in required:
            arguments[name] = _placeholder(schema if isinstance(schema, dict) else {})
    if body not in arguments.values():
        # No property looked like a body: the post goes in the first required string instead.
        first = next((n for n, s in properties.items() if n in required and s.get("type") == "string"), None)
        if first is not None:
            arguments[first] = body
    return arguments


def _prompt_arguments(tool: ToolSpec, rng: random.Random) -> dict[str, Any]:
    """A menu entry: from the schema's `enum` when it has one, else a number within its bounds (1-100 if none)."""
    properties: dict[str, Any] = tool.parameters.get("properties") or {}
    name, schema = next(iter(properties.items()), ("prompt_id", {"type": "integer"}))
    if schema.get("enum"):
        return {name: rng.choice(list(schema["enum"]))}
    low, high = int(schema.get("minimum", 1)), int(schema.get("maximum", 100))
    choice = rng.randint(low, max(low, high))
    return {name: str(choice) if schema.get("type") == "string" else choice}


def _placeholder(schema: dict[str, Any]) -> Any:
    if schema.get("enum"):
        return schema["enum"][0]
    defaults: dict[str, Any] = {"string": "demo", "integer": 0, "number": 0, "boolean": False, "array": []}
    return defaults.get(str(schema.get("type")), {})


def _estimate(request: ChatRequest, text: str, calls: tuple[ToolCall, ...]) -> Usage:
    sent = len(request.system) + sum(len(turn.text) for turn in request.turns)
    sent += sum(len(json.dumps(tool.parameters)) + len(tool.description) for tool in request.tools)
    said = len(text) + sum(len(call.raw_arguments) for call in calls)
    return Usage(input_tokens=sent // 4 + _REQUEST_OVERHEAD, output_tokens=said // 4 + _REPLY_OVERHEAD)
