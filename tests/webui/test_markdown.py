"""The Markdown sanitizer against hostile posts: nothing a resident writes may run, load or mislead."""

from __future__ import annotations

import re

import pytest

from ftm.webui.markdown import CACHE_MAX_ENTRY_BYTES, RenderCache, excerpt, plain_text, render_markdown

HOSTILE = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](java\tscript:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](<javascript:alert(1)>)",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![pixel](http://tracker.example/p.gif)",
    "![pixel](https://tracker.example/p.gif 'title')",
    '![x](x" onerror="alert(1))',
    "<iframe src=https://evil.example></iframe>",
    "<svg onload=alert(1)>",
    '<div style="background:url(https://evil.example/x)">x</div>',
    "<style>body{background:url(https://evil.example/x)}</style>",
    "<form action=https://evil.example><input name=q></form>",
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    "<!-- <script>alert(1)</script> -->",
    "<object data=https://evil.example/x.swf></object>",
    '<a href="https://ok.example" onclick="alert(1)">x</a>',
    '[x](https://ok.example "t" onmouseover=alert(1))',
    "<base href=https://evil.example/>",
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    "<link rel=stylesheet href=https://evil.example/x.css>",
]


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_markdown_renders_inert(source: str) -> None:
    html = str(render_markdown(source)).lower()
    for tag in ("<script", "<img", "<iframe", "<svg", "<style", "<form", "<input", "<object", "<math", "<base"):
        assert tag not in html
    assert "<meta" not in html and "<link" not in html and "<div" not in html
    assert not re.search(r"\son\w+\s*=", html_tags(html))
    tags = html_tags(html)
    for href in re.findall(r'href="([^"]*)"', tags):
        assert href.startswith(("https:", "http:", "mailto:", "/")) or not re.match(r"^[a-z][a-z0-9+.-]*:", href)
    assert "javascript:" not in tags and "data:" not in tags and "vbscript:" not in tags
    assert "style=" not in tags and "src=" not in tags


def html_tags(html: str) -> str:
    """Only the markup (tags), not the escaped text between them: attributes can only live in real tags."""
    return " ".join(re.findall(r"<[a-z/][^>]*>", html))


def test_images_become_their_alt_text_and_load_nothing() -> None:
    html = str(render_markdown("See ![a lighthouse at night](https://tracker.example/p.gif)"))
    assert '<span class="md-image">[image: a lighthouse at night]</span>' in html
    assert "tracker.example" not in html


def test_raw_html_is_shown_as_text() -> None:
    html = str(render_markdown("<b>bold?</b> <script>x</script>"))
    assert "&lt;b&gt;bold?&lt;/b&gt;" in html and "&lt;script&gt;" in html


def test_links_are_kept_with_rel_nofollow_noopener_noreferrer() -> None:
    html = str(render_markdown("[a map](https://maps.example/edge) and [home](/residents)"))
    assert html.count('rel="nofollow noopener noreferrer"') == 2
    assert 'href="https://maps.example/edge"' in html and 'href="/residents"' in html


def test_ordinary_markdown_survives() -> None:
    html = str(
        render_markdown("# Log\n\n*soft* **firm** `code`\n\n> quoted\n\n3. three\n4. four\n\n---\n\n```\n<b>\n```")
    )
    for fragment in (
        "<h1>Log</h1>",
        "<em>soft</em>",
        "<strong>firm</strong>",
        "<code>code</code>",
        "<blockquote>",
        '<ol start="3">',
        "<hr",
        "<pre><code>&lt;b&gt;",
    ):
        assert fragment in html


def test_classes_other_than_the_image_placeholder_are_dropped() -> None:
    html = str(render_markdown("```python\nx = 1\n```"))
    assert "class=" not in html


def test_plain_text_and_excerpt_strip_markup_and_cut_at_words() -> None:
    assert plain_text("# Title\n\nSome *words* and `code`.\n\n- a\n- b") == "Title Some words and code. a b"
    assert plain_text("<script>alert(1)</script>") == "<script>alert(1)</script>"  # text: the template escapes it
    long = "word " * 100
    cut = excerpt(long, 40)
    assert cut.endswith("…") and len(cut) <= 41 and not cut[:-1].endswith(" ")
    assert excerpt("short") == "short"


def test_very_long_sources_are_cut_before_parsing() -> None:
    html = str(render_markdown("a" * 300_000))
    assert len(html) < 120_000


def test_rendering_is_memoised_and_the_memo_keeps_only_the_sanitised_answer() -> None:
    source = "A *short* dispatch. <script>alert(1)</script> [x](javascript:alert(1))"
    first = render_markdown(source)
    again = render_markdown(source)
    assert again is first  # served from the memo, not rendered again
    html = str(again)
    assert "<script" not in html and "javascript:" not in html_tags(html) and "<em>short</em>" in html
    long = "word " * (CACHE_MAX_ENTRY_BYTES // 5 + 1)  # larger than one entry may be: rendered each time
    assert render_markdown(long) == render_markdown(long) and render_markdown(long) is not render_markdown(long)


def test_the_memo_stays_within_its_byte_budget_and_drops_the_least_recently_used() -> None:
    cache = RenderCache(budget=64 * 1024, max_entry=8 * 1024)
    sources = [f"Post number {n}. " + "The tide came in slowly. " * 40 for n in range(200)]
    favourite, early = cache.render(sources[0]), cache.render(sources[1])
    for source in sources[2:]:
        cache.render(source)
        assert cache.render(sources[0]) is favourite  # read after every other post: never the one dropped
        assert cache.size <= 64 * 1024
    assert cache.render(sources[-1]) is cache.render(sources[-1])  # recent: kept
    assert cache.render(sources[1]) is not early  # long unread: dropped, so rendered again
