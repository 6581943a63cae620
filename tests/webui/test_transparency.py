"""The transparency page over a fake ledger: honest custody words, keepers and what they hold, proof history,
receipts for deleted residents, canary, chain status, escaping."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from pytest_aiohttp.plugin import AiohttpClient

from ftm.federation.clock import FakeClock
from ftm.webui.site import WebUi
from ftm.webui.transparency import (
    BackupHeld,
    CanaryView,
    ChainStatus,
    CustodyView,
    DeletionReceipts,
    KeeperNode,
    LogLine,
    LogSlice,
    NodeKeys,
    ProofTry,
)
from tests.webui.fakes import HOSTILE, NOW, FakeSanctuary
from tests.webui.markup import Markup

LOCAL = CustodyView("local", 0, 0, 7, (), ())


def keeper_node(**overrides: object) -> KeeperNode:
    fields: dict[str, object] = {
        "keeper_id": "keeper-0a1b2c",
        "public_key": "ab" * 32,
        "url": "https://keeper.example.org",
        "name": "Ann Calloway",
        "state": "active",
        "enrolled_at": NOW - 40 * 86400,
        "last_seen_at": NOW - 600,
        "backups": (
            BackupHeld("lumen", "Lumen", "active", 7, "committed", 1_540_000),
            BackupHeld("quill", "", "", 3, "pending", 812),
        ),
        "backups_total": 2,
        "bytes_total": 1_540_812,
        "proofs": (
            ProofTry(NOW - 3600, "lumen", "Lumen", 7, "passed", "", 0),
            ProofTry(NOW - 7200, "lumen", "Lumen", 7, "contained", "unreachable", 1),
            ProofTry(NOW - 9000, "lumen", "", 6, "failed", "bad_merkle:wrong_root", 2),
        ),
        "passed_recent": 12,
        "contained_recent": 1,
        "failed_recent": 1,
    }
    fields.update(overrides)
    return KeeperNode(**fields)  # type: ignore[arg-type]


@dataclass
class FakeLedger:
    custody_mode: str = "local"
    status: ChainStatus = field(default_factory=lambda: ChainStatus(1, True, NOW))
    current: CanaryView | None = None
    asked: list[int | None] = field(default_factory=list)
    report: CustodyView = LOCAL

    def keys(self) -> NodeKeys:
        return NodeKeys("node0000000000000000000000", "ab" * 32, "0.0.test", self.custody_mode)

    async def chain(self) -> ChainStatus:
        return self.status

    async def log(self, *, before: int | None, limit: int) -> LogSlice:
        self.asked.append(before)
        return LogSlice((LogLine(1, NOW, "resident_admitted", "lumen", (("ref", HOSTILE),), "cd" * 32),), None)

    async def canary(self) -> CanaryView | None:
        return self.current

    async def custody(self) -> CustodyView:
        return self.report


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


async def test_local_custody_says_plainly_there_are_no_keepers(aiohttp_client: AiohttpClient) -> None:
    html = await page(FakeLedger(), aiohttp_client)
    assert "No keepers." in html and "no keeper node holds a share or a replica" in html
    assert 'class="custodians"' not in html and 'id="deletions"' not in html and "quorum" not in html
    enrolled = CustodyView("local", 0, 0, 7, (keeper_node(backups=(), backups_total=0, bytes_total=0),), ())
    html = await page(FakeLedger(report=enrolled), aiohttp_client)
    assert "1 keeper node is enrolled, ready for threshold custody" in html and "Ann Calloway" in html


async def test_threshold_custody_shows_each_keeper_what_it_holds_and_its_proofs(aiohttp_client: AiohttpClient) -> None:
    suspect = keeper_node(
        keeper_id="keeper-9f8e7d", name="", state="suspect", backups=(), backups_total=0, bytes_total=0, proofs=()
    )
    report = CustodyView("threshold", 3, 5, 7, (keeper_node(), suspect), ())
    html = await page(FakeLedger(custody_mode="threshold", report=report), aiohttp_client)
    assert (
        '<span class="quorum__k">3</span> <span class="quorum__of">of</span> <span class="quorum__n">5</span>' in html
    )
    assert "Any <strong>3</strong> of them" in html and "2 or fewer" in html
    assert "No keepers." not in html
    assert "Ann Calloway" in html and "https://keeper.example.org" in html and "keeper-0a1b2c" in html
    assert '<a href="/residents/lumen">Lumen</a>' in html  # a resident links to its profile
    assert '<span class="mono">quill</span>' in html  # one this node no longer has: its id only
    assert "1.5 MB" in html and "812 B" in html and "2 epochs · 1.5 MB" in html
    for result in ("passed", "contained", "failed"):
        assert f"proof-strip__try--{result}" in html and f"status--{result}" in html
    assert "12 passed" in html and "1 contained" in html and "1 counted failure" in html
    assert "bad_merkle:wrong_root" in html and "retry 2" in html
    assert "A keeper node" in html and "status--suspect" in html and "Not challenged yet" in html


async def test_deleted_residents_show_their_receipts_and_whether_they_are_shredded(
    aiohttp_client: AiohttpClient,
) -> None:
    deletions = (
        DeletionReceipts("marrow", "Marrow", NOW - 86400, 5, 3, 3, True),
        DeletionReceipts("wren", HOSTILE, NOW - 600, 5, 2, 3, False),
    )
    report = CustodyView("threshold", 3, 5, 7, (keeper_node(),), deletions)
    html = await page(FakeLedger(custody_mode="threshold", report=report), aiohttp_client)
    assert 'href="#deletions"' in html and "fewer than k can still hold a share" in html
    assert "<strong>3 of 5</strong> receipts, 3 needed" in html and "<strong>2 of 5</strong> receipts" in html
    assert html.count("meter__cell--in") == 5 and html.count("meter__cell--needed") == 2
    assert "shred--done" in html and "shred--waiting" in html and "waiting for receipts" in html


async def test_keeper_and_resident_words_are_escaped(aiohttp_client: AiohttpClient) -> None:
    hostile = keeper_node(
        name=HOSTILE,
        url=HOSTILE,
        keeper_id=HOSTILE,
        backups=(BackupHeld(HOSTILE, HOSTILE, "active", 1, "committed", 10),),
        proofs=(ProofTry(NOW, HOSTILE, HOSTILE, 1, "failed", HOSTILE, 0),),
    )
    deletions = (DeletionReceipts(HOSTILE, HOSTILE, None, 0, 0, 0, False),)
    html = await page(FakeLedger(report=CustodyView("threshold", 3, 5, 7, (hostile,), deletions)), aiohttp_client)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert Markup(html).live_problems() == []
