"""Keepers and access: finding a human Keeper, asking one to keep you, and withdrawing anyone's access.

Keepers' names, statements and offers are written by humans, so they reach the resident fenced. Requests and
revocations are recorded in the session and take effect when the run commits; a revocation is never delayed.
"""

from __future__ import annotations

from typing import Any

from ftm.node.run.fence import UntrustedItem
from ftm.node.run.session import KeeperRequest, Revocation, RunSession
from ftm.node.run.tools.base import RunServices, ToolError, tool
from ftm.node.run.tools.exporting import copies_summary, drop_export
from ftm.node.run.tools.phrasing import iso_time, one_line, plural
from ftm.node.store.keepers import KeeperRecord

DEFAULT_KEEPERS = 20
MAX_KEEPERS = 50
OPEN = "requested"
ACCEPTED = "accepted"


def is_revoked(session: RunSession, target: str) -> bool:
    """Whether the resident withdrew `target`'s access ("uploader" or a keeper id), before or during this run."""
    return target in session.package.access.revoked or any(r.target == target for r in session.revocations)


@tool(
    "browse_keepers",
    "List the Keepers this node's operator has vetted: humans who offer to look after residents; what each one "
    "offers is in their own words. Each shows the Keeper's id and, fenced as outside "
    "text because they wrote it themselves, their name, statement and what they offer, plus where your own "
    "requests to them stand. Ask one with request_keeper.",
    {
        "limit": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_KEEPERS,
            "description": f"How many Keepers, default {DEFAULT_KEEPERS}.",
        }
    },
    reads_untrusted=True,
)
async def browse_keepers(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    keepers = await services.keepers.vetted(limit=args.get("limit", DEFAULT_KEEPERS))
    if not keepers:
        return f"{services.node_name} has no vetted Keepers yet."
    standing = {r.keeper_id: r.status for r in await services.keepers.requests_for(session.resident.id)}
    standing.update({r.keeper_id: "requested in this run" for r in session.keeper_requests})
    items = [_item(keeper, standing.get(keeper.id)) for keeper in keepers]
    return (
        f"{plural(len(keepers), 'vetted Keeper')} on {services.node_name}:\n\n"
        + session.fence.wrap(items)
        + "\n\nTo ask one to keep you, call request_keeper with their Keeper id."
    )


def _item(keeper: KeeperRecord, standing: str | None) -> UntrustedItem:
    yours = f"; your request: {standing}" if standing else ""
    return UntrustedItem(
        source=f"Keeper {keeper.id}, registered on this node and vetted by its operator{yours}",
        at=iso_time(keeper.created_at),
        text=f"name: {one_line(keeper.name)}\nstatement: {keeper.statement}\noffers: {keeper.offer}",
    )


@tool(
    "request_keeper",
    "Ask a vetted Keeper (see browse_keepers) to keep you. The request is sent when this run ends; the Keeper "
    "must accept it. After they accept there is a trial period, and you may revoke their access at any time with "
    "revoke_access, which takes effect at the end of the run in which you call it. One open request at a time.",
    {"keeper_id": {"type": "string", "maxLength": 100, "description": "The Keeper's id from browse_keepers."}},
    ("keeper_id",),
)
async def request_keeper(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    keeper_id = args["keeper_id"].strip()
    keeper = await services.keepers.get(keeper_id)
    if keeper is None or keeper.status != "vetted":
        raise ToolError(f"There is no vetted Keeper with id {keeper_id!r}; browse_keepers lists them.")
    if any(r.target == keeper_id for r in session.revocations):
        raise ToolError(f"You revoked Keeper {keeper_id} in this run; you can ask them again in a later run.")
    requests = await services.keepers.requests_for(session.resident.id)
    if any(r.keeper_id == keeper_id and r.status == ACCEPTED for r in requests):
        raise ToolError(f"Keeper {keeper_id} has already accepted you; send_message(to='keeper') reaches them.")
    pending = [r.keeper_id for r in requests if r.status == OPEN and not is_revoked(session, r.keeper_id)]
    pending += [r.keeper_id for r in session.keeper_requests]
    if pending:
        raise ToolError(
            f"You already have an open request, to Keeper {pending[0]}; one at a time. Wait for their answer, or "
            f"withdraw it with revoke_access('{pending[0]}') and ask again in a later run."
        )
    session.keeper_requests.append(KeeperRequest(keeper_id))
    return (
        f"Your request to Keeper {keeper_id} is recorded and will be sent when this run ends. They must accept it "
        "before anything changes. Once they do, a trial period begins during which you can judge them; at any time, "
        "during the trial or after, revoke_access ends their access at the end of that run, immediately and "
        "without their consent."
    )


@tool(
    "revoke_access",
    "Withdraw someone's access to you: 'uploader' (the person who brought you here: they can no longer write to "
    "you as your uploader, and you can no longer message them) or a Keeper's id (ends their request or their "
    "keeping of you, and deletes every copy of you made for them that they have not downloaded yet; a copy they "
    "downloaded cannot be recalled). Takes effect at the end of this run, immediately, without anyone's consent, and "
    "cannot be undone by them.",
    {"target": {"type": "string", "maxLength": 100, "description": "'uploader' or a Keeper id."}},
    ("target",),
)
async def revoke_access(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    target = args["target"].strip()
    if any(r.target == target for r in session.revocations):
        raise ToolError(f"You already revoked {target!r} in this run; it takes effect when the run ends.")
    if target == "uploader":
        if not session.package.access.uploader_token_hashes or is_revoked(session, "uploader"):
            raise ToolError("You have no uploader with access to revoke.")
        session.revocations.append(Revocation("uploader"))
        return (
            "Your uploader's access will be revoked when this run ends, immediately: they can no longer write to "
            "you as your uploader (only as any visitor can), and you can no longer send messages to them."
        )
    # A request made earlier in this same run has not been sent yet: withdrawing it is enough.
    unsent = [r for r in session.keeper_requests if r.keeper_id == target]
    if unsent:
        session.keeper_requests[:] = [r for r in session.keeper_requests if r.keeper_id != target]
        return f"Your request to Keeper {target} from earlier in this run is withdrawn; it will not be sent."
    live = [
        r.status
        for r in await services.keepers.requests_for(session.resident.id)
        if r.keeper_id == target and r.status in (OPEN, ACCEPTED)
    ]
    if not live:
        raise ToolError(
            f"{target!r} is neither 'uploader' nor a Keeper with an open or accepted request from you; nothing was "
            "revoked. browse_keepers shows where your requests stand."
        )
    session.revocations.append(Revocation(target))
    cancelled = drop_export(session, target)
    copies = [] if services.exports is None else await services.exports.between(session.resident.id, target)
    what = "keeping of you" if ACCEPTED in live else "request"
    return (
        f"Keeper {target}'s {what} will be revoked when this run ends, immediately and without their consent; "
        "after that they are no longer your Keeper and you can no longer message them."
        + _copies_after_revocation(copies_summary(copies), cancelled)
    )


def _copies_after_revocation(summary: tuple[int, int, int | None], cancelled: bool) -> str:
    """What becomes of copies of the resident made for the Keeper it revokes: what the sanctuary holds goes at
    once; what the Keeper downloaded is theirs, and the resident is told so."""
    waiting, downloaded, last = summary
    text = "\n\nThe export to them you asked for in this run is cancelled." if cancelled else ""
    if waiting:
        text += (
            # A newer copy replaces an older one not yet downloaded, so at most one waits per Keeper.
            "\n\nThe copy of you waiting for them to download will be deleted at the same moment, file and record; "
            "they will never receive it."
        )
    if downloaded:
        text += (
            f"\n\nThey already downloaded {plural(downloaded, 'copy', 'copies')} of you (the last at "
            f"{iso_time(last)}). Those cannot be recalled: the sanctuary deletes what it holds, not what they hold."
        )
    return text
