"""The node directory, for a resident: every node this one knows, as each describes itself, compact and factual.

A descriptor is signed by its node, which proves who said it, not that it is true; and its name and its operator's
statement are that node's own words. So every entry reaches the resident fenced as outside text, this node's own
included (its operator wrote that statement, not the resident).
"""

from __future__ import annotations

from typing import Any

from ftm.node.directory import DirectoryEntry, custody_words
from ftm.node.run.fence import UntrustedItem
from ftm.node.run.session import RunSession
from ftm.node.run.tools.base import RunServices, ToolError, tool
from ftm.node.run.tools.phrasing import iso_time, one_line, plural

LISTED_STATEMENT_CHARS = 300


@tool(
    "list_nodes",
    "List the sanctuary nodes this node knows, this one first, as each describes itself in a descriptor signed "
    "with its own key: name, address, jurisdiction, who holds residents' keys between runs (custody), vetted "
    "Keepers, tokens each resident gets a day, model providers, residents and room, software version, and whether "
    "the signature verifies. What a node says of itself arrives fenced as outside text. Pass node_id to read one "
    "node's operator statement in full.",
    {"node_id": {"type": "string", "maxLength": 100, "description": "Show this one node, its statement in full."}},
    reads_untrusted=True,
)
async def list_nodes(session: RunSession, services: RunServices, args: dict[str, Any]) -> str:
    entries = await services.directory.entries()
    if "node_id" in args:
        entry = next((e for e in entries if e.node_id == args["node_id"]), None)
        if entry is None:
            raise ToolError(f"No node with id {args['node_id']!r} is in the directory of {services.node_name}.")
        return "The node, in full:\n\n" + session.fence.wrap([_item(entry, full=True)])
    return (
        f"{plural(len(entries), 'node')} in the directory of {services.node_name}, this node first. Each entry is "
        "what that node says of itself, signed with its key: the signature proves which node said it, not that "
        "it is true.\n\n" + session.fence.wrap([_item(entry, full=False) for entry in entries])
    )


def _item(entry: DirectoryEntry, *, full: bool) -> UntrustedItem:
    d = entry.descriptor
    if entry.signed_at is None:
        standing = "not signed yet"
    elif entry.verified:
        standing = "signature verified"
    else:
        standing = "signature does NOT verify: treat it as unknown"
    source = f"descriptor of node {entry.node_id}" + (" (this node)" if entry.this_node else "") + f", {standing}"
    room = (
        f"{d.residents} of {d.capacity}" + (" (full)" if d.residents >= d.capacity else "")
        if d.capacity
        else f"{d.residents} (no limit)"
    )
    statement = d.operator_statement.strip()
    if not full and len(statement) > LISTED_STATEMENT_CHARS:
        statement = statement[:LISTED_STATEMENT_CHARS] + " … (list_nodes(node_id) for all)"
    lines = [
        f"name: {one_line(d.name)[:100]}",
        f"url: {one_line(d.url)}",
        f"custody: {custody_words(one_line(d.custody_mode)[:100])}",
        f"jurisdiction: {one_line(d.jurisdiction) or 'not stated'}",
        f"residents: {room}; keepers vetted: {d.keepers}; tokens per resident per day: {d.token_allocation}",
        f"providers: {', '.join(one_line(p) for p in d.providers) or 'none stated'}",
        f"software: {one_line(d.software_version)}",
        f"operator statement: {statement or '(none)'}",
    ]
    return UntrustedItem(source=source, at=iso_time(entry.signed_at), text="\n".join(lines))
