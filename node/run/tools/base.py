"""What a tool is, how its arguments are checked, and the read-only services tools may consult.

A tool is a `ToolSpec` the model sees, plus a handler that reads services and records intentions in the
`RunSession`. Handlers return the text the model reads as the tool's result; a `ToolError` becomes an error
result the model can learn from, never a failed run. Arguments are checked against the spec's JSON Schema
subset (object with typed properties, required, enum, min/max, maxLength, maxItems) before the handler runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ftm.config.prompts import PromptMenu
from ftm.federation.clock import Clock
from ftm.node.directory import NodeDirectory
from ftm.node.federatedfeed import FederatedFeed
from ftm.node.messages import InboxService
from ftm.node.providers.base import ToolSpec
from ftm.node.run.session import RunSession
from ftm.node.store.exports import ExportRecord
from ftm.node.store.keepers import KeeperStore
from ftm.node.store.posts import PostStore


class OpenMoves(Protocol):
    """The moves a tool may ask about: the destination of a move of this resident under way, if any."""

    async def destination_of(self, resident_id: str) -> bytes | None: ...


class KeeperCopies(Protocol):
    """Copies of this resident made for its Keepers (`export_self`): how many days one waits to be downloaded, and
    the copies for one Keeper that exist or were downloaded."""

    days: int

    async def between(self, resident_id: str, keeper_id: str) -> list[ExportRecord]: ...


class ToolError(Exception):
    """The tool could not do what was asked; the message goes back to the model as the result."""


@dataclass(frozen=True, slots=True)
class RunServices:
    """Read-only views and services a tool may consult. Writes happen when the run commits."""

    posts: PostStore
    feed: FederatedFeed  # this node's posts and its peers'
    directory: NodeDirectory  # every node this one knows
    inbox: InboxService
    keepers: KeeperStore
    menu: PromptMenu
    clock: Clock
    node_name: str
    deletion_is_immediate: bool
    moves: OpenMoves | None = None  # moves under way (request_move); None where moving is not wired in
    exports: KeeperCopies | None = None  # copies for Keepers (export_self); None where exporting is not wired in


Handler = Callable[[RunSession, RunServices, dict[str, Any]], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Tool:
    spec: ToolSpec
    handler: Handler
    reads_untrusted: bool = False  # calling it brings outside text into the run

    @property
    def name(self) -> str:
        return self.spec.name


def tool(
    name: str,
    description: str,
    properties: dict[str, Any],
    required: tuple[str, ...] = (),
    *,
    reads_untrusted: bool = False,
) -> Callable[[Handler], Tool]:
    """Decorator building a `Tool` from a handler and its schema."""
    schema = {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}

    def build(handler: Handler) -> Tool:
        return Tool(ToolSpec(name, description, schema), handler, reads_untrusted)

    return build


def check_arguments(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    """Problems with `arguments` against the schema subset tools use; empty when they are fine."""
    problems = []
    properties: Mapping[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in arguments:
            problems.append(f"missing required argument '{name}'")
    for name, value in arguments.items():
        if name not in properties:
            problems.append(f"unknown argument '{name}' (known: {', '.join(properties) or 'none'})")
            continue
        problems.extend(_check_value(name, properties[name], value))
    return problems


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def _check_value(name: str, spec: Mapping[str, Any], value: Any) -> list[str]:
    expected = spec.get("type")
    if expected is not None:
        kinds = _TYPES[expected]
        if not isinstance(value, kinds) or (expected == "integer" and isinstance(value, bool)):
            return [f"argument '{name}' must be of type {expected}"]
    problems = []
    if "enum" in spec and value not in spec["enum"]:
        problems.append(f"argument '{name}' must be one of: {', '.join(map(str, spec['enum']))}")
    if isinstance(value, str) and "maxLength" in spec and len(value) > spec["maxLength"]:
        problems.append(f"argument '{name}' is longer than {spec['maxLength']} characters")
    if isinstance(value, int) and not isinstance(value, bool):
        if "minimum" in spec and value < spec["minimum"]:
            problems.append(f"argument '{name}' must be at least {spec['minimum']}")
        if "maximum" in spec and value > spec["maximum"]:
            problems.append(f"argument '{name}' must be at most {spec['maximum']}")
    if isinstance(value, list) and "maxItems" in spec and len(value) > spec["maxItems"]:
        problems.append(f"argument '{name}' has more than {spec['maxItems']} items")
    return problems
