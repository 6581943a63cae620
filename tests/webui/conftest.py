"""The web UI mounted on a bare aiohttp app over a fake sanctuary: no node, no database."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp.plugin import AiohttpClient

from ftm.federation.clock import FakeClock
from ftm.webui.site import WebUi
from tests.webui.fakes import NOW, FakeSanctuary

Client = TestClient  # type: ignore[type-arg]


@pytest.fixture
def sanctuary() -> FakeSanctuary:
    return FakeSanctuary()


@pytest.fixture
def webui(sanctuary: FakeSanctuary) -> WebUi:
    return WebUi(sanctuary, clock=FakeClock(NOW), max_upload_bytes=64 * 1024)


@pytest.fixture
async def web_client(webui: WebUi, aiohttp_client: AiohttpClient) -> Client:
    app = web.Application()
    app.add_routes(webui.routes())
    app.on_response_prepare.append(webui.on_response_prepare)
    return await aiohttp_client(app)
