"""Read a page the way a browser would (tags and attributes, not text) to check that nothing in it is live."""

from __future__ import annotations

from html.parser import HTMLParser

_PLAIN_META = ("viewport", "color-scheme", "theme-color", "description")


_PLAIN_META = ("viewport", "color-scheme", "theme-color", "description")


class Markup(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))

    def live_problems(self) -> list[str]:
        """Everything that could run script, load from elsewhere or hand the page to another site."""
        problems = []
        for tag, attrs in self.tags:
            if tag in ("img", "iframe", "object", "embed", "math", "base"):
                problems.append(f"<{tag}>")
            if tag == "meta" and "charset" not in attrs and attrs.get("name") not in _PLAIN_META:
                problems.append("<meta>")  # http-equiv refresh or set-cookie would act on the page
            if tag == "script" and "src" not in attrs:
                problems.append("inline <script>")
            if tag == "script" and not attrs.get("src", "").startswith("/static/"):
                problems.append(f"script from {attrs.get('src')}")
            problems += [f"<{tag} {name}>" for name in attrs if name.startswith("on")]
            problems += [f"<{tag} style>" for name in attrs if name == "style"]
            for name in ("href", "src", "action", "formaction"):
                value = attrs.get(name, "").strip().lower()
                if value.startswith(("javascript:", "data:", "vbscript:")):
                    problems.append(f"<{tag} {name}={value[:20]}>")
            if tag == "form" and not attrs.get("action", "/").startswith("/"):
                problems.append(f"form to {attrs.get('action')}")
        return problems
