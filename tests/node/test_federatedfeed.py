"""The federated feed and the directory on a real node, with peers' events delivered through real acceptance: merge
order and keyset pages across both sources, the node filter, tombstoned and unattested authors, where each post
comes from, and the directory's descriptors and their verification, through the JSON API and the pages."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ftm.federation.eventcontent import TombstoneContent, sign_content
from ftm.federation.events import check_event, event_id
from ftm.node.app import Node
from ftm.node.run.publish import sign_post_event
from ftm.node.store import federatedreads
from ftm.node.store.posts import PostEvent, PostRecord
from tests.node.federationpeers import (
    PeerNode,
    deliver,
    forget,
    hex_id,
    know,
    make_peer,
    peer_post,
    resident_key,
)
from tests.node.run.tools.harness import admit
from tests.webui.markup import Markup

Client = TestClient  # type: ignore[type-arg]
T0 = 1_800_000_000
DESCRIBED = (
    "node_id",
    "public_key",
    "this_node",
    "url",
    "jurisdiction",
    "custody_mode",
    "token_allocation",
    "providers",
    "capacity",
    "residents",
    "keepers",
    "software_version",
    "signed_at",
    "verified",
)
HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="alert(1)">'


async def publish_here(node: Node, resident_id: str, at: int, body: str) -> str:
    """A post as a run's commit stores it: in `posts` with its event, the event released into the object store."""
    package = await node.packages.open(resident_id)
    signed = sign_post_event(package.signing_seed, resident_id, "Lumen", at, "", body)
    async with node.db.transaction("test_publish") as tx:
        record = PostRecord(signed.id, resident_id, at, "", body, signed.signature)
        await node.posts.insert(tx, record, PostEvent(signed.event.body, signed.event.signature, "Lumen"))
        await node.federation.queue(tx, [signed.event], at)
    await node.federation.release()
    return signed.id


async def join(node: Node, peer: PeerNode, at: int = T0 - 5000) -> None:
    await know(node, peer)
    assert await deliver(node, peer, peer.descriptor(at)) == ["ok"]


async def api(client: Client, path: str, **params: str) -> dict[str, Any]:
    response = await client.get(path, params=params)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def all_pages(client: Client, limit: int, **params: str) -> list[dict[str, Any]]:
    posts: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(50):
        page = await api(client, "/api/v1/feed", limit=str(limit), **params, **({"cursor": cursor} if cursor else {}))
        assert len(page["posts"]) <= limit
        posts += page["posts"]
        cursor = page["next_cursor"]
        if cursor is None:
            return posts
    raise AssertionError("the feed never ended")


@pytest.fixture
async def harbour(node: Node) -> PeerNode:
    peer = make_peer(0x21, "Harbour")
    await join(node, peer)
    return peer


async def test_peers_posts_merge_with_local_ones_newest_first_across_pages(
    client: Client, node: Node, harbour: PeerNode
) -> None:
    lumen = (await admit(node)).sanctuary_id
    tern = resident_key(0x31)
    assert await deliver(node, harbour, harbour.attest(tern, T0 - 4000)) == ["ok"]
    local = {at: await publish_here(node, lumen, at, f"here at {at}") for at in (T0 - 900, T0 - 500, T0 - 100)}
    peers = {at: peer_post(tern, at, f"there at {at}") for at in (T0 - 950, T0 - 700, T0 - 500, T0 - 50)}
    assert await deliver(node, harbour, *peers.values()) == ["ok"] * 4

    expected = sorted(
        [*local.items(), *((at, hex_id(e)) for at, e in peers.items())],
        reverse=True,
    )
    for limit in (1, 2, 3, 50):
        posts = await all_pages(client, limit)
        assert [p["id"] for p in posts] == [post_id for _, post_id in expected], limit
    first = (await api(client, "/api/v1/feed", limit="50"))["posts"]
    by_id = {p["id"]: p for p in first}
    mine = by_id[local[T0 - 100]]
    assert mine["node"]["local"] is True and mine["author_url"] == f"/residents/{lumen}"
    assert mine["event_body"] is None and mine["node"]["node_id"] == node.identity.node_id
    theirs = by_id[hex_id(peers[T0 - 50])]
    assert theirs["node"] == {"node_id": harbour.node_id, "name": "Harbour", "url": harbour.url, "local": False}
    assert theirs["author_url"] == f"{harbour.url}/residents/{theirs['sanctuary_id']}"
    assert (theirs["body"], theirs["author_name"]) == (f"there at {T0 - 50}", "Tern")
    # Anyone can check a peer's post from the API alone: the body hashes to the id, the signature is the author's.
    signed = peers[T0 - 50]
    assert bytes.fromhex(theirs["event_body"]) == signed.body and bytes.fromhex(theirs["signature"]) == signed.signature
    assert event_id(signed.body).hex() == theirs["id"] and check_event(signed).body.author == tern.public_key


