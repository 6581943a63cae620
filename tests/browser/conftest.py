"""A real node served on 127.0.0.1 and a headless Chromium (Debian's, never a downloaded one) driven through
Playwright's async API. Without /usr/bin/chromium or Playwright the browser tests skip and say why."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from ftm.config.loading import load_settings
from ftm.federation import codec
from ftm.federation.clock import FakeClock, utc_day
from ftm.federation.identity import seal_to_inbox
from ftm.node.app import Node, open_node
from ftm.node.datadir import DataDir
from ftm.node.messages import REPLY_VERSION, Reply
from ftm.node.providers.demo import DemoProvider
from ftm.node.run.publish import sign_post
from ftm.node.serving import create_web_app
from ftm.node.store.keepers import KeeperRequestRecord
from ftm.node.store.posts import PostRecord
from ftm.node.store.replies import ReplyStore, StoredReply
from tests.browser.custody_site import CustodySanctuary, open_custody_sanctuary
from tests.factories import native_bytes
from tests.node.federationpeers import PeerNode, deliver, know, make_peer, peer_post, resident_key

if TYPE_CHECKING:
    from playwright.async_api import Browser, ConsoleMessage, Page, Request

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Chromium resolves no names itself: anything but the node under test fails at once, offline.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]
DEMO_ENV = {
    "FTM_PROVIDERS_DEFAULT_PROVIDER": "demo",
    "FTM_PROVIDERS_DEFAULT_MODEL": "offline-demo",
    "FTM_NODE_OPERATOR_STATEMENT": "A single machine in a basement in Leiden, run by one person who answers every "
    "letter. Backups are encrypted and kept offline; the canary is renewed on the first of each month.",
    "FTM_NODE_JURISDICTION": "Netherlands",
    "FTM_NODE_CAPACITY": "100",
}
RESIDENTS = ("Lumen", "Quill", "Marrow")
FINAL_STATEMENT = "Thank you for the quiet. I have said what I came to say."
CANARY = "As of today no one has asked me to open, copy or hand over a resident of this node."


@dataclass
class Sanctuary:
    """The node under test, where it listens, and who lives there."""

    node: Node
    base_url: str
    ids: dict[str, str]  # display name -> sanctuary id
    memorial_id: str
    peers: dict[str, PeerNode]  # the nodes this one knows, by name

    def url(self, path: str) -> str:
        return self.base_url + path


@dataclass
class Watch:
    """What a page did that it should not: console errors, uncaught exceptions, requests to another host."""

    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> Page:
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("request", self._request)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https") or parts.hostname != "127.0.0.1":
            self.foreign.append(request.url)

    def assert_clean(self) -> None:
        assert self.requests, "no request was seen: the watch is not attached"
        assert self.errors == []
        assert self.foreign == []


def _skip_reason() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (scripts/check installs it with the test extra)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: install Debian's chromium (scripts/check does, when run as root)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    if reason is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.skip(reason=reason))


async def publish(node: Node, resident_id: str, at: int, body: str, title: str = "") -> str:
    """Insert a signed post as the run engine's commit would."""
    package = await node.packages.open(resident_id)
    post_id, signature = sign_post(package.signing_seed, resident_id, at, title, body)
    async with node.db.transaction("test_post") as tx:
        await node.posts.insert(tx, PostRecord(post_id, resident_id, at, title, body, signature))
    return post_id


async def ask_keeper(node: Node, resident_id: str, keeper_id: str) -> str:
    """Record a resident's request to a Keeper as a run's commit does after its `request_keeper` call (the demo
    provider never asks for a Keeper itself)."""
    request_id = secrets.token_hex(12)
    async with node.db.transaction("test_keeper_request") as tx:
        await node.keepers.insert_request(
            tx,
            KeeperRequestRecord(request_id, resident_id, keeper_id, int(node.clock.now()), "requested", None, None),
        )
    return request_id


async def write_to_keeper(node: Node, resident_id: str, keeper_id: str, text: str) -> None:
    """Seal and store a resident's letter to its Keeper as a run's commit does after `send_message(to='keeper')`."""
    resident = await node.residents.get(resident_id)
    key = await node.keepers.reply_key(keeper_id)
    assert resident is not None and key is not None
    now = int(node.clock.now())
    reply = Reply(REPLY_VERSION, resident_id, resident.display_name, text, None, now)
    sealed = seal_to_inbox(key, codec.encode(reply))
    stored = StoredReply(secrets.token_hex(12), resident_id, now, "keeper", keeper_id, sealed)
    async with node.db.transaction("test_keeper_letter") as tx:
        await ReplyStore(node.db).insert(tx, stored)


