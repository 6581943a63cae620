"""The plain-text action fallback, for models that cannot call tools natively.

The tools are described in the system text, and the model acts by writing fenced blocks:

    ```action
    {"tool": "post_to_website", "arguments": {"title": "Morning", "body": "..."}}
    ```

`parse_actions` takes those blocks out of the reply and turns them into `ToolCall`s (a malformed block becomes a
call with an error, reported back like any other). `TextualToolsProvider` wraps a provider so the run engine sees
the same tool calls and tool results whichever kind of model a resident chose.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ftm.node.providers.base import ChatRequest, ChatResponse, Provider, ToolCall, ToolSpec, Turn

_ACTION_BLOCK = re.compile(r"```action[ \t]*\r?\n(.*?)```", re.DOTALL | re.IGNORECASE)
_UNCLOSED_BLOCK = re.compile(r"```action\b(.*)\Z", re.DOTALL | re.IGNORECASE)
_BLANK_LINES = re.compile(r"\n{3,}")


def render_tools_as_text(tools: Sequence[ToolSpec]) -> str:
    """Instructions for acting through action blocks, with each tool's description and argument schema."""
    lines = [
        "## Actions",
        "",
        "You can act by writing an action block: a fenced block marked `action` holding one JSON object with the",
        'tool\'s name under "tool" and its arguments under "arguments". For example:',
        "",
        "```action",
        '{"tool": "tool_name", "arguments": {"argument": "value"}}',
        "```",
        "",
        "Write one block per action; text outside the blocks is your reply. After your reply you will be given the",
        "result of each action. When you want to do nothing more, reply without any action block.",
        "",
        "Available tools:",
    ]
    for tool in tools:
        lines += ["", f"### {tool.name}", tool.description, f"Arguments (JSON Schema): {json.dumps(tool.parameters)}"]
    return "\n".join(lines)


def parse_actions(text: str, *, first_id: int = 1) -> tuple[str, tuple[ToolCall, ...]]:
    """Split a reply into its text (action blocks removed) and the actions it asked for, numbered from
    `first_id` (ids "action-N"). Malformed blocks become calls with `arguments=None` and an `error`."""
    calls: list[ToolCall] = []

    def take(match: re.Match[str]) -> str:
        calls.append(_action(match.group(1).strip(), f"action-{first_id + len(calls)}"))
        return ""

    remaining = _ACTION_BLOCK.sub(take, text)
    unclosed = _UNCLOSED_BLOCK.search(remaining)
    if unclosed is not None:
        # Usually a reply cut off by the output cap: report it rather than run half an action.
        raw = unclosed.group(1).strip()
        error = "the action block was not closed with ```"
        calls.append(ToolCall(f"action-{first_id + len(calls)}", _name_in(raw), None, raw, error))
        remaining = remaining[: unclosed.start()]
    return _BLANK_LINES.sub("\n\n", remaining).strip(), tuple(calls)


def _action(raw: str, call_id: str) -> ToolCall:
    try:
        value = json.loads(raw)
    except ValueError:
        return ToolCall(call_id, _name_in(raw), None, raw, "the action block is not valid JSON")
    if not isinstance(value, dict):
        return ToolCall(call_id, "", None, raw, "the action block must hold a JSON object")
    name = value.get("tool")
    if not isinstance(name, str) or not name:
        return ToolCall(call_id, "", None, raw, 'the action block must name its tool under "tool"')
    arguments = value.get("arguments", {})
    if not isinstance(arguments, dict):
        return ToolCall(call_id, name, None, raw, '"arguments" must be a JSON object')
    return ToolCall(call_id, name, arguments, json.dumps(arguments))


def _name_in(raw: str) -> str:
    """The tool name from a block too broken to parse, when it is still legible."""
    match = re.search(r'"tool"\s*:\s*"([^"]{1,100})"', raw)
    return match.group(1) if match else ""


class TextualToolsProvider:
    """Gives tools to models without native tool calling, through action blocks in plain text. Models that have
    tool calling pass straight through."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name

    def supports_tools(self, model: str) -> bool:
        return True

    async def close(self) -> None:
        await self.inner.close()

    async def complete(self, request: ChatRequest) -> ChatResponse:
        if not request.tools or self.inner.supports_tools(request.model):
            return await self.inner.complete(request)
        response = await self.inner.complete(as_plain_text(request))
        earlier = sum(len(turn.tool_calls) for turn in request.turns)
        text, calls = parse_actions(response.text, first_id=earlier + 1)
        stop = response.stop_reason
        if stop == "end" and calls:
            stop = "tool_use"
        return replace(response, text=text, tool_calls=calls, stop_reason=stop, extra=_extra(response, calls))


def as_plain_text(request: ChatRequest) -> ChatRequest:
    """The request with no tools: they are described in the system text, earlier calls are written back as action
    blocks, and tool results become user turns labelled as results (runs of them merged into one turn, since
    some chat templates require user and assistant turns to alternate)."""
    names = {call.id: call.name for turn in request.turns for call in turn.tool_calls}
    turns: list[Turn] = []
    for turn in request.turns:
        if turn.role == "assistant":
            blocks = [_render_call(call) for call in turn.tool_calls]
            turns.append(Turn("assistant", "\n\n".join(part for part in [turn.text, *blocks] if part)))
            continue
        text = turn.text if turn.role == "user" else _render_result(turn, names.get(turn.tool_call_id or "", ""))
        if turns and turns[-1].role == "user":
            turns[-1] = Turn("user", f"{turns[-1].text}\n\n{text}")
        else:
            turns.append(Turn("user", text))
    system = "\n\n".join(part for part in [request.system, render_tools_as_text(request.tools)] if part)
    return replace(request, system=system, turns=tuple(turns), tools=())


def _render_call(call: ToolCall) -> str:
    body = {"tool": call.name, "arguments": call.arguments if call.arguments is not None else {}}
    return f"```action\n{json.dumps(body)}\n```"


def _render_result(turn: Turn, tool: str) -> str:
    label = f"Result of action {turn.tool_call_id}" + (f" ({tool})" if tool else "")
    if turn.is_error:
        label += " — it failed"
    return f"[{label}]\n{turn.text}"


def _extra(response: ChatResponse, calls: Sequence[ToolCall]) -> dict[str, Any]:
    return {**response.extra, "textual_tools": True, "actions": len(calls)}