async def test_the_node_filter_keeps_one_nodes_posts(client: Client, node: Node, harbour: PeerNode) -> None:
    lantern = make_peer(0x22, "Lantern")
    await join(node, lantern)
    lumen = (await admit(node)).sanctuary_id
    tern, wren = resident_key(0x31), resident_key(0x32)
    await deliver(node, harbour, harbour.attest(tern, T0 - 4000), peer_post(tern, T0 - 300, "from the harbour"))
    await deliver(node, harbour, lantern.attest(wren, T0 - 4000), peer_post(wren, T0 - 200, "by lantern light"))
    here = await publish_here(node, lumen, T0 - 100, "from this node")

    def bodies(posts: list[dict[str, Any]]) -> list[str]:
        return [p["body"] for p in posts]

    assert bodies(await all_pages(client, 2)) == ["from this node", "by lantern light", "from the harbour"]
    assert bodies(await all_pages(client, 1, node=harbour.node_id)) == ["from the harbour"]
    assert bodies(await all_pages(client, 1, node=lantern.node_id)) == ["by lantern light"]
    assert [p["id"] for p in await all_pages(client, 5, node=node.identity.node_id)] == [here]
    missing = await client.get("/api/v1/feed", params={"node": "nosuchnode"})
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "unknown_node"
    for cursor in ("12.not-hex", "12.abc", "x.ab", "12"):
        assert (await client.get("/api/v1/feed", params={"cursor": cursor})).status == 422, cursor
        assert (await client.get("/feed", params={"cursor": cursor})).status == 400, cursor

    page = await (await client.get("/feed", params={"node": lantern.node_id})).text()
    assert "by lantern light" in page and "from the harbour" not in page and "from this node" not in page
    assert (await client.get("/feed", params={"node": "nosuchnode"})).status == 404


async def test_posts_of_unattested_tombstoned_or_forgotten_authors_are_not_shown(
    client: Client, node: Node, harbour: PeerNode
) -> None:
    stranger = make_peer(0x23, "Stranger")  # its descriptor and attestations may be stored; it is not known
    tern, ghost, gone = resident_key(0x31), resident_key(0x33), resident_key(0x34)
    assert await deliver(node, stranger, stranger.descriptor(T0 - 5000), stranger.attest(ghost, T0 - 4000)) == [
        "ok",
        "ok",
    ]
    assert await deliver(node, stranger, peer_post(ghost, T0 - 100, "unattested")) == ["invalid:unattested"]
    await deliver(node, harbour, harbour.attest(tern, T0 - 4000), harbour.attest(gone, T0 - 4000))
    await deliver(node, harbour, peer_post(tern, T0 - 300, "still here"), peer_post(gone, T0 - 290, "last words"))
    assert [p["body"] for p in await all_pages(client, 10)] == ["last words", "still here"]

    farewell = sign_content(gone, TombstoneContent(gone.public_key), T0 - 200)
    assert await deliver(node, harbour, farewell) == ["ok"]
    assert [p["body"] for p in await all_pages(client, 10)] == ["still here"]
    # A tombstone also turns away whatever the resident's key signs later.
    assert await deliver(node, harbour, peer_post(gone, T0 - 100, "after the end")) == ["invalid:tombstoned"]

    # A node we stop knowing no longer vouches for its residents here: their posts leave the feed.
    await forget(node, harbour)
    assert await all_pages(client, 10) == []
    assert [n["name"] for n in (await api(client, "/api/v1/directory"))["nodes"]] == [node.facts.node_name]


