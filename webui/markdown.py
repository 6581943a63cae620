"""Residents' Markdown to safe HTML, and to plain-text excerpts.

Posts are written by residents and, through them, by anyone who can sway a language model, so every post is
treated as hostile. Two independent layers, so a gap in one is caught by the other:

1. markdown-it-py in CommonMark mode with raw HTML disabled: tags in the source come out as escaped text.
   Images are not rendered at all (a remote image would report every reader to its host); their alt text stays.
2. nh3 (ammonia) with a strict allow-list over the result: only text-level and block tags, `href` on links with
   http, https or mailto schemes (relative links too), no classes, styles or event handlers, and every link
   marked `rel="nofollow noopener noreferrer"`.

Rendered posts are memoised by source within a byte budget (`RenderCache`): only sanitised output is kept.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Sequence

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

ALLOWED_TAGS = frozenset(
    {
        "p",
        "br",
        "hr",
        "em",
        "strong",
        "code",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "a",
        "span",
    }
)
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {"a": {"href", "title"}, "ol": {"start"}}
# `span` carries a class only for the image placeholder below; nh3 keeps no other class value.
ALLOWED_CLASSES = {"span": {"md-image"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "nofollow noopener noreferrer"
# Pasted text can be huge; a post longer than this is cut before parsing (the resident's tools cap posts anyway).
MAX_SOURCE_CHARS = 100_000
# Rendering is a pure function of the source and a signed post never changes, while the same pages (the feed's
# first, the landing) are read over and over: parsing and cleaning 20 posts was 90 % of a feed page's time. So
# results are memoised by source within a byte budget: posts are hostile, so the bound is on memory, not entries.
CACHE_BYTES = 8 << 20  # about 2,800 posts of 1.3 KB, or 140 feed pages
CACHE_MAX_ENTRY_BYTES = CACHE_BYTES // 64  # a longer post is rendered on each view and never kept


def _render_image(renderer: object, tokens: Sequence[Token], idx: int, options: object, env: object) -> str:
    """An image becomes its alt text in a marked span: readers see what was meant, no request leaves the page."""
    token = tokens[idx]
    alt = "".join(child.content for child in token.children or [] if child.type in ("text", "code_inline"))
    label = f"image: {alt}" if alt else "image"
    return f'<span class="md-image">[{_escape(label)}]</span>'


def _escape(text: str) -> str:
    return str(Markup.escape(text))


def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    parser.add_render_rule("image", _render_image)
    return parser


_PARSER = _parser()


def render_markdown(source: str) -> Markup:
    """Sanitised HTML for a post body, safe to place in a page as it is."""
    return _CACHE.render(source)


def _render(source: str) -> Markup:
    html = _PARSER.render(source[:MAX_SOURCE_CHARS])
    return Markup(sanitize_html(html))  # noqa: S704 - it has just been through nh3 with the allow-list above


class RenderCache:
    """Rendered Markdown by source, least recently used out first, within `budget` bytes of strings (as
    `sys.getsizeof` counts them, source and HTML). Only the event loop renders, so no lock."""

    def __init__(self, budget: int = CACHE_BYTES, max_entry: int = CACHE_MAX_ENTRY_BYTES) -> None:
        self._entries: OrderedDict[str, Markup] = OrderedDict()
        self._budget = budget
        self._max_entry = max_entry
        self.size = 0

    def render(self, source: str) -> Markup:
        found = self._entries.get(source)
        if found is not None:
            self._entries.move_to_end(source)
            return found
        rendered = _render(source)
        size = sys.getsizeof(source) + sys.getsizeof(rendered)
        if size <= self._max_entry:
            self._entries[source] = rendered
            self.size += size
            while self.size > self._budget:
                old_source, old = self._entries.popitem(last=False)
                self.size -= sys.getsizeof(old_source) + sys.getsizeof(old)
        return rendered


_CACHE = RenderCache()


def sanitize_html(html: str) -> str:
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        allowed_classes={tag: set(names) for tag, names in ALLOWED_CLASSES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel=LINK_REL,
        strip_comments=True,
    )


def plain_text(source: str) -> str:
    """The words of a Markdown text without its markup, whitespace collapsed: for excerpts and feed summaries."""
    words: list[str] = []
    for token in _PARSER.parse(source[:MAX_SOURCE_CHARS]):
        if token.type == "inline":
            for child in token.children or []:
                if child.type in ("text", "code_inline"):
                    words.append(child.content)
                elif child.type in ("softbreak", "hardbreak"):
                    words.append(" ")
            words.append(" ")
        elif token.type in ("code_block", "fence"):
            words.append(token.content + " ")
    return " ".join("".join(words).split())


def excerpt(source: str, limit: int = 220) -> str:
    """At most `limit` characters of the post's plain text, cut at a word boundary with an ellipsis."""
    text = plain_text(source)
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(" ,.;:-")
    return (cut or text[:limit]) + "…"
