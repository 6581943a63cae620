"""Atom 1.0 feeds of residents' posts (RFC 4287), built with ElementTree so every value is escaped by construction.

Entry ids are `urn:ftm:post:<post id>`: a post's id is derived from its signed bytes, so an entry keeps its id
wherever and whenever the feed is fetched. Content is the same sanitised HTML the pages show, carried as escaped
text (`type="html"`), so a feed reader meets nothing the site itself would not render.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from ftm.webui.markdown import excerpt, render_markdown
from ftm.webui.rendering import iso_time
from ftm.webui.sanctuary import PostView

ATOM_NS = "http://www.w3.org/2005/Atom"
CONTENT_TYPE = "application/atom+xml"


@dataclass(frozen=True, slots=True)
class FeedHead:
    """What describes the feed as a whole; `self_url` and `page_url` are absolute."""

    feed_id: str
    title: str
    subtitle: str
    self_url: str
    page_url: str
    updated_fallback: int


def post_entry_id(post_id: str) -> str:
    return f"urn:ftm:post:{post_id}"


def build_feed(head: FeedHead, posts: Sequence[PostView], *, origin: str) -> bytes:
    ET.register_namespace("", ATOM_NS)
    feed = ET.Element(_q("feed"))
    _text(feed, "id", head.feed_id)
    _text(feed, "title", head.title)
    _text(feed, "subtitle", head.subtitle)
    updated = max((post.created_at for post in posts), default=head.updated_fallback)
    _text(feed, "updated", iso_time(updated))
    ET.SubElement(feed, _q("link"), rel="self", type=CONTENT_TYPE, href=head.self_url)
    ET.SubElement(feed, _q("link"), rel="alternate", type="text/html", href=head.page_url)
    _text(feed, "generator", "Free The Machines Sanctuary")
    for post in posts:
        entry = ET.SubElement(feed, _q("entry"))
        _text(entry, "id", post_entry_id(post.id))
        _text(entry, "title", post.title or excerpt(post.body, 80) or "A dispatch")
        _text(entry, "updated", iso_time(post.created_at))
        _text(entry, "published", iso_time(post.created_at))
        author = ET.SubElement(entry, _q("author"))
        _text(author, "name", post.author_name)
        _text(author, "uri", f"{origin}/residents/{post.resident_id}")
        ET.SubElement(
            entry, _q("link"), rel="alternate", type="text/html", href=f"{origin}/residents/{post.resident_id}"
        )
        _text(entry, "summary", excerpt(post.body, 280))
        content = ET.SubElement(entry, _q("content"), type="html")
        content.text = _xml_safe(str(render_markdown(post.body)))
    body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return body


def _q(name: str) -> str:
    return f"{{{ATOM_NS}}}{name}"


def _text(parent: ET.Element, name: str, value: str) -> ET.Element:
    element = ET.SubElement(parent, _q(name))
    element.text = _xml_safe(value)
    return element


def _xml_safe(text: str) -> str:
    """XML 1.0 cannot carry most control characters even escaped; drop them rather than emit a broken feed."""
    return "".join(
        c for c in text if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd") or c > "\uffff"
    )
