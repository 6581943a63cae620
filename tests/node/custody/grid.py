"""A node under threshold custody and its keepers, all in one process: real keeper daemons (`ftm.keeper.daemon`,
`ftm.keeper.server`) on their own data directories, each serving on 127.0.0.1, and a real node serving its web
application, all on one shared FakeClock (signed requests need clocks within five minutes of each other).

`custody_grid` pairs them the way an operator would: the node starts in local custody, each human Keeper
registers and is vetted, each keeper node enrols with its Keeper's token (`ftm.keeper.enrolment.enrol`, the
`ftm-keeper init` path), and the node restarts in threshold custody (3-of-5 by default). A keeper can be taken
down and brought back (`KeeperSite.stop`, `start`) on the same port.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ftm.config.keepersettings import load_keeper_settings
from ftm.federation.clock import FakeClock
from ftm.keeper.daemon import Keeper, KeeperDir, open_keeper
from ftm.keeper.enrolment import enrol
from ftm.keeper.server import create_keeper_app
from ftm.node.custodyworker import CustodyWorker
from ftm.node.datadir import DataDir
from ftm.node.intake.importing import Upload
from ftm.node.intake.service import OPERATOR, IntakeReceipt, IntakeRequest
from ftm.node.run.engine import RunOutcome
from ftm.node.store.custody import CustodyEpoch, Delivery
from ftm.node.store.residents import ResidentRecord
from tests.factories import native_bytes
from tests.fakes.llm_server import FakeLLM
from tests.integration.test_cli import free_port
from tests.node.moves.sites import Site, open_site
from tests.node.run.engine.harness import DAY_ONE_MIDNIGHT, DAY_SECONDS, day, ending

THRESHOLD = {
    "FTM_CUSTODY_MODE": "threshold",
    "FTM_CUSTODY_THRESHOLD": "3",
    "FTM_CUSTODY_KEEPERS": "5",
    "FTM_CUSTODY_RUN_WINDOW_HOURS": "24",  # keepers check the window against the real time of day: any time here
    "FTM_CUSTODY_RETRY_SECONDS": "1",
    "FTM_CUSTODY_REQUEST_TIMEOUT_SECONDS": "5",
}


@dataclass
class KeeperSite:
    keeper: Keeper
    port: int
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def key(self) -> bytes:
        return self.keeper.key.public_key

    async def start(self) -> None:
        assert self.runner is None
        runner = web.AppRunner(create_keeper_app(self.keeper.service, self.keeper.clock), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self.runner = runner

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@asynccontextmanager
async def open_keepers(
    root: Path, clock: FakeClock, count: int, env: Mapping[str, str] = {}
) -> AsyncIterator[list[KeeperSite]]:
    """`count` keeper daemons, each on its own data directory under `root`, serving on 127.0.0.1; `env` holds
    `FTM_KEEPER_…` settings (a shorter disaster silence, say)."""
    async with contextlib.AsyncExitStack() as stack:
        sites = []
        for index in range(count):
            data_dir = KeeperDir(root / f"keeper-{index}")
            data_dir.initialise()
            keeper = await stack.enter_async_context(
                open_keeper(data_dir, load_keeper_settings(data_dir.config_file, env), clock)
            )
            await keeper.service.start_up()
            site = KeeperSite(keeper, free_port())
            await site.start()
            stack.push_async_callback(site.stop)
            sites.append(site)
        yield sites


async def enrol_keepers(node: Site, keepers: list[KeeperSite], clock: FakeClock) -> None:
    """Each keeper's human registers on the node and is vetted; its keeper node enrols and pins the node."""
    async with aiohttp.ClientSession() as session:
        for index, site in enumerate(keepers):
            registration = await node.node.keeper_service.register(
                f"Keeper {index}", "I keep a copy safe.", f"keeper{index}@example.org", "A replica.", None,
                address=f"10.0.0.{index + 1}",
            )  # fmt: skip
            await node.node.keeper_service.vet(registration.keeper_id)
            answer = await enrol(session, site.keeper.key, clock, node.url, site.url, registration.token)
            await site.keeper.add_host(answer.node_key, answer.node_url, answer.keeper_id, via="test")


