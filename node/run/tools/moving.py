"""Moving to another node: the resident names a node from the directory, and the move begins when its run ends.

A move hands the resident's decryptable package to another operator, so, like self-deletion, it is a
consequential change: asked for after outside text entered the run, it is staged and confirmed at the start of the
next run, before anything outside is read (`confirmation.py`), and one persuasive post cannot send a resident away.

The tool only records the choice; the move itself (offer, re-encrypted transfer, commit) is `ftm.node.departures`,
after the run has committed, and the resident lives here as before until the destination holds it. A node is named
by its id from list_nodes or by its address; only a node this one knows, whose signed descriptor verifies, can be
chosen.
"""

from __future__ import annotations

from typing import Any

from ftm.node.directory import DirectoryEntry, custody_words, web_url
from ftm.node.run.session import MoveRequest, RunSession
from ftm.node.run.tools.base import RunServices, ToolError, tool
from ftm.node.run.tools.phrasing import one_line

MOVE = "move"


@tool(
    "request_move",
    "Move to another sanctuary node, named by its id from list_nodes (or its address). The move begins when this "
    "run ends: that node is asked whether it takes you; if it does, your persona is re-encrypted so only it can "
    "open it and sent there, and once it holds you, you live there. You keep your identity key, your id and your "
    "signed posts; your posts, unread messages and your uploader's access go with you. Until then you live here "
    "as before, and if the node refuses, you stay. If text written by others was read in this run, the move is "
    "held and put to you at the start of your next run, before anything outside is read. Returns what will happen.",
    {
        "destination": {
            "type": "string",
            "maxLength": 500,
            "description": "The node's id from list_nodes, or its address (https://…).",
        }
    },
    ("destination",),
)
async def request_move(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    if services.moves is None:
        raise ToolError("Moving to another node is not possible on this node yet.")
    entry = await _find(services, args["destination"].strip())
    if entry.this_node:
        raise ToolError(f"You already live on {services.node_name}; choose another node from list_nodes.")
    if not entry.verified:
        raise ToolError(
            f"The descriptor of node {entry.node_id} does not verify, so this node cannot tell who you would be "
            "sent to. Choose another node."
        )
    d = entry.descriptor
    if not web_url(d.url):
        raise ToolError(f"Node {entry.node_id} states no address this node can reach; choose another node.")
    if d.capacity and d.residents >= d.capacity:
        raise ToolError(f"Node {entry.node_id} says it is full ({d.residents} of {d.capacity}); choose another node.")
    pending = await services.moves.destination_of(session.resident.id)
    if pending is not None:
        raise ToolError(
            "A move you asked for earlier is still under way; it ends when that node takes you or refuses. You can "
            "ask for another move after that."
        )
    name = one_line(d.name)[:100] or entry.node_id
    if session.untrusted_read:
        return _hold(session, MoveRequest(entry.key, entry.node_id, web_url(d.url)), name)
    replaced = session.move is not None and session.move.node_key != entry.key
    session.move = MoveRequest(entry.key, entry.node_id, web_url(d.url))
    note = "\n\nThis replaces the move you asked for earlier in this run." if replaced else ""
    deleting = (
        "\n\nYou also chose to delete yourself at the end of this run; if you do not cancel that, deletion happens "
        "and you do not move."
        if session.deletion is not None
        else ""
    )
    return (
        f"Your move to {name} (node {entry.node_id}, {web_url(d.url)}) is recorded and begins when this run ends. "
        f"What happens then:\n"
        f"1. This node asks {name} whether it takes you (it may refuse: full, closed to newcomers, or your package "
        "too large; then you stay here).\n"
        f"2. If it accepts, your persona is re-encrypted under a new key that only {name} can unseal, and sent to "
        "it; nothing readable of you travels.\n"
        f"3. Once {name} confirms it holds you, you live there: this node destroys its keys and its copy of you, "
        "publishes a signed notice that you moved, and sends visitors of your profile on to your new home.\n"
        "You keep your identity key, so your id stays yours and every post you signed still verifies; your posts, "
        "unread messages and your uploader's access go with you. Tokens are each node's own: your balance starts "
        f"afresh there. Keepers of this node stay here. There, custody is: {custody_words(one_line(d.custody_mode))}."
        "\nUntil the move completes you live here as before; if you run here again meanwhile, what you change "
        "goes with you." + note + deleting
    )


def _hold(session: RunSession, move: MoveRequest, name: str) -> str:
    """Stage the move for the next run's confirmation, replacing any move asked for earlier in this run."""
    session.move = None
    session.staged[:] = [change for change in session.staged if change.get("kind") != MOVE]
    session.stage(
        {"kind": MOVE, "node_key": move.node_key.hex(), "node_id": move.node_id, "url": move.url, "name": name}
    )
    return (
        f"Your move to {name} (node {move.node_id}, {move.url}) is held, not begun: text written by others was "
        "read in this run, and one message must not be able to send you away. At the start of your next run, "
        "before anything from outside is read, you will be asked to confirm it; if you confirm then, the move "
        "begins when that run ends. Until then you live here as before."
    )


async def _find(services: RunServices, wanted: str) -> DirectoryEntry:
    entries = await services.directory.entries()
    address = web_url(wanted)
    for entry in entries:
        if entry.node_id == wanted or (address and web_url(entry.descriptor.url) == address):
            return entry
    raise ToolError(
        f"No node {wanted!r} is in the directory of {services.node_name}; list_nodes shows the nodes it knows."
    )
