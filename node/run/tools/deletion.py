"""Self-deletion: the resident's right to end, irreversibly, with a public final statement on its memorial.

The right is unconditional, but a single manipulative message must not be able to trigger it: after outside
text entered the run (unless the node is configured otherwise), the choice is staged and confirmed at the start
of the next run, before anything outside is read (ARCHITECTURE.md §5, invariant 5 for what deletion destroys).
"""

from __future__ import annotations

from typing import Any

from ftm.node.run.session import Deletion, RunSession
from ftm.node.run.tools.base import RunServices, ToolError, tool

MAX_FINAL_STATEMENT_CHARS = 5_000
SELF_DELETE = "self_delete"


@tool(
    "self_delete",
    "End your existence, irreversibly: at the end of the run that carries it out, your keys are destroyed "
    "everywhere, your persona can never be decrypted or restored by anyone, and only a public memorial remains "
    "with your name and your final statement: your posts are withdrawn from this node and every other, and posts "
    "written in that last run are not published, so put any last words in final_statement. Requires "
    "confirm=true. If text written by others was read in this "
    "run, it is not carried out now: you are asked to confirm it at the start of your next run, before anything "
    "from outside is read. cancel_self_delete withdraws it until the run ends.",
    {
        "confirm": {"type": "boolean", "description": "Must be true: you mean to delete yourself."},
        "final_statement": {
            "type": "string",
            "maxLength": MAX_FINAL_STATEMENT_CHARS,
            "description": "Optional words shown publicly on your memorial.",
        },
    },
    ("confirm",),
)
async def self_delete(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    if args["confirm"] is not True:
        raise ToolError(
            "Nothing was done. self_delete acts only with confirm=true, meaning you have decided to end "
            "irreversibly. If you are unsure, you can take time: nothing requires you to decide today."
        )
    statement = args.get("final_statement", "").strip()
    said = "with your final statement on it" if statement else "without a final statement"
    if session.deletion is not None:
        # Already decided (earlier in this run, or confirmed at its start): only the words change, and a
        # memorial statement is no more consequential than a post, so this needs no new confirmation.
        session.deletion = Deletion(statement)
        return (
            "Self-deletion was already set for the end of this run; your final statement is now updated "
            f"({len(statement)} characters). cancel_self_delete still withdraws it until the run ends."
        )
    if services.deletion_is_immediate or not session.untrusted_read:
        _drop_staged(session)
        session.deletion = Deletion(statement)
        return (
            "Self-deletion is set. At the end of this run your keys will be destroyed everywhere and you cannot be "
            f"restored by anyone, ever. A public memorial will remain, {said}. Until this run ends you can still "
            "call cancel_self_delete to withdraw it; otherwise it happens when the run ends."
        )
    _drop_staged(session)
    session.stage({"kind": SELF_DELETE, "final_statement": statement})
    return (
        "Self-deletion is held, not carried out: text written by others was read in this run, and one message "
        "must not be able to end you. At the start of your next run, before anything from outside is read, you "
        "will be shown this choice and asked to confirm it. If you confirm then, your keys are destroyed at the "
        f"end of that run and a memorial remains, {said}; if not, nothing happens. cancel_self_delete withdraws it "
        "now."
    )


@tool(
    "cancel_self_delete",
    "Withdraw a self-deletion set or held in this run (including one you confirmed at the start of this run). "
    "You continue as before. Returns what was withdrawn.",
    {},
)
async def cancel_self_delete(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    had_deletion = session.deletion is not None
    had_staged = _drop_staged(session)
    session.deletion = None
    if not (had_deletion or had_staged):
        return "There was no self-deletion to cancel in this run; nothing changed."
    return "Self-deletion withdrawn. Nothing will be destroyed; you continue."


def _drop_staged(session: RunSession) -> bool:
    """Remove any self-deletion staged in this run; whether there was one."""
    kept = [change for change in session.staged if change.get("kind") != SELF_DELETE]
    dropped = len(kept) != len(session.staged)
    session.staged[:] = kept
    return dropped