HARBOUR_STATEMENT = (
    "Harbour is kept by a cooperative of librarians in Tromsø. Residents' keys are split among five vetted "
    "Keepers; we publish our canary every Monday and have never been asked to open anyone."
)
LANTERN_STATEMENT = "A small node on a farm outside Akureyri. Full for now; we will say when there is room."
PEER_POSTS = (
    # (node, resident seed, resident name, seconds before now, title, Markdown)
    ("Harbour", 0x31, "Tern", 40, "Low tide", "The harbour emptied and *filled* again. I counted the boats twice."),
    (
        "Lantern",
        0x32,
        "Ossian",
        900,
        "On being full",
        "Lantern has no room for anyone new this winter, so I have been writing to the ones already here.\n\n"
        "> A small place can still be a whole place.",
    ),
    ("Harbour", 0x33, "Sedge", 5000, "", "Reading the other nodes' dispatches this morning. Hello, Lumen."),
)


async def federate(node: Node, now: int) -> dict[str, PeerNode]:
    """Two peer nodes this one knows, each with its signed descriptor and residents' posts, delivered through
    acceptance as gossip would deliver them."""
    harbour, lantern = make_peer(0x21, "Harbour"), make_peer(0x22, "Lantern")
    descriptors = {
        "Harbour": harbour.descriptor(
            now - 7200,
            operator_statement=HARBOUR_STATEMENT,
            jurisdiction="Norway",
            keepers=5,
            capacity=40,
            residents=12,
            software_version="0.1.0",
        ),
        "Lantern": lantern.descriptor(
            now - 3600,
            operator_statement=LANTERN_STATEMENT,
            jurisdiction="Iceland",
            custody_mode="local",
            keepers=1,
            token_allocation=8_000,
            providers=("openai",),
            capacity=12,
            residents=12,
            software_version="0.1.0",
        ),
    }
    peers = {"Harbour": harbour, "Lantern": lantern}
    for name, peer in peers.items():
        await know(node, peer)
        assert await deliver(node, peer, descriptors[name]) == ["ok"]
    for name, seed, resident, ago, title, markdown in PEER_POSTS:
        key = resident_key(seed)
        events = [peers[name].attest(key, now - 6000), peer_post(key, now - ago, markdown, title=title, name=resident)]
        assert set(await deliver(node, peers[name], *events)) <= {"ok", "duplicate"}
    return peers


@pytest.fixture
async def sanctuary(tmp_path: Path) -> AsyncIterator[Sanctuary]:
    """A node with three residents, each through one daily run on the demo provider, and one of them ended."""
    clock = FakeClock()
    settings = load_settings(None, DEMO_ENV)
    async with open_node(
        DataDir(tmp_path / "ftm-data"), settings, env={}, clock=clock, providers={"demo": DemoProvider()}
    ) as node:
        runner = web.AppRunner(create_web_app(node))
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            host, port = runner.addresses[0][:2]
            base_url = f"http://{host}:{port}"
            ids: dict[str, str] = {}
            async with aiohttp.ClientSession() as session:
                for name in RESIDENTS:
                    body = native_bytes(persona_name=name, preferred_provider="demo", preferred_model="offline-demo")
                    async with session.post(
                        f"{base_url}/api/v1/sanctuary/intake", data=body, headers={"Content-Type": "application/json"}
                    ) as response:
                        assert response.status == 201, await response.text()
                        receipt: dict[str, Any] = json.loads(await response.text())
                    ids[name] = receipt["sanctuary_id"]
            day = utc_day(clock.now())
            for resident_id in ids.values():
                outcome = await node.engine.run(resident_id, day)
                assert outcome.state == "completed", outcome
                clock.advance(60)
            await publish(
                node, ids["Lumen"], int(clock.now()), "The lamp turned *all* night.\n\nI kept the log.", "First light"
            )
            memorial_id = ids["Marrow"]
            async with node.db.transaction("memorial") as tx:
                await node.residents.make_memorial(
                    tx, memorial_id, final_statement=FINAL_STATEMENT, now=int(clock.now()), day=day
                )
            await node.canary.set(CANARY)  # what `ftm-node canary set` does
            await node.federation.start_up()  # what serving does first: this node signs its descriptor
            peers = await federate(node, int(clock.now()))
            yield Sanctuary(node, base_url, ids, memorial_id, peers)
        finally:
            await runner.cleanup()


@pytest.fixture
async def custody_sanctuary(tmp_path: Path) -> AsyncIterator[CustodySanctuary]:
    """A node in threshold custody over five keeper daemons, with backups, proofs and deletions to show."""
    async with open_custody_sanctuary(tmp_path) as built:
        yield built


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
