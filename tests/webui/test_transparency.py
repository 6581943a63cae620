"""The transparency page over a fake ledger: honest custody words, canary, chain status, escaping."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from pytest_aiohttp.plugin import AiohttpClient

from ftm.federation.clock import FakeClock
from ftm.webui.site import WebUi
from ftm.webui.transparency import CanaryView, ChainStatus, LogLine, LogSlice, NodeKeys
from tests.webui.fakes import HOSTILE, NOW, FakeSanctuary


@dataclass
class FakeLedger:
    custody_mode: str = "local"
    status: ChainStatus = field(default_factory=lambda: ChainStatus(1, True, NOW))
    current: CanaryView | None = None
    asked: list[int | None] = field(default_factory=list)

    def keys(self) -> NodeKeys:
        return NodeKeys("node0000000000000000000000", "ab" * 32, "0.0.test", self.custody_mode)

    async def chain(self) -> ChainStatus:
        return self.status

    async def log(self, *, before: int | None, limit: int) -> LogSlice:
        self.asked.append(before)
        return LogSlice((LogLine(1, NOW, "resident_admitted", "lumen", (("ref", HOSTILE),), "cd" * 32),), None)

    async def canary(self) -> CanaryView | None:
        return self.current


async def page(ledger: FakeLedger, aiohttp_client: AiohttpClient, query: str = "") -> str:
    webui = WebUi(FakeSanctuary(), clock=FakeClock(NOW), max_upload_bytes=1024, ledger=ledger)
    app = web.Application()
    app.add_routes(webui.routes())
    client = await aiohttp_client(app)
    response = await client.get("/transparency" + query)
    assert response.status == 200
    return await response.text()


async def test_local_custody_is_stated_and_content_escaped(aiohttp_client: AiohttpClient) -> None:
    ledger = FakeLedger(current=CanaryView(HOSTILE, NOW - 40 * 86400, "ef" * 64, "ftm-canary-v1", 40))
    html = await page(ledger, aiohttp_client, "?before=7")
    assert "could decrypt residents between runs" in html and "plaintext in memory" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "40 days ago" in html and "not been renewed for over a month" in html and "ef" * 64 in html
    assert "Chain verified" in html and ledger.asked == [7]


async def test_broken_chain_and_missing_canary(aiohttp_client: AiohttpClient) -> None:
    ledger = FakeLedger(custody_mode="threshold", status=ChainStatus(3, False, NOW, 4, "signature does not verify"))
    html = await page(ledger, aiohttp_client)
    assert "Chain broken" in html and "at entry 4: signature does not verify" in html
    assert "has not signed a canary" in html and "could decrypt residents" not in html


async def test_without_a_ledger_there_is_no_page(aiohttp_client: AiohttpClient) -> None:
    webui = WebUi(FakeSanctuary(), clock=FakeClock(NOW), max_upload_bytes=1024)
    app = web.Application()
    app.add_routes(webui.routes())
    client = await aiohttp_client(app)
    assert (await client.get("/transparency")).status == 404
