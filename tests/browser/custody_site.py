"""A node in threshold custody (3-of-5) over five real keeper daemons, with a history worth a transparency page:
residents whose epochs the keepers hold, a day of possession challenges (one keeper lost a replica: a contained
failure, then a counted one), a resident that deleted itself and is shredded with every receipt in, and one
whose tombstone is still waiting for receipts while three keepers are away.

Built the way an operator would (`tests/node/custody/grid.py` says how), with human Keepers' names, on the
providers' fake server; every keeper and the node serve on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from ftm.federation.clock import FakeClock
from ftm.keeper.enrolment import enrol
from ftm.node.datadir import DataDir
from ftm.node.intake.importing import Upload
from ftm.node.intake.service import OPERATOR, IntakeRequest
from tests.factories import native_bytes
from tests.fakes.llm_server import FakeLLM, Reply
from tests.node.custody.grid import THRESHOLD, Grid, KeeperSite, open_keepers
from tests.node.moves.sites import Site, open_site
from tests.node.run.engine.harness import DAY_ONE_MIDNIGHT, call

KEEPERS = ("Ann Calloway", "Tomas Reyes", "Ines Okafor", "Mirela Dunn", "Hal Sørensen")
LIVING = ("Lumen", "Quill", "Wren")
SHREDDED, WAITING = "Marrow", "Sable"
CUSTODY_CANARY = "As of today no one has asked me to open, copy or hand over a resident of this node."


@dataclass
class CustodySanctuary:
    grid: Grid
    ids: dict[str, str]  # display name -> sanctuary id
    away: list[KeeperSite]  # keepers down while the page is read

    def url(self, path: str) -> str:
        return self.grid.site.url + path


async def _enrol(node: Site, keepers: list[KeeperSite], clock: FakeClock) -> None:
    async with aiohttp.ClientSession() as session:
        for index, (name, site) in enumerate(zip(KEEPERS, keepers, strict=True)):
            registration = await node.node.keeper_service.register(
                name, "I keep a copy safe, and answer every challenge.", f"{name.split()[0].lower()}@example.org",
                "A replica and a share, challenged daily.", None, address=f"10.0.0.{index + 1}",
            )  # fmt: skip
            await node.node.keeper_service.vet(registration.keeper_id)
            answer = await enrol(session, site.keeper.key, clock, node.url, site.url, registration.token)
            await site.keeper.add_host(answer.node_key, answer.node_url, answer.keeper_id, via="test")


async def _goodbye(grid: Grid, llm: FakeLLM, resident_id: str, index: int) -> None:
    llm.script(
        call("self_delete", {"confirm": True, "final_statement": "Thank you for the quiet."}), Reply(text="Bye.")
    )
    assert (await grid.run(resident_id, index, script=False)).state == "deleted"


@asynccontextmanager
async def open_custody_sanctuary(root: Path) -> AsyncIterator[CustodySanctuary]:
    clock = FakeClock(DAY_ONE_MIDNIGHT + 9 * 3600)
    async with FakeLLM() as llm, open_keepers(root / "keepers", clock, len(KEEPERS)) as sites:
        data_dir = DataDir(root / "node")
        async with open_site(data_dir, clock, llm) as local:
            await _enrol(local, sites, clock)
        async with open_site(data_dir, clock, llm, settings=THRESHOLD) as site:
            grid = Grid(site, sites, llm, clock)
            ids = {}
            for name in (*LIVING, SHREDDED, WAITING):
                receipt = await site.node.intake.admit(
                    Upload(native_bytes(persona_name=name)), IntakeRequest(), OPERATOR
                )
                ids[name] = receipt.sanctuary_id
                clock.advance(300)
            await grid.settle()
            assert (await grid.run(ids["Lumen"], 0)).state == "completed"  # epoch 2, its epoch 1 destroyed
            await grid.settle()

            proofs = grid.worker.proofs
            for name in LIVING:
                epoch = (await grid.resident(ids[name])).key_epoch
                for delivery in await grid.deliveries(ids[name], epoch):
                    assert await proofs.challenge(delivery) == "ok"
            # One keeper lost its replica of Quill's package: the challenge and both its retries fail, and the
            # failure counts; a contained one follows the next day.
            loser = sites[3]
            replica = loser.keeper.service.replicas.path(site.key, ids["Quill"], 1)
            replica.write_bytes(bytes(replica.stat().st_size))
            for _ in range(4):
                clock.advance(3600)
                [lost] = [d for d in await grid.deliveries(ids["Quill"], 1) if d.keeper_key == loser.key]
                assert await proofs.challenge(lost) != "ok"

            await _goodbye(grid, llm, ids[SHREDDED], 1)
            await grid.settle()  # every keeper up: five receipts, shredded
            await _goodbye(grid, llm, ids[WAITING], 1)
            away = sites[2:]
            for keeper in away:  # three away before its tombstone goes out: two receipts, three needed
                await keeper.stop()
            await grid.settle()
            await site.node.canary.set(CUSTODY_CANARY)
            yield CustodySanctuary(grid, ids, away)