@dataclass
class Grid:
    site: Site
    keepers: list[KeeperSite]
    llm: FakeLLM
    clock: FakeClock

    @property
    def node(self) -> Any:
        return self.site.node

    @property
    def worker(self) -> CustodyWorker:
        worker = self.site.node.custody_parts.worker
        assert worker is not None
        return worker

    async def settle(self) -> None:
        """One pass of the custody worker over everything, whatever its retry times."""
        await self.worker.tick(due_only=False)

    async def admit(self, **overrides: Any) -> IntakeReceipt:
        return await self.site.node.intake.admit(Upload(native_bytes(**overrides)), IntakeRequest(), OPERATOR)

    def go_to(self, index: int, hour: float = 12.0) -> None:
        target = DAY_ONE_MIDNIGHT + index * DAY_SECONDS + hour * 3600
        assert target >= self.clock.now()
        self.clock.advance(target - self.clock.now())

    async def run(self, resident_id: str, index: int, hour: float = 12.0, *, script: bool = True) -> RunOutcome:
        """The resident's run on day `index` (the clock goes there), by default an ordinary day that ends at once."""
        self.go_to(index, hour)
        if script:
            self.llm.script(*ending())
        return await self.site.node.engine.run(resident_id, day(index))

    async def resident(self, resident_id: str) -> ResidentRecord:
        record = await self.site.node.residents.get(resident_id)
        assert record is not None
        return record

    async def epochs(self, resident_id: str) -> dict[int, CustodyEpoch]:
        return {e.epoch: e for e in await self.site.node.custody_parts.store.epochs_of(resident_id)}

    async def deliveries(self, resident_id: str, epoch: int) -> list[Delivery]:
        deliveries: list[Delivery] = await self.site.node.custody_parts.store.deliveries(resident_id, epoch)
        return deliveries

    async def keeper_states(self, resident_id: str, epoch: int) -> list[str]:
        """What each keeper's own store says of this epoch (in keeper order; '' where it holds nothing)."""
        states = []
        for site in self.keepers:
            record = await site.keeper.store.deposit(site.keeper.db, self.site.key, resident_id, epoch)
            states.append("" if record is None else record.state)
        return states


@asynccontextmanager
async def enrolled_keepers(
    root: Path, clock: FakeClock, llm: FakeLLM, *, keepers: int = 5
) -> AsyncIterator[tuple[list[KeeperSite], DataDir]]:
    """`keepers` keepers serving, and a node data directory (closed) in which they are enrolled."""
    async with open_keepers(root / "keepers", clock, keepers) as sites:
        data_dir = DataDir(root / "node")
        async with open_site(data_dir, clock, llm) as local:
            await enrol_keepers(local, sites, clock)
        yield sites, data_dir


@asynccontextmanager
async def threshold_node(
    data_dir: DataDir, keepers: list[KeeperSite], clock: FakeClock, llm: FakeLLM, settings: Mapping[str, str] = {}
) -> AsyncIterator[Grid]:
    """The node of `data_dir` opened in threshold custody (as a restart after a crash opens it again)."""
    async with open_site(data_dir, clock, llm, settings={**THRESHOLD, **settings}) as site:
        yield Grid(site, keepers, llm, clock)


@asynccontextmanager
async def custody_grid(
    root: Path, clock: FakeClock, llm: FakeLLM, *, keepers: int = 5, settings: Mapping[str, str] = {}
) -> AsyncIterator[Grid]:
    """A node in threshold custody over `keepers` enrolled keepers (see the module docstring)."""
    async with (
        enrolled_keepers(root, clock, llm, keepers=keepers) as (sites, data_dir),
        threshold_node(data_dir, sites, clock, llm, settings) as grid,
    ):
        yield grid
