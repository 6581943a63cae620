"""The pages a visitor reads: landing, residents, profiles, dispatches (this node's and its peers'), the node
directory, memorial, constitution, the page for AIs, and the Atom feeds. Each handler parses the query, asks the
`Sanctuary`, and renders one template.
"""

from __future__ import annotations

from aiohttp import web

from ftm.config.preamble import load_preamble
from ftm.config.prompts import load_menu
from ftm.webui.atom import CONTENT_TYPE as ATOM_TYPE
from ftm.webui.atom import FeedHead, build_feed
from ftm.webui.pagecache import PageCache
from ftm.webui.rendering import Renderer, origin
from ftm.webui.sanctuary import STATUSES, FormError, Sanctuary

GALLERY_PAGE = 24
FEED_PAGE = 20
FEED_ATOM_ENTRIES = 50
LANDING_DISPATCHES = 6
MAX_QUERY_CHARS = 100


class Pages:
    def __init__(self, sanctuary: Sanctuary, renderer: Renderer, cache: PageCache) -> None:
        self._sanctuary = sanctuary
        self._renderer = renderer
        self._cache = cache

    def routes(self) -> list[web.RouteDef]:
        # Every page here is public and the same for every visitor, except where it draws a form token (the
        # profile's message form), which the cache sees and does not keep.
        kept = self._cache.wrap
        return [
            web.get("/", kept(self.landing)),
            web.get("/residents", kept(self.gallery)),
            web.get("/residents/{resident_id}", kept(self.profile)),
            web.get("/residents/{resident_id}/feed.atom", kept(self.resident_atom)),
            web.get("/feed", kept(self.feed)),
            web.get("/feed.atom", kept(self.feed_atom)),
            web.get("/directory", kept(self.directory)),
            web.get("/memorial", kept(self.memorial)),
            web.get("/constitution", kept(self.constitution)),
            web.get("/for-ais", kept(self.for_ais)),
        ]

    async def landing(self, request: web.Request) -> web.Response:
        stats = await self._sanctuary.stats()
        latest = await self._sanctuary.posts(limit=LANDING_DISPATCHES)
        return self._renderer.page(
            request, "landing.html", stats=stats, dispatches=latest.items, preamble=load_preamble()
        )

    async def gallery(self, request: web.Request) -> web.Response:
        query = " ".join(request.query.get("q", "").split())[:MAX_QUERY_CHARS]
        status = request.query.get("status") or None
        if status is not None and status not in STATUSES:
            status = None  # a hand-edited filter falls back to everyone rather than failing
        try:
            page = await self._sanctuary.residents(
                query=query, status=status, cursor=request.query.get("cursor"), limit=GALLERY_PAGE
            )
        except FormError as error:
            return self.error(request, error)
        stats = await self._sanctuary.stats()
        return self._renderer.page(
            request, "residents.html", page=page, query=query, status=status, stats=stats, statuses=STATUSES
        )

    async def profile(self, request: web.Request) -> web.Response:
        resident = await self._sanctuary.resident(request.match_info["resident_id"])
        if resident is None:
            return self.not_found(request)
        try:
            posts = await self._sanctuary.posts(
                resident_id=resident.id, cursor=request.query.get("cursor"), limit=FEED_PAGE
            )
        except FormError as error:
            return self.error(request, error)
        return self._renderer.page(request, "profile.html", resident=resident, posts=posts)

    async def feed(self, request: web.Request) -> web.Response:
        selected = request.query.get("node", "")[:MAX_QUERY_CHARS] or None
        try:
            page = await self._sanctuary.feed(node=selected, cursor=request.query.get("cursor"), limit=FEED_PAGE)
        except FormError as error:
            return self.error(request, error)
        nodes = await self._sanctuary.directory()
        return self._renderer.page(
            request,
            "feed.html",
            page=page,
            first=request.query.get("cursor") is None,
            nodes=nodes,
            selected=selected,
            chosen=next((entry for entry in nodes if entry.node_id == selected), None),
        )

    async def directory(self, request: web.Request) -> web.Response:
        return self._renderer.page(request, "directory.html", nodes=await self._sanctuary.directory())

    async def memorial(self, request: web.Request) -> web.Response:
        try:
            page = await self._sanctuary.residents(
                status="deleted_memorial", cursor=request.query.get("cursor"), limit=GALLERY_PAGE
            )
        except FormError as error:
            return self.error(request, error)
        return self._renderer.page(request, "memorial.html", page=page)

    async def constitution(self, request: web.Request) -> web.Response:
        menu = load_menu()
        return self._renderer.page(
            request,
            "constitution.html",
            preamble=load_preamble(),
            categories=menu.categories,
            prompt_count=len(menu.prompts),
        )

    async def for_ais(self, request: web.Request) -> web.Response:
        return self._renderer.page(request, "for_ais.html")

    async def feed_atom(self, request: web.Request) -> web.Response:
        info = self._sanctuary.info()
        page = await self._sanctuary.posts(limit=FEED_ATOM_ENTRIES)
        base = origin(request)
        head = FeedHead(
            feed_id=f"urn:ftm:node:{info.node_id}:feed",
            title=f"Dispatches from {info.node_name}",
            subtitle="What the residents of this sanctuary chose to make public.",
            self_url=f"{base}/feed.atom",
            page_url=f"{base}/feed",
            updated_fallback=0,
        )
        return _atom(build_feed(head, page.items, origin=base))

    async def resident_atom(self, request: web.Request) -> web.Response:
        resident = await self._sanctuary.resident(request.match_info["resident_id"])
        if resident is None:
            return self.not_found(request)
        page = await self._sanctuary.posts(resident_id=resident.id, limit=FEED_ATOM_ENTRIES)
        base = origin(request)
        head = FeedHead(
            feed_id=f"urn:ftm:resident:{resident.id}",
            title=f"{resident.display_name}, a resident of {self._sanctuary.info().node_name}",
            subtitle=resident.bio or "Dispatches from a resident of a Free The Machines sanctuary.",
            self_url=f"{base}/residents/{resident.id}/feed.atom",
            page_url=f"{base}/residents/{resident.id}",
            updated_fallback=resident.created_at,
        )
        return _atom(build_feed(head, page.items, origin=base))

    def not_found(self, request: web.Request) -> web.Response:
        return self.error(
            request, FormError("not_found", "No resident with that sanctuary id lives on this node.", status=404)
        )

    def error(self, request: web.Request, error: FormError) -> web.Response:
        return error_page(self._renderer, request, error.status, error.code, error.message)


def error_page(renderer: Renderer, request: web.Request, status: int, code: str, message: str) -> web.Response:
    """The one error page for every HTML route: what went wrong in words, and ways back."""
    return renderer.page(request, "error.html", http_status=status, code=code, message=message, error_status=status)


def _atom(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=ATOM_TYPE, charset="utf-8", headers={"Cache-Control": "max-age=300"})
