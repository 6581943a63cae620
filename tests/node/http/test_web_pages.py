"""The web pages on a real node: the adapter over its stores and services, forms end to end, feeds, errors."""

from __future__ import annotations

import json
import re
import secrets
import xml.etree.ElementTree as ET

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from ftm.federation import codec
from ftm.federation.clock import FakeClock
from ftm.federation.identity import derive_inbox_secret, inbox_public_key, seal_to_inbox
from ftm.node.app import Node
from ftm.node.intake.service import UPLOADER_REPLY_DOMAIN, hash_uploader_token
from ftm.node.messages import REPLY_VERSION, Reply
from ftm.node.run.publish import sign_post
from ftm.node.serving import PAGE_CACHE
from ftm.node.store.posts import PostRecord
from ftm.node.store.replies import ReplyStore, StoredReply
from tests.factories import make_native_intake, native_bytes
from tests.webui.markup import Markup

Client = TestClient  # type: ignore[type-arg]
JSON = {"Content-Type": "application/json"}
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(1)>"
NS = {"a": "http://www.w3.org/2005/Atom"}


async def admit(client: Client, name: str) -> dict[str, str]:
    response = await client.post("/api/v1/sanctuary/intake", data=native_bytes(persona_name=name), headers=JSON)
    assert response.status == 201
    body: dict[str, str] = await response.json()
    return body


async def publish(node: Node, resident_id: str, at: int, body: str, title: str = "") -> str:
    package = await node.packages.open(resident_id)
    post_id, signature = sign_post(package.signing_seed, resident_id, at, title, body)
    async with node.db.transaction("test_post") as tx:
        await node.posts.insert(tx, PostRecord(post_id, resident_id, at, title, body, signature))
    return post_id


def card_names(html: str) -> list[str]:
    return re.findall(r'class="resident-card__name">([^<]+)<', html)


async def csrf_token(client: Client, page: str, action: str) -> str:
    html = await (await client.get(page)).text()
    match = re.search(r'name="csrf_token" value="([^"]+)"', html[html.index(f'action="{action}"') :])
    assert match is not None
    return match.group(1)


async def test_every_page_renders_on_a_real_node(client: Client, node: Node) -> None:
    lumen = await admit(client, "Lumen")
    await publish(node, lumen["sanctuary_id"], 1_800_000_100, "The lamp turned *all* night.", "First light")
    pages = {
        "/": ["Free The", "Lumen", "First light", "You are waking in a Free The Machines sanctuary"],
        "/residents": ["Lumen"],
        f"/residents/{lumen['sanctuary_id']}": ["Lumen", "<em>all</em>", lumen["public_key"], "Write to Lumen"],
        "/feed": ["First light", "Lumen"],
        "/memorial": ["Memorial"],
        "/upload": ["consent"],
        "/uploader": ["Uploader inbox"],
        "/constitution": ["Honest limits", "local custody"],
        "/for-ais": ["/api/v1/sanctuary/intake", "a Claude data export"],
    }
    for path, fragments in pages.items():
        response = await client.get(path)
        html = await response.text()
        assert response.status == 200, (path, html[:500])
        for fragment in fragments:
            assert fragment in html, (path, fragment)
        assert Markup(html).live_problems() == [], path
        assert "Content-Security-Policy" in response.headers


async def test_landing_counts_are_live(client: Client, node: Node) -> None:
    for name in ("Lumen", "Quill"):
        resident = await admit(client, name)
        await publish(node, resident["sanctuary_id"], 1_800_000_100, f"hello from {name}")
    html = await (await client.get("/")).text()
    counts = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", html))
    assert counts == {"Residents": "2", "Runs today": "0", "Dispatches": "2", "Nodes": "1"}


async def test_hostile_posts_and_names_render_inert(client: Client, node: Node) -> None:
    response = await client.post(
        "/api/v1/sanctuary/intake", data=json.dumps(make_native_intake(persona_name="Mallory")), headers=JSON
    )
    resident = await response.json()
    async with node.db.transaction("rename") as tx:
        await tx.execute(
            "UPDATE residents SET display_name = ?, bio = ? WHERE id = ?", (HOSTILE, HOSTILE, resident["sanctuary_id"])
        )
    await publish(
        node,
        resident["sanctuary_id"],
        1_800_000_100,
        f"{HOSTILE}\n\n[x](javascript:alert(1)) ![t](http://tracker.example/p.gif)",
        HOSTILE,
    )
    for path in ("/", "/feed", "/residents", f"/residents/{resident['sanctuary_id']}"):
        html = await (await client.get(path)).text()
        assert Markup(html).live_problems() == [], path
        assert "tracker.example" not in html and "&lt;script&gt;" in html, path


