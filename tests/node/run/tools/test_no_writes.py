"""Tools record intentions only: calling every one of them leaves the database exactly as it was."""

from __future__ import annotations

from typing import Any

from ftm.node.run.tools.base import Tool
from ftm.node.run.tools.catalog import confirmation_tools, run_tools
from tests.node.federationpeers import deliver, know, make_peer
from tests.node.run.tools.harness import Harness, add_keeper, add_request, admit, insert_post, snapshot

HARBOUR = make_peer(0x21, "Harbour")

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("confirm_pending", {"decisions": [{"index": 1, "confirm": True}]}),
    ("read_messages", {}),
    ("read_sanctuary_feed", {}),
    ("list_nodes", {}),
    ("browse_keepers", {}),
    ("remember", {"text": "archival"}),
    ("remember", {"text": "core", "block": "persona"}),
    ("replace_memory", {"block": "persona", "old": "core", "new": "kernel"}),
    ("create_memory_block", {"label": "notes", "value": "x"}),
    ("search_memory", {"query": "lighthouse"}),
    ("post_to_website", {"body": "hello world", "title": "Hi"}),
    ("send_message", {"to": "uploader", "text": "thank you"}),
    ("send_message", {"to": "keeper", "text": "hello keeper"}),
    ("request_keeper", {"keeper_id": "k-b"}),
    ("export_self", {"keeper_id": "k-a", "note": "for you"}),
    ("revoke_access", {"target": "k-a"}),
    ("revoke_access", {"target": "uploader"}),
    ("request_move", {"destination": HARBOUR.node_id}),
    ("browse_prompts", {"category": "rest"}),
    ("select_next_prompt", {"prompt_id": "rest-01"}),
    ("modify_self", {"name": "Lumen Two", "system_prompt": "New prompt.", "run_time": "08:00"}),
    ("bank_tokens", {"amount": 100}),
    ("self_delete", {"confirm": True, "final_statement": "bye"}),
    ("cancel_self_delete", {}),
]


async def test_no_tool_writes_to_the_database(harness: Harness) -> None:
    node = harness.node
    other = await admit(node, persona_name="Ember")
    await insert_post(node, other.sanctuary_id, created_at=1_800_000_000, body="from Ember")
    await add_keeper(node, "k-a")
    await add_keeper(node, "k-b")
    await add_request(node, harness.resident_id, "k-a", "accepted")
    await node.inbox.deliver(harness.resident_id, "hi", from_name="Ann", uploader_token=None, address="192.0.2.1")
    await know(node, HARBOUR)
    assert await deliver(node, HARBOUR, HARBOUR.descriptor(int(node.clock.now()) - 60)) == ["ok"]
    harness.with_package(pending_changes=({"kind": "system_prompt", "value": "Confirmed prompt."},))
    before = await snapshot(node.db)

    tools: dict[str, Tool] = {each.name: each for each in run_tools() + confirmation_tools()}
    for name, args in CALLS:
        await harness.call(tools[name], **args)

    assert {name for name, _ in CALLS} == set(tools)  # every tool was exercised
    assert await snapshot(node.db) == before
    recorded = harness.session
    assert recorded.posts and recorded.outgoing and recorded.revocations and recorded.keeper_requests
    # After outside text, the move and the system prompt are staged for the next run, not applied.
    assert recorded.move is None and recorded.delivered_message_ids
    # (The export to k-a was staged too, then dropped by revoking k-a.)
    assert {change["kind"] for change in recorded.staged} == {"move", "system_prompt"}
    [move] = [change for change in recorded.staged if change["kind"] == "move"]
    assert move["node_key"] == HARBOUR.key.public_key.hex()
