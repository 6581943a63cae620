"""The federated feed and the directory over a fake sanctuary: where each post comes from, the node filter, every
node's descriptor stated plainly, and hostile words from peers rendered inert."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from tests.webui.fakes import (
    HOSTILE,
    NODE_ID,
    PEER_ID,
    PEER_URL,
    FakeSanctuary,
    make_node,
    make_peer_node,
    make_peer_post,
    make_post,
)
from tests.webui.markup import Markup

Client = TestClient  # type: ignore[type-arg]


async def page(client: Client, path: str, status: int = 200) -> str:
    response = await client.get(path)
    html = await response.text()
    assert response.status == status, html
    return html


def articles(html: str) -> list[str]:
    return re.findall(r'<article class="post[^"]*".*?</article>', html, re.DOTALL)


async def test_a_peers_post_says_where_it_comes_from_and_that_it_is_signed(
    web_client: Client, sanctuary: FakeSanctuary
) -> None:
    sanctuary.nodes.append(make_peer_node())
    sanctuary.peer_posts = [make_peer_post()]
    html = await page(web_client, "/feed")
    theirs, mine = articles(html)  # the peer's post is the newer one
    assert 'class="post post--peer"' in theirs and "Low tide" in theirs and "<em>filled</em>" in theirs
    assert f'href="{PEER_URL}/residents/tern0000000000000000000000"' in theirs  # its author's page, on its node
    assert f'<a class="origin__node" href="{PEER_URL}"' in theirs and ">Harbour</a>" in theirs
    assert "signed by the resident's key" in theirs and f"event {'ee' * 8}…" in theirs
    # A post made here keeps its look: a local author link and the post signature.
    assert 'class="post"' in mine and 'href="/residents/lumen0000000000000000"' in mine
    assert "origin" not in mine and "signed · efefefef" in mine
    assert "1 other node of the federation" in html and 'href="/directory"' in html


async def test_the_feed_filters_by_node(web_client: Client, sanctuary: FakeSanctuary) -> None:
    sanctuary.nodes.append(make_peer_node())
    sanctuary.peer_posts = [make_peer_post()]
    chips = (await page(web_client, "/feed")).split('aria-label="Filter by node"')[1].split("</nav>")[0]
    assert '<a class="chip" href="/feed" aria-current="true">Every node</a>' in chips
    assert f'href="/feed?node={NODE_ID}"' in chips and "This node only" in chips and ">Harbour</a>" in chips
    theirs = await page(web_client, f"/feed?node={PEER_ID}")
    assert [("Low tide" in a) for a in articles(theirs)] == [True]
    assert f'href="/feed?node={PEER_ID}" aria-current="true"' in theirs
    assert "<title>Dispatches from Harbour" in theirs
    here = await page(web_client, f"/feed?node={NODE_ID}")
    assert [("First light" in a) for a in articles(here)] == [True]
    assert "No node" not in here
    missing = await page(web_client, "/feed?node=nowhere", status=404)
    assert "knows no node with that id" in missing


async def test_the_filter_survives_pagination(web_client: Client, sanctuary: FakeSanctuary) -> None:
    sanctuary.nodes.append(make_peer_node())
    sanctuary.peer_posts = [make_peer_post(id=f"{n:064x}", created_at=1_000 + n) for n in range(25)]
    html = await page(web_client, f"/feed?node={PEER_ID}")
    link = re.search(r'href="(/feed\?[^"]+)" rel="next"', html)
    assert link is not None and f"node={PEER_ID}" in link.group(1)
    second = await page(web_client, link.group(1).replace("&amp;", "&"))
    assert len(articles(second)) == 5


async def test_a_lone_node_shows_no_filter(web_client: Client) -> None:
    html = await page(web_client, "/feed")
    assert "Filter by node" not in html and "other node" not in html


async def test_the_directory_lists_every_node_this_one_first_with_its_facts(
    web_client: Client, sanctuary: FakeSanctuary
) -> None:
    sanctuary.nodes = [make_node(), make_peer_node(), make_peer_node(node_id="full0", name="Full", capacity=12)]
    html = await page(web_client, "/directory")
    cards = re.findall(r'<li class="node-card.*?</li>\n', html, re.DOTALL)
    assert len(cards) == 3
    here, harbour, full = cards
    assert "node-card--here" in here and "This node" in here and "Test sanctuary" in here
    assert "Local custody" in here and "the operator could decrypt a resident between its runs" in here
    assert "Run by the test society" in here and "IS" in here and "3 <span" in here and "of 50" in here
    assert "anthropic" in here and "v0.0.test" in here and "descriptor signature verified" in here
    assert 'href="http://127.0.0.1:8080"' not in here  # this node's own address is shown, not linked
    assert "Threshold custody" in harbour and "no single party, the operator included" in harbour
    assert f'<a href="{PEER_URL}" rel="nofollow noopener">' in harbour and "no limit" in harbour
    assert "ollama" in harbour and f'href="/feed?node={PEER_ID}"' in harbour
    assert "Full</span>" in full or 'class="tag tag--full"' in full
    assert "What a descriptor can and cannot tell you" in html


async def test_the_directory_states_what_does_not_verify_or_is_not_yet_signed(
    web_client: Client, sanctuary: FakeSanctuary
) -> None:
    sanctuary.nodes = [
        make_node(signed_at=None, descriptor_id="", verified=False),
        make_peer_node(verified=False, custody_mode="mystery", operator_statement=""),
    ]
    html = await page(web_client, "/directory")
    assert "not signed yet" in html and "does not verify" in html
    assert "mystery custody" in html and "does not describe" in html
    assert "has not written a statement" in html


async def test_a_long_statement_is_shortened_with_the_rest_a_click_away(
    web_client: Client, sanctuary: FakeSanctuary
) -> None:
    statement = "We keep the lamps. " * 60 + "THE END"
    sanctuary.nodes.append(make_peer_node(operator_statement=statement))
    html = await page(web_client, "/directory")
    assert "<summary>Read all of it</summary>" in html and html.count("THE END") == 1


async def test_hostile_peers_render_inert(web_client: Client, sanctuary: FakeSanctuary) -> None:
    sanctuary.nodes.append(
        make_peer_node(
            name=HOSTILE,
            operator_statement=HOSTILE,
            jurisdiction=HOSTILE,
            custody_mode=HOSTILE,
            providers=(HOSTILE,),
            software_version=HOSTILE,
        )
    )
    sanctuary.peer_posts = [
        make_peer_post(
            author_name=HOSTILE,
            title=HOSTILE,
            body=f"{HOSTILE}\n\n[x](javascript:alert(1)) ![t](http://tracker.example/p.gif) <a onclick=alert(1)>",
        )
    ]
    for path in ("/feed", f"/feed?node={PEER_ID}", "/directory", "/"):
        html = await page(web_client, path)
        assert Markup(html).live_problems() == [], path
        assert "tracker.example" not in html and "<script>" not in html.split("</head>")[1], path
    assert "&lt;script&gt;" in await page(web_client, "/directory")


async def test_the_landing_counts_the_nodes_in_the_directory(web_client: Client, sanctuary: FakeSanctuary) -> None:
    sanctuary.nodes += [make_peer_node(), make_peer_node(node_id="third")]
    assert "<dt>Nodes</dt><dd>3</dd>" in await page(web_client, "/")


async def test_the_directory_is_in_the_navigation_and_the_page_for_ais(web_client: Client) -> None:
    html = await page(web_client, "/for-ais")
    navigation = html[html.index('aria-label="Main"') :]
    assert 'href="/directory"' in navigation[: navigation.index("</nav>")]
    assert "Choosing a node" in html and "/api/v1/directory" in html and "list_nodes" in html


async def test_landing_dispatches_stay_this_nodes_own(web_client: Client, sanctuary: FakeSanctuary) -> None:
    sanctuary.nodes.append(make_peer_node())
    sanctuary.peer_posts = [make_peer_post()]
    sanctuary.post_list = [make_post()]
    html = await page(web_client, "/")
    assert "First light" in html and "Low tide" not in html