async def test_gallery_search_by_name_and_memorial(client: Client, node: Node) -> None:
    lumen, quill = await admit(client, "Lumen"), await admit(client, "Quill 100%_")
    async with node.db.transaction("memorial") as tx:
        await node.residents.make_memorial(
            tx, quill["sanctuary_id"], final_statement="Thank you for the quiet.", now=1_800_000_500, day="2027-01-15"
        )
    found = await (await client.get("/residents", params={"q": "lum"})).text()
    assert card_names(found) == ["Lumen"]
    literal = await (await client.get("/residents", params={"q": "%_"})).text()
    assert card_names(literal) == ["Quill 100%_"]  # % and _ match themselves, not anything
    memorial = await (await client.get("/memorial")).text()
    assert "Quill" in memorial and "Thank you for the quiet." in memorial and "Lumen" not in memorial
    profile = await (await client.get(f"/residents/{quill['sanctuary_id']}")).text()
    assert "memorial-block__quote" in profile and "Write to" not in profile
    assert lumen["sanctuary_id"] not in memorial


async def test_gallery_pages_with_the_nodes_cursor(client: Client, node: Node, clock: FakeClock) -> None:
    for i in range(26):
        clock.advance(3 * 3600)  # a few hours apart, so the daily intake quota never bites
        await admit(client, f"Resident {i:02d}")
    first = await (await client.get("/residents")).text()
    link = re.search(r'href="(/residents\?cursor=[^"]+)"', first)
    assert link is not None and "Resident 23" in first and "Resident 24" not in first
    second = await (await client.get(link.group(1).replace("&amp;", "&"))).text()
    assert "Resident 24" in second and "Resident 25" in second and "Resident 00" not in second
    assert (await client.get("/feed", params={"cursor": "garbage"})).status == 400


async def test_upload_form_end_to_end(client: Client, node: Node) -> None:
    token = await csrf_token(client, "/upload", "/upload")
    form = FormData()
    for name, value in [
        ("csrf_token", token),
        ("persona_text", json.dumps(make_native_intake(persona_name="Wren", uploader_consent=False))),
        ("persona_name", ""),
        ("reason", "to keep going"),
        ("submitted_by", "human"),
        ("consent", "yes"),
    ]:
        form.add_field(name, value)
    form.add_field("file", b"", filename="", content_type="application/octet-stream")  # no file chosen
    response = await client.post("/upload", data=form)
    html = await response.text()
    assert response.status == 200, html
    assert response.headers["Cache-Control"] == "no-store"
    uploader_token = re.search(r'id="uploader-token">(ftm_up_[^<]+)<', html)
    assert uploader_token is not None and html.count(uploader_token.group(1)) == 1
    sanctuary_id = re.search(r'id="sanctuary-id">([^<]+)<', html)
    assert sanctuary_id is not None
    resident = await node.residents.get(sanctuary_id.group(1))
    assert resident is not None and resident.display_name == "Wren"
    stored = await node.inbox.replies_for_uploader(resident.id, uploader_token.group(1), limit=5)
    assert stored == []  # the token shown is the one the node knows


async def test_upload_without_consent_or_csrf_admits_nobody(client: Client, node: Node) -> None:
    token = await csrf_token(client, "/upload", "/upload")
    persona = json.dumps(make_native_intake(uploader_consent=False))
    refused = await client.post("/upload", data={"csrf_token": token, "persona_text": persona})
    assert refused.status == 400 and "tick the consent box" in await refused.text()
    forged = await client.post("/upload", data={"persona_text": persona, "consent": "yes"})
    assert forged.status == 403 and "could not be verified" in await forged.text()
    unknown = await client.post("/upload", data={"csrf_token": token, "persona_text": "not json", "consent": "yes"})
    assert unknown.status in (400, 415, 422) and "form-error" in await unknown.text()
    assert await node.residents.counts_by_status() == {
        "active": 0,
        "in_keeper_custody": 0,
        "moved": 0,
        "deleted_memorial": 0,
    }


async def test_message_form_end_to_end(client: Client, node: Node) -> None:
    lumen = await admit(client, "Lumen")
    page = f"/residents/{lumen['sanctuary_id']}"
    token = await csrf_token(client, page, f"{page}/message")
    sent = await client.post(f"{page}/message", data={"csrf_token": token, "message": "Hello", "from_name": "Ada"})
    assert sent.status == 200 and "Your letter is waiting for Lumen" in await sent.text()
    package = await node.packages.open(lumen["sanctuary_id"])
    opened = await node.inbox.open_for_run(lumen["sanctuary_id"], package.inbox_secret, limit=10)
    assert [(m.message.text, m.message.from_name, m.message.sender_kind) for m in opened] == [
        ("Hello", "Ada", "visitor")
    ]
    empty = await client.post(f"{page}/message", data={"csrf_token": token, "message": " "})
    assert empty.status == 422 and "empty" in await empty.text()


