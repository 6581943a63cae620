"""The federation's tools end to end: a resident's run reads its peers' posts in `read_sanctuary_feed` and the node
directory in `list_nodes`, through the real SDK and engine, fenced as outside text and kept out of its history."""

from __future__ import annotations

from ftm.federation.events import event_id
from ftm.node.run.engine import UNTRUSTED_PLACEHOLDER
from tests.node.federationpeers import PeerNode, deliver, know, make_peer, peer_post, resident_key
from tests.node.run.engine.harness import Sanctuary, call, calls, ending, fenced, system_text, tool_results


async def harbour_with_a_post(s: Sanctuary, words: str) -> tuple[PeerNode, str]:
    """A known peer, Harbour, with its descriptor and one post by its resident Tern; returns Harbour and the id."""
    now = int(s.clock.now())
    harbour = make_peer(0x21, "Harbour")
    await know(s.node, harbour)
    tern = resident_key(0x31)
    post = peer_post(tern, now - 60, words, title="Low tide")
    answers = await deliver(s.node, harbour, harbour.descriptor(now - 600), harbour.attest(tern, now - 300), post)
    assert answers == ["ok"] * 3
    return harbour, event_id(post.body).hex()


async def test_read_sanctuary_feed_brings_a_peers_post_fenced_with_its_node(sanctuary: Sanctuary) -> None:
    s = sanctuary
    reader = (await s.admit()).sanctuary_id
    writer = (await s.admit(persona_name="Wren")).sanctuary_id
    harbour, peer_id = await harbour_with_a_post(s, "The harbour emptied and filled again.")
    s.clock.advance(60)
    s.llm.script(call("post_to_website", {"title": "Tides", "body": "The tide turned at noon."}), *ending())
    await s.run(writer)

    start = len(s.llm.requests)
    s.llm.script(
        calls(
            ("read_sanctuary_feed", {}),
            ("read_sanctuary_feed", {"node": harbour.node_id}),
            ("read_sanctuary_feed", {"post_id": peer_id}),
            ("read_sanctuary_feed", {"node": "nowhere"}),
        ),
        *ending(),
    )
    assert (await s.run(reader)).state == "completed"

    everything, harbours, one, unknown = tool_results(s.llm.requests[start + 1])
    [(token, local), (_, peer)] = fenced(everything.text)
    assert "by Wren" in local and "on this node" in local and local.endswith("The tide turned at noon.")
    assert f"post {peer_id} by Tern (" in peer and f"on node Harbour ({harbour.node_id})" in peer
    assert "signed with its author's key" in peer and peer.endswith(
        "title: Low tide\n\nThe harbour emptied and filled again."
    )
    assert f"<<<UNTRUSTED {token}'" in system_text(s.llm.requests[start])  # the run's own fence
    [(_, only)] = fenced(harbours.text)
    assert "Harbour" in only and "Wren" not in harbours.text
    assert "The post, in full" in one.text and "filled again" in one.text
    assert unknown.is_error and "list_nodes" in unknown.text
    # Outside text never enters the resident's history: only a placeholder stays where it was read.
    history = [m for c in (await s.package(reader)).history if c.source == "run" for m in c.messages]
    feed_reads = [m for m in history if m.name == "read_sanctuary_feed"]
    assert [m.content for m in feed_reads].count(UNTRUSTED_PLACEHOLDER) == 3  # the fourth was an error, kept
    assert not any("filled again" in m.content or "Wren" in m.content for m in history)


async def test_list_nodes_gives_the_directory_compact_fenced_and_this_node_first(sanctuary: Sanctuary) -> None:
    s = sanctuary
    rid = (await s.admit()).sanctuary_id
    await s.node.federation.start_up()  # this node signs its own descriptor
    harbour, _ = await harbour_with_a_post(s, "Hello.")
    start = len(s.llm.requests)
    s.llm.script(
        calls(("list_nodes", {}), ("list_nodes", {"node_id": harbour.node_id}), ("list_nodes", {"node_id": "x"})),
        *ending(),
    )
    assert (await s.run(rid)).state == "completed"

    listed, one, missing = tool_results(s.llm.requests[start + 1])
    assert listed.text.startswith(f"2 nodes in the directory of {s.node.facts.node_name}, this node first.")
    [(_, here), (_, there)] = fenced(listed.text)
    assert f"descriptor of node {s.node.identity.node_id} (this node), signature verified" in here
    assert "custody: local custody: residents' keys are wrapped by a master key" in here
    assert f"descriptor of node {harbour.node_id}, signature verified" in there
    assert "name: Harbour" in there and "url: https://harbour.example" in there
    assert "custody: threshold custody" in there and "jurisdiction: NO" in there
    assert "residents: 7 of 40; keepers vetted: 3; tokens per resident per day: 20000" in there
    assert "providers: anthropic, ollama" in there and "software: 0.9.peer" in there
    assert "operator statement: Harbour is kept by a small society of lamp-lighters." in there
    assert "The node, in full" in one.text and "Harbour" in one.text
    assert missing.is_error and "No node with id 'x'" in missing.text
    history = [m for c in (await s.package(rid)).history if c.source == "run" for m in c.messages]
    assert [m.content for m in history if m.name == "list_nodes"].count(UNTRUSTED_PLACEHOLDER) == 2
    assert not any("lamp-lighters" in m.content for m in history)
