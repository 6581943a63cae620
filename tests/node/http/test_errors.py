"""Errors to HTTP (`ftm.node.http.errors`): what cannot be done now but can later is 503 with a Retry-After, and
its message stays in the log."""

from __future__ import annotations

from aiohttp import web
from pytest_aiohttp.plugin import AiohttpClient

from ftm.node.custody import CustodyUnavailable
from ftm.node.errors import Forbidden
from ftm.node.http.errors import RETRY_AFTER_SECONDS, create_error_middleware, status_for


async def _no_keepers(request: web.Request) -> web.Response:
    raise CustodyUnavailable("2 of the 3 shares needed for resident r-CANARY epoch 4 were released (x=3 did not)")


async def _forbidden(request: web.Request) -> web.Response:
    raise Forbidden("that token was revoked")


def _page(request: web.Request, status: int, code: str, message: str) -> web.Response | None:
    if not request.path.startswith("/page"):
        return None
    return web.Response(text=f"<p>{code}: {message}</p>", status=status, content_type="text/html")


def _app() -> web.Application:
    app = web.Application(middlewares=[create_error_middleware(_page)])
    app.router.add_post("/api/intake", _no_keepers)
    app.router.add_get("/page/run", _no_keepers)
    app.router.add_get("/api/forbidden", _forbidden)
    return app


def test_custody_unavailable_is_503_not_a_client_error() -> None:
    assert status_for(CustodyUnavailable("too few keepers")) == 503
    assert RETRY_AFTER_SECONDS[503] > 0


async def test_too_few_keepers_answer_503_with_retry_after(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(_app())

    answer = await client.post("/api/intake")
    assert answer.status == 503
    assert answer.headers["Retry-After"] == str(RETRY_AFTER_SECONDS[503])
    error = (await answer.json())["error"]
    assert error["code"] == "custody_unavailable"
    assert "CANARY" not in error["message"] and "try again later" in error["message"]

    page = await client.get("/page/run")  # a page answers the same status, with the header too
    assert page.status == 503 and page.headers["Retry-After"] == str(RETRY_AFTER_SECONDS[503])
    assert "custody_unavailable" in await page.text()

    other = await client.get("/api/forbidden")  # other errors ask for no wait
    assert other.status == 403 and "Retry-After" not in other.headers