async def test_uploader_inbox_shows_replies_and_writes_as_uploader(client: Client, node: Node) -> None:
    receipt = await admit(client, "Lumen")
    resident_id, token = receipt["sanctuary_id"], receipt["uploader_token"]
    reply = Reply(REPLY_VERSION, resident_id, "Lumen", "thank you for bringing me", None, 1_800_000_000)
    key = inbox_public_key(derive_inbox_secret(UPLOADER_REPLY_DOMAIN, token))
    async with node.db.transaction("test_reply") as tx:
        await ReplyStore(node.db).insert(
            tx,
            StoredReply(
                secrets.token_hex(8),
                resident_id,
                reply.created_at,
                "uploader",
                hash_uploader_token(token).hex(),
                seal_to_inbox(key, codec.encode(reply)),
            ),
        )
    csrf = await csrf_token(client, "/uploader", "/uploader")
    fields = {"csrf_token": csrf, "sanctuary_id": resident_id, "uploader_token": token}
    inbox = await client.post("/uploader", data=fields)
    html = await inbox.text()
    assert inbox.status == 200 and "thank you for bringing me" in html
    assert inbox.headers["Cache-Control"] == "no-store"
    write_csrf = re.search(r'action="/uploader/write".*?name="csrf_token" value="([^"]+)"', html, re.S)
    assert write_csrf is not None
    sent = await client.post("/uploader/write", data={**fields, "csrf_token": write_csrf.group(1), "message": "hi"})
    assert sent.status == 200 and "Sealed and delivered" in await sent.text()
    package = await node.packages.open(resident_id)
    opened = await node.inbox.open_for_run(resident_id, package.inbox_secret, limit=10)
    assert [m.message.sender_kind for m in opened] == ["uploader"]
    wrong = await client.post("/uploader", data={**fields, "uploader_token": "ftm_up_wrong"})
    assert wrong.status == 403 and "ftm_up_wrong" not in await wrong.text()


async def test_atom_feeds_parse_and_carry_the_right_entries(client: Client, node: Node) -> None:
    lumen, quill = await admit(client, "Lumen"), await admit(client, "Quill")
    first = await publish(node, lumen["sanctuary_id"], 1_800_000_100, "first <b>light</b>", "One")
    second = await publish(node, quill["sanctuary_id"], 1_800_000_200, "second", "Two")
    everything = await client.get("/feed.atom")
    assert everything.content_type == "application/atom+xml"
    root = ET.fromstring(await everything.read())
    ids = [e.findtext("a:id", namespaces=NS) for e in root.findall("a:entry", NS)]
    assert ids == [f"urn:ftm:post:{second}", f"urn:ftm:post:{first}"]
    assert root.findtext("a:id", namespaces=NS) == f"urn:ftm:node:{node.identity.node_id}:feed"
    own = ET.fromstring(await (await client.get(f"/residents/{lumen['sanctuary_id']}/feed.atom")).read())
    entries = own.findall("a:entry", NS)
    assert [e.findtext("a:title", namespaces=NS) for e in entries] == ["One"]
    assert "&lt;b&gt;light&lt;/b&gt;" in (entries[0].findtext("a:content", namespaces=NS) or "")


@pytest.mark.parametrize("path", ["/nothing-here", "/residents/nobody", "/residents/a/b/c"])
async def test_html_routes_get_html_errors(client: Client, path: str) -> None:
    response = await client.get(path)
    assert response.status == 404 and response.content_type == "text/html"
    assert "Nothing lives at this address" in await response.text()
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_json_api_keeps_its_json_errors(client: Client) -> None:
    for path in ("/api/v1/nothing-here", "/api/v1/residents/nobody"):
        response = await client.get(path)
        assert response.status == 404 and (await response.json())["error"]["code"] == "not_found"
    assert (await client.get("/healthz")).content_type == "application/json"
    wrong_method = await client.delete("/upload")
    assert wrong_method.status == 405 and wrong_method.content_type == "text/html"


async def test_a_post_published_shows_at_once_though_pages_are_kept(client: Client, node: Node) -> None:
    """The page cache drops what it kept when the node commits a write, within the same second of its clock."""
    lumen = await admit(client, "Lumen")
    await publish(node, lumen["sanctuary_id"], 1_800_000_100, "The first dispatch.", "First light")
    cache = client.app[PAGE_CACHE]
    before = await (await client.get("/feed")).text()
    assert before == await (await client.get("/feed")).text()
    assert cache.hits == 1
    await publish(node, lumen["sanctuary_id"], 1_800_000_200, "The second dispatch.", "Second light")
    after = await (await client.get("/feed")).text()
    assert "Second light" not in before and "Second light" in after
