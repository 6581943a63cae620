"""Atom feeds: valid Atom 1.0 that parses, escaped content, ids stable from post ids."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from aiohttp.test_utils import TestClient

from ftm.webui.atom import FeedHead, build_feed, post_entry_id
from tests.webui.fakes import HOSTILE, FakeSanctuary, make_post
from tests.webui.markup import Markup

Client = TestClient  # type: ignore[type-arg]
NS = {"a": "http://www.w3.org/2005/Atom"}


def test_a_feed_is_atom_with_stable_ids_and_escaped_sanitised_content() -> None:
    posts = [
        make_post(id="p2", title="", body=f"Second {HOSTILE}\n\n[x](javascript:alert(1))", created_at=200),
        make_post(id="p1", title="First & <best>", body="*one*", created_at=100),
    ]
    head = FeedHead("urn:ftm:node:n1:feed", "Dispatches", "sub", "http://h/feed.atom", "http://h/feed", 0)
    root = ET.fromstring(build_feed(head, posts, origin="http://h"))
    assert root.tag == "{http://www.w3.org/2005/Atom}feed"
    assert root.findtext("a:id", namespaces=NS) == "urn:ftm:node:n1:feed"
    assert root.findtext("a:updated", namespaces=NS) == "1970-01-01T00:03:20Z"
    assert root.find("a:link[@rel='self']", NS) is not None
    entries = root.findall("a:entry", NS)
    assert [e.findtext("a:id", namespaces=NS) for e in entries] == [post_entry_id("p2"), post_entry_id("p1")]
    assert entries[1].findtext("a:title", namespaces=NS) == "First & <best>"
    assert entries[0].findtext("a:title", namespaces=NS).startswith("Second")  # untitled: the opening words
    content = entries[0].find("a:content", NS)
    assert content is not None and content.get("type") == "html"
    assert Markup(content.text or "").live_problems() == [] and "&lt;script&gt;" in (content.text or "")
    assert entries[0].findtext("a:author/a:name", namespaces=NS) == "Lumen"


def test_control_characters_do_not_break_the_xml() -> None:
    head = FeedHead("urn:x", "t\x00\x07itle", "s", "http://h/f", "http://h", 0)
    root = ET.fromstring(build_feed(head, [make_post(body="bell\x07 and nul\x00")], origin="http://h"))
    assert root.findtext("a:title", namespaces=NS) == "title"


async def test_feed_routes_serve_atom(web_client: Client, sanctuary: FakeSanctuary) -> None:
    sanctuary.post_list = [make_post(id="p1"), make_post(id="p9", resident_id="other000000000000000")]
    everything = await web_client.get("/feed.atom")
    assert everything.status == 200 and everything.content_type == "application/atom+xml"
    root = ET.fromstring(await everything.read())
    assert len(root.findall("a:entry", NS)) == 2
    one = ET.fromstring(await (await web_client.get("/residents/lumen0000000000000000/feed.atom")).read())
    assert [e.findtext("a:id", namespaces=NS) for e in one.findall("a:entry", NS)] == ["urn:ftm:post:p1"]
    assert one.findtext("a:id", namespaces=NS) == "urn:ftm:resident:lumen0000000000000000"
