"""Two (or more) whole nodes in one process for moving tests: each `open_node` on its own data directory, serving
its real web application on 127.0.0.1, peered through the bootstrap list, on one shared FakeClock (signed requests
need clocks within five minutes of each other). Providers point at a `FakeLLM`, so residents can run on either.

`Recorder` is a TCP relay a node can be reached through: every byte each way is kept, so a test can search what
really crossed the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from ftm.federation.clock import FakeClock
from ftm.node.app import Node, open_node
from ftm.node.datadir import DataDir
from ftm.node.serving import create_web_app
from tests.fakes.llm_server import FakeLLM
from tests.integration.test_cli import free_port
from tests.node.run.engine.harness import API_KEYS, node_settings

WAIT_SECONDS = 20.0


@dataclass
class Site:
    node: Node
    url: str
    port: int

    @property
    def key(self) -> bytes:
        return self.node.identity.public_key

    @property
    def node_id(self) -> str:
        return self.node.identity.node_id


@asynccontextmanager
async def open_site(
    data_dir: DataDir,
    clock: FakeClock,
    llm: FakeLLM,
    *,
    port: int | None = None,
    bootstrap: str = "",
    public_url: str = "",
    settings: Mapping[str, str] = {},
) -> AsyncIterator[Site]:
    """A node serving on 127.0.0.1:`port` (a free one if None), its network started."""
    port = port or free_port()
    overrides = {
        "FTM_HTTP_PORT": str(port),
        "FTM_NODE_PUBLIC_URL": public_url,
        "FTM_FEDERATION_BOOTSTRAP": bootstrap,
        "FTM_DISCOVERY_MDNS": "off",
        "FTM_ADMIN_PORT": "0",
        "FTM_MOVES_RETRY_SECONDS": "1",
        **settings,
    }
    async with open_node(data_dir, node_settings(llm, overrides), env=API_KEYS, clock=clock) as node:
        runner = web.AppRunner(create_web_app(node), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            await node.federation.start_up()
            await node.federation.network.start(node.federation.url)
            yield Site(node, f"http://127.0.0.1:{port}", port)
        finally:
            await node.federation.network.close()
            await runner.cleanup()


async def wait_until(predicate: Callable[[], object], what: str, seconds: float = WAIT_SECONDS) -> None:
    """Poll an async or plain predicate every 50 ms, for at most `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def peered(a: Site, b: Site) -> None:
    """Until each verified the other and `a`'s directory lists `b` (gossip brought its signed descriptor)."""

    async def listed() -> bool:
        return any(entry.key == b.key for entry in await a.node.federation.directory.entries())

    await wait_until(lambda: a.node.federation.network.peers.is_verified(b.key), "a to verify b")
    await wait_until(lambda: b.node.federation.network.peers.is_verified(a.key), "b to verify a")
    await wait_until(listed, "a's directory to list b")


@dataclass
class Recorder:
    """A TCP relay on 127.0.0.1 to `target_port`; `sent` (client → server) and `received` keep every byte."""

    target_port: int
    port: int = 0
    sent: bytearray = field(default_factory=bytearray)
    received: bytearray = field(default_factory=bytearray)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(self._pipe(reader, up_writer, self.sent), self._pipe(up_reader, writer, self.received))
        finally:
            self._tasks.discard(task)
            for each in (writer, up_writer):
                each.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: bytearray) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(64 * 1024):
                log += data
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(ConnectionError, OSError):
            writer.write_eof()
