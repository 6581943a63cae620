"""A second start of a run that is still in progress (an admin run-now after the claim lease has run out, while
the first run waits on a slow provider) must not cost the resident its package."""

from __future__ import annotations

import asyncio

from ftm.node.store.runs import CLAIM_LEASE_SECONDS
from tests.fakes.llm_server import Reply, http_error
from tests.node.run.engine.conftest import OpenSanctuary
from tests.node.run.engine.harness import ending


async def test_a_run_started_again_while_the_first_is_still_running_is_refused(open_sanctuary: OpenSanctuary) -> None:
    waiting, release = asyncio.Event(), asyncio.Event()

    async def held(seconds: float) -> None:
        waiting.set()
        await release.wait()

    async with open_sanctuary(backoff=held) as s:
        rid = (await s.admit()).sanctuary_id
        s.llm.script(http_error(503), *ending("The slow day.", "Slow."), *ending("The second start.", "Second."))
        first = asyncio.create_task(s.run(rid))
        await waiting.wait()  # the first run is between a failed attempt and its retry
        s.clock.advance(CLAIM_LEASE_SECONDS + 60)

        second = await s.run(rid)

        assert second.state == "skipped"
        release.set()
        assert (await first).state == "completed"
        resident = await s.resident(rid)
        assert resident.key_epoch == 2 and resident.total_runs == 1
        package = await s.package(rid)  # the package still opens
        assert package.history[-1].extra["summary"] == "Slow."
        row = await s.ledger(rid)
        assert row is not None and (row.state, row.attempts) == ("completed", 1)
        assert isinstance(s.llm.requests[1].answered_with, Reply)