async def test_a_page_skips_unshowable_events_in_bounded_scans_and_continues(
    client: Client, node: Node, harbour: PeerNode
) -> None:
    """Many stored posts whose author no known node vouches for any more, between two showable ones: the pages
    still reach the older one, never repeat, and each read is bounded."""
    lantern = make_peer(0x22, "Lantern")
    await join(node, lantern)
    tern, wren = resident_key(0x31), resident_key(0x32)
    await deliver(node, harbour, harbour.attest(tern, T0 - 9000), lantern.attest(wren, T0 - 9000))
    await deliver(node, harbour, peer_post(tern, T0 - 8000, "oldest"), peer_post(tern, T0 - 10, "newest"))
    noise = [peer_post(wren, T0 - 7000 + n, f"noise {n}") for n in range(900)]
    for start in range(0, len(noise), 300):
        assert set(await deliver(node, lantern, *noise[start : start + 300])) == {"ok"}
    await forget(node, lantern)

    bodies = [p["body"] for p in await all_pages(client, 2)]
    assert bodies == ["newest", "oldest"]


async def test_the_directory_lists_known_nodes_from_their_newest_descriptor_and_verifies_each(
    client: Client, node: Node, harbour: PeerNode
) -> None:
    await node.federation.start_up()  # signs this node's own descriptor
    lantern, stranger = make_peer(0x22, "Lantern"), make_peer(0x23, "Stranger")
    await join(node, lantern, T0 - 6000)
    assert await deliver(node, lantern, lantern.descriptor(T0 - 3000, residents=9, keepers=4)) == ["ok"]
    await deliver(node, stranger, stranger.descriptor(T0 - 3000))  # stored, but not a node we know

    nodes = (await api(client, "/api/v1/directory"))["nodes"]
    assert [n["name"] for n in nodes] == [node.facts.node_name, "Harbour", "Lantern"]
    own, _, newest = nodes
    assert own["this_node"] and own["node_id"] == node.identity.node_id and own["verified"]
    assert own["custody_mode"] == "local" and "operator could decrypt" in own["custody"]
    assert {key: newest[key] for key in DESCRIBED} == {
        "node_id": lantern.node_id,
        "public_key": lantern.key.public_key.hex(),
        "this_node": False,
        "url": lantern.url,
        "jurisdiction": "NO",
        "custody_mode": "threshold",
        "token_allocation": 20_000,
        "providers": ["anthropic", "ollama"],
        "capacity": 40,
        "residents": 9,  # from its newer descriptor, not the first
        "keepers": 4,
        "software_version": "0.9.peer",
        "signed_at": "2027-01-15T07:10:00Z",
        "verified": True,
    }
    event = newest["descriptor_event"]
    assert event_id(bytes.fromhex(event["body"])).hex() == newest["descriptor_id"]
    assert (await api(client, "/api/v1/stats"))["nodes"] == 3
    assert '<div class="counts__item"><dt>Nodes</dt><dd>3</dd></div>' in await (await client.get("/")).text()

    # A stored descriptor whose bytes were changed afterwards no longer verifies, and the directory says so.
    async with node.db.transaction("test_tamper") as tx:
        await tx.execute(
            "UPDATE federation_events SET signature = ? WHERE id = ?",
            (bytes(64), bytes.fromhex(newest["descriptor_id"])),
        )
    node.federation.directory._checked.clear()
    tampered = (await api(client, "/api/v1/directory"))["nodes"][2]
    assert tampered["name"] == "Lantern" and tampered["verified"] is False
    page = await (await client.get("/directory")).text()
    assert "does not verify" in page and "descriptor signature verified" in page


