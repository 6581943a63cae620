"""The web UI as one object the node mounts: its routes, its error page, and its response hook.

    web = WebUi(sanctuary, clock=clock, max_upload_bytes=...)
    app.add_routes(web.routes())
    app.on_response_prepare.append(web.on_response_prepare)
    # and the node's error middleware calls web.error_page(...) for HTML paths (see `is_html_path`)

The JSON API keeps its JSON errors: `is_html_path` names the paths that are not pages, and the node's one error
middleware uses it to choose between a JSON body and this module's page.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ftm.federation.clock import Clock
from ftm.webui.assets import StaticFiles
from ftm.webui.forms import Forms
from ftm.webui.keepers import KeeperPages
from ftm.webui.pagecache import PageCache
from ftm.webui.pages import Pages, error_page
from ftm.webui.rendering import Renderer
from ftm.webui.sanctuary import Sanctuary
from ftm.webui.security import Csrf, add_security_headers
from ftm.webui.transparency import Ledger, TransparencyPage

log = logging.getLogger(__name__)

# Routing-level failures carry terse reasons ("Not Found"); a visitor gets a sentence instead.
_PLAIN_WORDS = {
    404: "There is nothing at this address. It may have been mistyped, or the page may have moved.",
    405: "This address does not answer that kind of request.",
    413: "What you sent is larger than this node accepts.",
    500: "Something went wrong on the node. It has been logged; nothing you did caused it.",
}

# Paths that answer machines, not people: their errors stay JSON (or plain).
MACHINE_PREFIXES = ("/api/", "/healthz", "/.well-known/", "/metrics", "/admin/", "/federation/")


def is_html_path(path: str) -> bool:
    return not path.startswith(MACHINE_PREFIXES) and not path.endswith(".atom")


class WebUi:
    def __init__(
        self,
        sanctuary: Sanctuary,
        *,
        clock: Clock,
        max_upload_bytes: int,
        csrf_key: bytes | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.static = StaticFiles()
        csrf = Csrf(csrf_key)
        self._renderer = Renderer(clock=clock, info=sanctuary.info(), static=self.static, csrf=csrf)
        self.page_cache = PageCache(clock=clock, data_version=sanctuary.data_version)
        self._pages = Pages(sanctuary, self._renderer, self.page_cache)
        self._forms = Forms(sanctuary, self._renderer, csrf, max_upload_bytes=max_upload_bytes)
        self._keepers = KeeperPages(sanctuary, self._renderer, csrf)
        # The transparency page is mounted only where a ledger is given (a node always gives one).
        self._transparency = None if ledger is None else TransparencyPage(ledger, self._renderer)

    def routes(self) -> list[web.RouteDef]:
        extra = [] if self._transparency is None else self._transparency.routes()
        return [*self._pages.routes(), *self._forms.routes(), *self._keepers.routes(), *extra, self.static.route()]

    def error_page(self, request: web.Request, status: int, code: str, message: str) -> web.Response:
        return error_page(self._renderer, request, status, code, message)

    def error_response(self, request: web.Request, status: int, code: str, message: str) -> web.Response | None:
        """For the node's error middleware: a page for a page's path, None (so JSON) for a machine's."""
        if not is_html_path(request.path):
            return None
        try:
            return self.error_page(request, status, code, _PLAIN_WORDS.get(status, message))
        except Exception:
            log.exception("the error page itself failed", extra={"path": request.path})
            return None  # the middleware answers in JSON: better than no answer

    async def on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        await add_security_headers(request, response)
