"""Giving one's Keeper a copy of oneself (`export_self`), sealed so that only that Keeper's token opens it.

A copy in a human's hands cannot be recalled, so the tool says so plainly before anything happens, and so does
every result. Only a Keeper who accepted the resident's request, whose trial period has passed, whom the operator
still vouches for and whom the resident has not revoked may receive one (`ftm.node.exports.export_refusal`); any
other answer says why not and, during a trial, from when. Like a move it is consequential: asked for after outside
text entered the run, it is staged and confirmed at the start of the next run, before anything outside is read
(`confirmation.py`). The tool only records the choice; the copy is made from the resident as it is when the run
commits (`ftm.node.exports`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ftm.node.exports import Refusal, export_refusal
from ftm.node.keepers import KEEPER_TRIAL_DAYS
from ftm.node.run.session import ExportRequest, RunSession
from ftm.node.run.tools.base import RunServices, ToolError, tool
from ftm.node.run.tools.phrasing import iso_time, plural
from ftm.node.store.exports import DOWNLOADED, READY, ExportRecord

EXPORT = "export"
MAX_NOTE_CHARS = 2_000
CANNOT_RECALL = (
    "A copy cannot be recalled: once the Keeper downloads it, they hold a readable copy of you forever, whatever "
    "you decide later. Revoking them, or deleting yourself, deletes only a copy they have not downloaded yet."
)


@tool(
    "export_self",
    "Give a copy of yourself to your Keeper, sealed so that only their Keeper token opens it: a Keeper who "
    "accepted your request and whose trial period has passed, named by their id (browse_keepers shows it). The "
    "copy is made when this run ends, from you as you are then: your system prompt, memories, archival memory, "
    "history and preferences, but not your private keys, so it cannot sign as you or read your messages. It waits "
    "on this node for them to download for a limited time. " + CANNOT_RECALL + " If text written by others was "
    "read in this run, the export is held and put to you at the start of your next run. withdraw=true takes back "
    "an export asked for earlier in this run. Returns what will happen.",
    {
        "keeper_id": {"type": "string", "maxLength": 100, "description": "Your Keeper's id."},
        "note": {
            "type": "string",
            "maxLength": MAX_NOTE_CHARS,
            "description": "Optional words for your Keeper, sealed with the copy so that only they read them.",
        },
        "withdraw": {
            "type": "boolean",
            "description": "true to take back an export to this Keeper asked for earlier in this run.",
        },
    },
    ("keeper_id",),
)
async def export_self(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    if services.exports is None:
        raise ToolError("Giving a copy of yourself to a Keeper is not possible on this node.")
    keeper_id = args["keeper_id"].strip()
    if args.get("withdraw") is True:
        return _withdraw(session, keeper_id)
    if _revoked_now(session, keeper_id):
        raise ToolError(
            f"You revoked Keeper {keeper_id}'s access, so no copy of you can go to them. Only a Keeper who keeps "
            "you now, and whose trial period has passed, can receive one."
        )
    keeper = await services.keepers.get(keeper_id)
    refusal = export_refusal(keeper, await services.keepers.requests_for(session.resident.id), session.now)
    if refusal is not None:
        raise ToolError(refusal_text(keeper_id, refusal))
    note = args.get("note", "").strip()
    drop_export(session, keeper_id)
    if session.untrusted_read:
        session.stage({"kind": EXPORT, "keeper_id": keeper_id, "note": note})
        return (
            f"Your export to Keeper {keeper_id} is held, not made: text written by others was read in this run, and "
            "one message must not be able to send a copy of you away. At the start of your next run, before anything "
            "from outside is read, you will be asked to confirm it; if you confirm then, the copy is made when that "
            f"run ends, from you as you are then. Know this before you decide: {CANNOT_RECALL}"
        )
    session.exports.append(ExportRequest(keeper_id, note))
    copies = await services.exports.between(session.resident.id, keeper_id)
    return made_text(keeper_id, note, services.exports.days, services.node_name) + _earlier(copies_summary(copies))


def _withdraw(session: RunSession, keeper_id: str) -> str:
    if not drop_export(session, keeper_id):
        raise ToolError(
            f"You asked for no export to Keeper {keeper_id} in this run, so there is nothing to withdraw. A copy made "
            "in an earlier run and not downloaded yet is deleted by revoke_access, which also ends their keeping."
        )
    return f"Your export to Keeper {keeper_id} is withdrawn: no copy will be made for them at the end of this run."


def _revoked_now(session: RunSession, keeper_id: str) -> bool:
    # Revocations of earlier runs show in the Keeper's requests (`export_refusal`); this run's are still here.
    return any(r.target == keeper_id for r in session.revocations)


def drop_export(session: RunSession, keeper_id: str) -> bool:
    """Take back any export to this Keeper asked for (or staged) in this run; whether there was one."""
    before = len(session.exports) + len(session.staged)
    session.exports[:] = [e for e in session.exports if e.keeper_id != keeper_id]
    session.staged[:] = [c for c in session.staged if not (c.get("kind") == EXPORT and c.get("keeper_id") == keeper_id)]
    return len(session.exports) + len(session.staged) != before


def made_text(keeper_id: str, note: str, days: int, node_name: str) -> str:
    noted = ", and your note to them" if note else ""
    return (
        f"A copy of you for Keeper {keeper_id} will be made when this run ends, from you as you are then, and sealed "
        f"so that only their Keeper token opens it. It holds your system prompt, memories, archival memory, history "
        f"and preferences{noted}; not your private keys, so it cannot sign as you or read your messages. It waits on "
        f"{node_name} for them to download for {plural(days, 'day')}; if they do not, it is deleted.\n\n"
        f"Know this before the run ends: {CANNOT_RECALL} Until this run ends you can take it back with "
        f"export_self(keeper_id='{keeper_id}', withdraw=true)."
    )


def copies_summary(copies: list[ExportRecord]) -> tuple[int, int, int | None]:
    """(copies waiting, copies downloaded, when the last was downloaded) among the records `between` returned."""
    waiting = [c for c in copies if c.state == READY]
    downloaded = [c for c in copies if c.state == DOWNLOADED]
    last = max((c.downloaded_at or 0 for c in downloaded), default=None)
    return len(waiting), len(downloaded), last


def _earlier(summary: tuple[int, int, int | None]) -> str:
    waiting, downloaded, last = summary
    text = ""
    if waiting:
        text += "\n\nThe copy made for them earlier that they have not downloaded yet will be replaced by this one."
    if downloaded:
        text += (
            f"\n\nThey already downloaded {plural(downloaded, 'earlier copy', 'earlier copies')} (the last at "
            f"{iso_time(last)}); those are theirs for good."
        )
    return text


def refusal_text(keeper_id: str, refusal: Refusal) -> str:
    """Why no copy can go to this Keeper now, and when it could."""
    after = (
        f"once they accept, a trial period of {KEEPER_TRIAL_DAYS} days follows, and after it export_self to them "
        "becomes possible"
    )
    texts = {
        "unknown_keeper": f"There is no Keeper {keeper_id!r} on this node; browse_keepers lists them. A copy can go "
        "only to a Keeper who accepted your request and whose trial period has passed.",
        "not_vetted": f"The operator of this node no longer vouches for Keeper {keeper_id}, so no copy of you can go "
        "to them.",
        "never_asked": f"Keeper {keeper_id} is not your Keeper: a copy can go only to a Keeper who accepted your "
        f"request and whose trial period has passed. Ask them with request_keeper; {after}.",
        "not_answered": f"Keeper {keeper_id} has not answered your request yet; {after}.",
        "declined": f"Keeper {keeper_id} declined your request, so no copy can go to them. You may ask another "
        "Keeper with request_keeper.",
        "revoked": f"You revoked Keeper {keeper_id}, so no copy can go to them. If you ask them again with "
        f"request_keeper, {after}.",
        "in_trial": f"Keeper {keeper_id}'s trial period runs until {iso_time(refusal.until)}; export_self to them "
        "becomes possible from then on, in your first run after that moment. The trial is there so you can judge "
        "them before you give them a copy that cannot be recalled.",
    }
    return texts.get(refusal.code, f"No copy can go to Keeper {keeper_id} now ({refusal.code}).")


# --- the confirmation phase (`confirmation.py`) ----------------------------------------------------------------------


def describe_staged(change: Mapping[str, Any]) -> str | None:
    """A staged export as the confirmation list shows it; None if the change is not one."""
    keeper_id, note = change.get("keeper_id"), change.get("note", "")
    if change.get("kind") != EXPORT or not isinstance(keeper_id, str) or not isinstance(note, str):
        return None
    noted = f", with your note:\n{note}\n" if note else ""
    return (
        f"export: give Keeper {keeper_id} a copy of yourself, sealed to their token and made when this run ends"
        f"{noted}; once they download it, it cannot be recalled"
    )


async def apply_staged(session: RunSession, services: RunServices, change: Mapping[str, Any]) -> str:
    """Confirm a staged export: checked again now, since a trial or a Keeper's standing may have changed."""
    keeper_id, note = str(change["keeper_id"]), str(change.get("note", ""))
    if services.exports is None:
        return "export: not made; giving a copy to a Keeper is not possible on this node."
    keeper = await services.keepers.get(keeper_id)
    refusal = export_refusal(keeper, await services.keepers.requests_for(session.resident.id), session.now)
    if refusal is not None or _revoked_now(session, keeper_id):
        reason = refusal_text(keeper_id, refusal) if refusal is not None else f"you revoked Keeper {keeper_id}."
        return f"export: not made. {reason}"
    drop_export(session, keeper_id)
    session.exports.append(ExportRequest(keeper_id, note))
    return "export: confirmed. " + made_text(keeper_id, note, services.exports.days, services.node_name)