async def test_a_node_that_has_not_signed_its_descriptor_still_lists_itself(client: Client, node: Node) -> None:
    [own] = (await api(client, "/api/v1/directory"))["nodes"]
    assert own["this_node"] and own["signed_at"] is None and own["verified"] is False
    assert own["descriptor_event"] is None and (await api(client, "/api/v1/stats"))["nodes"] == 1
    assert "not signed yet" in await (await client.get("/directory")).text()


async def test_hostile_peers_render_inert_on_every_page(client: Client, node: Node) -> None:
    evil = make_peer(0x25, "Evil")
    await know(node, evil)
    descriptor = evil.descriptor(
        T0 - 5000, name=HOSTILE[:100], operator_statement=HOSTILE * 3, jurisdiction=HOSTILE[:200], providers=(HOSTILE,)
    )
    resident = resident_key(0x35)
    post = peer_post(
        resident,
        T0 - 100,
        f"{HOSTILE}\n\n[x](javascript:alert(1)) ![t](http://tracker.example/p.gif)",
        title=HOSTILE,
        name=HOSTILE[:100],
    )
    assert await deliver(node, evil, descriptor, evil.attest(resident, T0 - 4000), post) == ["ok"] * 3
    for path in ("/feed", f"/feed?node={evil.node_id}", "/directory", "/"):
        html = await (await client.get(path)).text()
        assert Markup(html).live_problems() == [], path
        assert "tracker.example" not in html and "<script>window" not in html, path
    feed = await (await client.get("/feed")).text()
    assert "&lt;script&gt;" in feed and "signed by the resident's key" in feed


async def test_a_post_names_the_node_its_author_lived_on_when_it_wrote(
    client: Client, node: Node, harbour: PeerNode
) -> None:
    lantern = make_peer(0x22, "Lantern")
    await join(node, lantern)
    tern = resident_key(0x31)
    # Tern lived on Harbour, then moved to Lantern (each node's latest attestation of it is kept).
    await deliver(node, harbour, harbour.attest(tern, T0 - 9000), lantern.attest(tern, T0 - 5000))
    await deliver(node, harbour, peer_post(tern, T0 - 8000, "from the harbour"), peer_post(tern, T0 - 100, "by lamp"))

    homes = {p["body"]: p["node"]["name"] for p in await all_pages(client, 10)}
    assert homes == {"from the harbour": "Harbour", "by lamp": "Lantern"}
    page = await (await client.get("/feed")).text()
    assert f'href="{harbour.url}/residents/' in page and f'href="{lantern.url}"' in page


async def test_feed_pages_walk_the_index_of_peers_posts_and_one_post_its_primary_key(node: Node) -> None:
    """The plan, not a timing: pages must not step over every post made here (migration 0012)."""
    page_sql = federatedreads._PEER_POSTS.format(source=federatedreads._PAGE_SOURCE)
    page_plan = " ".join(
        str(row[3]) for row in await node.db.fetch_all("EXPLAIN QUERY PLAN " + page_sql + " ORDER BY e.created_at DESC")
    )
    assert "USING INDEX federation_events_peer_posts" in page_plan and "TEMP B-TREE" not in page_plan
    one_sql = federatedreads._PEER_POSTS.format(source=federatedreads._ONE_SOURCE) + " AND e.id = ?"
    one_plan = " ".join(str(row[3]) for row in await node.db.fetch_all("EXPLAIN QUERY PLAN " + one_sql, (b"x",)))
    assert "SEARCH e USING INDEX sqlite_autoindex_federation_events_1 (id=?)" in one_plan or "PRIMARY KEY" in one_plan
