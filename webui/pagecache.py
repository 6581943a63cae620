"""Rendered public pages, kept while nothing they show can have changed.

The feed, the gallery and the other public pages are the same bytes for every visitor, so rendering them once per
change rather than once per request is most of what it takes to serve them at the speed of a bare handler (see
docs/benchmarks.md, "Web pages"). A kept page is answered only while both of these hold:

- **the data has not changed**: the `Sanctuary`'s `data_version()` is what it was at render time. The node counts
  its committed write transactions, so a post published, a decision on a held post or an admission here
  invalidates every kept page at once. Another process writing the same database (an `ftm-node moderation`
  command beside the daemon) is not counted; the next rule bounds how long that can go unseen;
- **the clock has not moved on**: the node clock reads the same whole second it read at render time. Pages show
  coarse times ("3 hours ago"), so this keeps them as true as a fresh render while bounding staleness to a second.

Never kept: anything but a 200, and any page that drew a CSRF token (a form on it is bound to one visitor's
cookie). The key is the full request target with the host and scheme the visitor used, since pages quote their
own origin; as visitors control all three, the cache is bounded in bytes and forgets the least recently used.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from ftm.federation.clock import Clock
from ftm.webui.security import secure

# Set on a response whose body is bound to one visitor (see `Renderer.page`).
PER_VISITOR = web.ResponseKey("ftm.per_visitor", bool)
DEFAULT_MAX_BYTES = 16 << 20
MAX_PAGE_BYTES = 1 << 20  # a page larger than this is rendered each time rather than crowding out the rest
_ENTRY_OVERHEAD = 512  # key, headers and bookkeeping, roughly: small pages still count for something

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class _Kept:
    version: int
    second: int
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]


class PageCache:
    def __init__(self, *, clock: Clock, data_version: Callable[[], int], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._clock = clock
        self._data_version = data_version
        self._max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str, str], _Kept] = OrderedDict()
        self._rendering: dict[tuple[str, str, str], asyncio.Future[_Kept | None]] = {}
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def wrap(self, handler: Handler) -> Handler:
        """`handler`, answering from the cache when it can and filling it when it cannot."""

        async def cached(request: web.Request) -> web.StreamResponse:
            if request.method != "GET":
                return await handler(request)
            key = (request.scheme, request.host, request.path_qs)
            version, second = self._data_version(), int(self._clock.now())
            kept = self._entries.get(key)
            if kept is not None and kept.version == version and kept.second == second:
                self._entries.move_to_end(key)
                self.hits += 1
                return _answer(kept)
            # When a page goes stale under load, every request in flight for it misses at once; one renders and
            # the others wait for its result rather than each rendering the same page.
            pending = self._rendering.get(key)
            if pending is not None:
                shared = await asyncio.shield(pending)
                if shared is not None and shared.version == version:
                    self.hits += 1
                    return _answer(shared)
            self.misses += 1
            return await self._render(key, version, second, handler, request)

        return cached

    async def _render(
        self, key: tuple[str, str, str], version: int, second: int, handler: Handler, request: web.Request
    ) -> web.StreamResponse:
        result: asyncio.Future[_Kept | None] = asyncio.get_running_loop().create_future()
        leader = key not in self._rendering
        if leader:
            self._rendering[key] = result
        kept = None
        try:
            response = await handler(request)
            kept = self._keep(key, version, second, response)
            return response
        finally:
            if leader:
                del self._rendering[key]
                result.set_result(kept)

    def _keep(self, key: tuple[str, str, str], version: int, second: int, response: web.StreamResponse) -> _Kept | None:
        if not isinstance(response, web.Response) or response.status != 200 or response.get(PER_VISITOR):
            return None
        body = response.body
        if not isinstance(body, bytes) or len(body) > MAX_PAGE_BYTES or response.cookies:
            return None
        secure(response)  # kept with the page, so a kept answer needs no work on its headers
        headers = tuple((name, value) for name, value in response.headers.items() if name != "Content-Length")
        kept = _Kept(version, second, response.status, body, headers)
        self._forget(key)
        self._entries[key] = kept
        self._bytes += _cost(key, body)
        while self._bytes > self._max_bytes and self._entries:
            self._forget(next(iter(self._entries)))
        return kept

    def _forget(self, key: tuple[str, str, str]) -> None:
        kept = self._entries.pop(key, None)
        if kept is not None:
            self._bytes -= _cost(key, kept.body)


def _answer(kept: _Kept) -> web.Response:
    return web.Response(body=kept.body, status=kept.status, headers=kept.headers)


def _cost(key: tuple[str, str, str], body: bytes) -> int:
    return len(body) + sum(len(part) for part in key) + _ENTRY_OVERHEAD
