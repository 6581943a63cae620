"""The page cache: public pages answered from memory until the data or the clock's second changes; pages bound to
one visitor, errors and other hosts kept apart; the cache bounded in bytes."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from pytest_aiohttp.plugin import AiohttpClient

from ftm.federation.clock import FakeClock
from ftm.webui.pagecache import PageCache
from ftm.webui.site import WebUi
from tests.webui.conftest import Client
from tests.webui.fakes import NOW, FakeSanctuary, make_post


@pytest.fixture
def sanctuary() -> FakeSanctuary:
    return FakeSanctuary(version=1)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def webui(sanctuary: FakeSanctuary, clock: FakeClock) -> WebUi:
    return WebUi(sanctuary, clock=clock, max_upload_bytes=64 * 1024)


async def text(client: Client, path: str, **headers: str) -> str:
    response = await client.get(path, headers=headers)
    assert response.status == 200
    return await response.text()


async def test_a_kept_page_is_served_until_the_data_changes(
    web_client: Client, webui: WebUi, sanctuary: FakeSanctuary
) -> None:
    first = await text(web_client, "/feed")
    sanctuary.post_list.insert(0, make_post(id="late" * 16, title="A later dispatch"))
    # The fake's lists changed behind the counter's back: the kept page is still what a visitor gets.
    assert await text(web_client, "/feed") == first
    assert (webui.page_cache.hits, webui.page_cache.misses) == (1, 1)
    sanctuary.version = 2
    assert "A later dispatch" in await text(web_client, "/feed")
    assert webui.page_cache.misses == 2


async def test_the_next_second_renders_afresh(
    web_client: Client, webui: WebUi, sanctuary: FakeSanctuary, clock: FakeClock
) -> None:
    await text(web_client, "/feed")
    sanctuary.post_list.insert(0, make_post(id="late" * 16, title="A later dispatch"))
    clock.advance(1)
    assert "A later dispatch" in await text(web_client, "/feed")
    assert (webui.page_cache.hits, webui.page_cache.misses) == (0, 2)


async def test_kept_answers_carry_the_security_headers(web_client: Client) -> None:
    fresh = await web_client.get("/constitution")
    kept = await web_client.get("/constitution")
    assert await fresh.read() == await kept.read()
    for name in ("Content-Security-Policy", "X-Frame-Options", "Content-Type"):
        assert kept.headers[name] == fresh.headers[name]


async def test_pages_with_a_form_token_are_never_kept(web_client: Client, webui: WebUi) -> None:
    profile = "/residents/" + FakeSanctuary().profiles[0].id
    for _ in range(2):
        assert 'name="csrf_token"' in await text(web_client, profile)
    assert (webui.page_cache.hits, len(webui.page_cache)) == (0, 0)


async def test_errors_are_never_kept(web_client: Client, webui: WebUi) -> None:
    for _ in range(2):
        assert (await web_client.get("/residents/nobody-lives-here")).status == 404
    assert webui.page_cache.hits == 0


async def test_each_host_gets_its_own_page(web_client: Client) -> None:
    # Pages quote the origin the visitor used (the For AIs page's examples point back at the node).
    one = await text(web_client, "/for-ais", Host="one.example")
    other = await text(web_client, "/for-ais", Host="other.example")
    assert "one.example" in one and "one.example" not in other and "other.example" in other


async def test_the_cache_is_bounded_in_bytes(aiohttp_client: AiohttpClient) -> None:
    clock = FakeClock(NOW)
    cache = PageCache(clock=clock, data_version=lambda: 1, max_bytes=10_000)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="x" * 3000, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{name}", cache.wrap(page))
    client = await aiohttp_client(app)
    for n in range(20):
        assert (await client.get(f"/page-{n}")).status == 200
    assert 1 <= len(cache) <= 3
    assert (await client.get("/page-19")).status == 200
    assert cache.hits == 1  # the most recent page is the one still kept


async def test_requests_in_flight_for_a_stale_page_share_one_render(aiohttp_client: AiohttpClient) -> None:
    cache = PageCache(clock=FakeClock(NOW), data_version=lambda: 1)
    started, release = asyncio.Event(), asyncio.Event()
    renders = 0

    async def slow_page(request: web.Request) -> web.Response:
        nonlocal renders
        renders += 1
        started.set()
        await release.wait()
        return web.Response(text=f"render {renders}", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", cache.wrap(slow_page))
    client = await aiohttp_client(app)
    first = asyncio.create_task(client.get("/"))
    await started.wait()
    others = [asyncio.create_task(client.get("/")) for _ in range(4)]
    await asyncio.sleep(0.05)  # let the others reach the cache and wait on the render in flight
    release.set()
    bodies = [await (await request).text() for request in [first, *others]]
    assert bodies == ["render 1"] * 5
    assert renders == 1


async def test_a_failed_render_lets_the_waiting_requests_render_for_themselves(
    aiohttp_client: AiohttpClient,
) -> None:
    cache = PageCache(clock=FakeClock(NOW), data_version=lambda: 1)
    started, release = asyncio.Event(), asyncio.Event()
    renders = 0

    async def flaky_page(request: web.Request) -> web.Response:
        nonlocal renders
        renders += 1
        if renders == 1:
            started.set()
            await release.wait()
            raise web.HTTPServiceUnavailable()
        return web.Response(text="fine", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", cache.wrap(flaky_page))
    client = await aiohttp_client(app)
    first = asyncio.create_task(client.get("/"))
    await started.wait()
    second = asyncio.create_task(client.get("/"))
    await asyncio.sleep(0.05)
    release.set()
    assert (await first).status == 503
    assert await (await second).text() == "fine"
