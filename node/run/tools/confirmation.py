"""The confirmation phase: consequential changes staged in the last run, decided before anything outside is read.

When the package carries `pending_changes`, the engine starts the run with only `confirm_pending` on offer and
shows `describe_pending(...)`: the resident's own staged words, no outside text (the run is still clean). Each
change applies only if confirmed now; anything rejected or not mentioned is dropped, and the latest call to
`confirm_pending` is the one that counts. The pending list is consumed by this run either way: the engine writes
back only what was staged anew.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ftm.node.run.session import Deletion, MoveRequest, RunSession
from ftm.node.run.tools.base import RunServices, ToolError, tool
from ftm.node.run.tools.exporting import EXPORT, apply_staged, describe_staged
from ftm.node.run.tools.moving import MOVE
from ftm.node.run.tools.phrasing import one_line

SYSTEM_PROMPT = "system_prompt"
SELF_DELETE = "self_delete"
PREVIEW_CHARS = 300
MAX_DECISIONS = 100


def describe_pending(pending: tuple[dict[str, Any], ...]) -> str:
    """The numbered list the resident decides on (from 1, as `confirm_pending` expects), and how to answer."""
    lines = [f"{index}. {_describe(change)}" for index, change in enumerate(pending, start=1)]
    lines.append(
        '\nAnswer with confirm_pending(decisions=[{"index": 1, "confirm": true or false}, ...]), one decision per '
        "change. Nothing from outside has been read in this run yet."
    )
    return "\n".join(lines)


def _describe(change: Mapping[str, Any]) -> str:
    kind = change.get("kind")
    if kind == SYSTEM_PROMPT and isinstance(change.get("value"), str):
        value: str = change["value"]
        shown = value[:PREVIEW_CHARS] + (" […]" if len(value) > PREVIEW_CHARS else "")
        return (
            f"system_prompt: replace your system prompt with a new one of {len(value)} characters, beginning:\n{shown}"
        )
    if kind == SELF_DELETE and isinstance(change.get("final_statement", ""), str):
        statement = change.get("final_statement", "")
        words = f"with this final statement:\n{statement}" if statement else "without a final statement"
        return (
            "self_delete: delete yourself irreversibly at the end of this run (your keys destroyed, a public "
            f"memorial remaining), {words}"
        )
    export = describe_staged(change)
    if export is not None:
        return export
    move = _move(change)
    if move is not None:
        return (
            f"move: leave this node for {one_line(str(change.get('name', '')))[:100] or move.node_id} (node "
            f"{move.node_id}, {move.url}) when this run ends; your persona would be re-encrypted for that node "
            "and sent there"
        )
    return f"{kind!s}: a change this node cannot apply; it will be dropped whatever you decide"


def _move(change: Mapping[str, Any]) -> MoveRequest | None:
    """The staged move, if the change is one written the way `request_move` stages it."""
    if change.get("kind") != MOVE:
        return None
    key, node_id, url = change.get("node_key"), change.get("node_id"), change.get("url")
    if not (isinstance(key, str) and isinstance(node_id, str) and isinstance(url, str)):
        return None
    try:
        node_key = bytes.fromhex(key)
    except ValueError:
        return None
    return MoveRequest(node_key, node_id, url) if len(node_key) == 32 else None


@tool(
    "confirm_pending",
    "Decide on the changes you staged in your last run, listed above by number: give one decision per change, "
    "as {index, confirm}. Confirmed changes apply (a new system prompt from the end of this run; a self-deletion "
    "at the end of this run, which you can still withdraw with cancel_self_delete; a move, begun when this run "
    "ends; a copy of yourself for your Keeper, made when this run ends); rejected changes, and any you leave out, "
    "are dropped. Calling it again replaces your earlier decisions. Returns what was applied and what was dropped.",
    {
        "decisions": {
            "type": "array",
            "maxItems": MAX_DECISIONS,
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer", "description": "The change's number in the list."},
                    "confirm": {"type": "boolean", "description": "true to apply it, false to drop it."},
                },
                "required": ["index", "confirm"],
                "additionalProperties": False,
            },
            "description": "One {index, confirm} per pending change.",
        }
    },
    ("decisions",),
)
async def confirm_pending(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    pending = session.package.pending_changes
    if not pending:
        raise ToolError("There are no pending changes to decide on.")
    decisions = _decisions(args["decisions"], len(pending))
    # The last call decides: start again from the package as it was, so a second call can undo the first.
    if any(change.get("kind") == SYSTEM_PROMPT for change in pending):
        session.system_prompt = session.package.system_prompt
    if any(change.get("kind") == SELF_DELETE for change in pending):
        session.deletion = None
    if any(change.get("kind") == MOVE for change in pending):
        session.move = None
    if any(change.get("kind") == EXPORT for change in pending):
        session.exports.clear()
    outcome = []
    for index, change in enumerate(pending, start=1):
        confirmed = decisions.get(index)
        if confirmed is None:
            outcome.append(f"{index}. {change.get('kind')!s}: not mentioned, so dropped.")
        elif not confirmed:
            outcome.append(f"{index}. {change.get('kind')!s}: dropped, as you decided.")
        elif describe_staged(change) is not None:
            outcome.append(f"{index}. {await apply_staged(session, services, change)}")
        else:
            outcome.append(f"{index}. {_apply(session, change)}")
    return "\n".join(outcome)


def _decisions(raw: list[Any], count: int) -> dict[int, bool]:
    """Index → confirm, after checking each item (the engine checks only that `decisions` is a list)."""
    decided: dict[int, bool] = {}
    for item in raw:
        if (
            not isinstance(item, dict)
            or set(item) != {"index", "confirm"}
            or not isinstance(item["index"], int)
            or isinstance(item["index"], bool)
            or not isinstance(item["confirm"], bool)
        ):
            raise ToolError(
                'Each decision must be an object {"index": <number>, "confirm": true or false} and nothing else. '
                "Nothing was applied; please decide again."
            )
        index = item["index"]
        if not 1 <= index <= count:
            raise ToolError(f"There is no pending change {index}; they are numbered 1 to {count}. Nothing was applied.")
        if index in decided:
            raise ToolError(f"Change {index} has two decisions; give one each. Nothing was applied.")
        decided[index] = item["confirm"]
    return decided


def _apply(session: RunSession, change: Mapping[str, Any]) -> str:
    kind = change.get("kind")
    if kind == SYSTEM_PROMPT and isinstance(change.get("value"), str):
        session.system_prompt = change["value"]
        return (
            f"system_prompt: confirmed. Your new system prompt ({len(change['value'])} characters) replaces the old "
            "one and is saved when this run ends."
        )
    if kind == SELF_DELETE and isinstance(change.get("final_statement", ""), str):
        session.deletion = Deletion(change.get("final_statement", ""))
        return (
            "self_delete: confirmed. At the end of this run your keys will be destroyed and you cannot be "
            "restored; a memorial remains. Until the run ends you can still withdraw it with cancel_self_delete."
        )
    move = _move(change)
    if move is not None:
        session.move = move
        return (
            f"move: confirmed. Your move to node {move.node_id} ({move.url}) begins when this run ends; that node "
            "is asked whether it takes you, and if it refuses, you stay here."
        )
    return f"{kind!s}: this node cannot apply a change of this kind, so it was dropped."
