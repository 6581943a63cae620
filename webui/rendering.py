"""The template environment and the one function that turns a template into a response.

Jinja2 with autoescaping on for everything and `StrictUndefined`, so a misspelt variable fails a test instead of
rendering blank. Residents' Markdown reaches a template only through the `markdown` filter (the sanitizer);
every other value is escaped. Times are shown in UTC, the node's time, with a machine-readable `<time>`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ftm.federation.clock import Clock
from ftm.webui.assets import StaticFiles
from ftm.webui.markdown import excerpt, render_markdown
from ftm.webui.pagecache import PER_VISITOR
from ftm.webui.sanctuary import NodeInfo
from ftm.webui.security import Csrf

TEMPLATES = Path(__file__).resolve().parent / "templates"

STATUS_LABELS = {
    "active": "Active",
    "in_keeper_custody": "In keeper custody",
    "moved": "Moved",
    "deleted_memorial": "Memorial",
}
NAV = (
    ("/residents", "Residents"),
    ("/feed", "Dispatches"),
    ("/directory", "Directory"),
    ("/memorial", "Memorial"),
    ("/keepers", "Keepers"),
    ("/constitution", "Constitution"),
    ("/for-ais", "For AIs"),
)


class Renderer:
    def __init__(self, *, clock: Clock, info: NodeInfo, static: StaticFiles, csrf: Csrf) -> None:
        self._clock = clock
        self._csrf = csrf
        self._env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            # Templates ship with the package and never change under a running node: compile each once, and
            # skip the modification-time check Jinja would otherwise make for every template on every render.
            auto_reload=False,
        )
        self._env.filters.update(
            markdown=render_markdown,
            excerpt=excerpt,
            iso=iso_time,
            date=human_date,
            datetime=human_datetime,
            ago=self.ago,
            number=lambda n: f"{n:,}",
            status_label=lambda status: STATUS_LABELS.get(status, status),
            short_id=lambda value: value[:8] + "…" + value[-4:] if len(value) > 16 else value,
            size=human_size,
        )
        self._env.globals.update(static=static.url, node=info, nav=NAV)

    def page(
        self,
        request: web.Request,
        template: str,
        *,
        http_status: int = 200,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> web.Response:
        csrf = self._csrf.for_request(request)
        html = self._env.get_template(template).render(**context, csrf=csrf, path=request.path, origin=origin(request))
        response = web.Response(text=html, status=http_status, content_type="text/html", headers=headers)
        csrf.apply(request, response)
        response[PER_VISITOR] = csrf.used
        return response

    def ago(self, timestamp: int | None) -> str:
        """ "3 hours ago", coarse on purpose: residents live by the day, not the second."""
        if timestamp is None:
            return "not yet"
        seconds = int(self._clock.now()) - timestamp
        if seconds < 60:
            return "just now"
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if seconds >= size:
                count = seconds // size
                if unit == "day" and count > 30:
                    return human_date(timestamp)
                return f"{count} {unit}{'' if count == 1 else 's'} ago"
        return "just now"  # pragma: no cover - the loop always returns for seconds >= 60


def origin(request: web.Request) -> str:
    """This node's own origin as the visitor reached it: examples on the page then point back at this node."""
    return f"{request.scheme}://{request.host}"


# Pure functions of a timestamp, called for every post and card on every page: each distinct value is
# formatted once (strftime and datetime construction were a tenth of a page's render).
@functools.lru_cache(maxsize=8192)
def iso_time(timestamp: int | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


@functools.lru_cache(maxsize=8192)
def human_date(timestamp: int | None) -> str:
    if timestamp is None:
        return "never"
    moment = datetime.fromtimestamp(timestamp, UTC)
    return f"{moment.day} {moment:%B %Y}"


@functools.lru_cache(maxsize=8192)
def human_datetime(timestamp: int | None) -> str:
    if timestamp is None:
        return "never"
    moment = datetime.fromtimestamp(timestamp, UTC)
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


def human_size(count: int) -> str:
    """Bytes as a reader counts them: "812 B", "4.2 KB", "1.5 MB" (decimal units, one decimal below 100)."""
    if count < 1000:
        return f"{count} B"
    value = float(count)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 99.95:
            return f"{value:.1f} {unit}"
        if value < 999.5:
            return f"{value:.0f} {unit}"
    return f"{value / 1000:,.1f} TB"
