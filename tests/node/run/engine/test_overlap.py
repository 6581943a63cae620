"""A second start of a run that is still in progress (an admin run-now, or `ftm-node run-now` in another process,
after the claim lease has run out while the first run waits on a slow provider) must not cost the resident its
package: both would seal the same next epoch, and the loser's clean-up would delete the winner's file."""

from __future__ import annotations

import asyncio

import pytest

from ftm.node.store.runs import CLAIM_LEASE_SECONDS, LostClaim
from tests.fakes.llm_server import http_error
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
        # The second start asked the model nothing: the first run's three requests, and the second's replies unused.
        assert len(s.llm.requests) == 3 and s.llm.pending == 2


async def test_a_run_whose_day_another_process_took_over_gives_way_without_touching_the_vault(
    open_sanctuary: OpenSanctuary,
) -> None:
    waiting, release = asyncio.Event(), asyncio.Event()

    async def held(seconds: float) -> None:
        waiting.set()
        await release.wait()

    async with open_sanctuary(backoff=held) as s, open_sanctuary() as other_process:
        rid = (await s.admit()).sanctuary_id
        s.llm.script(http_error(503), *ending("The other process.", "Other."), *ending("The stale run.", "Stale."))
        stale = asyncio.create_task(s.run(rid))
        await waiting.wait()
        s.clock.advance(CLAIM_LEASE_SECONDS + 60)
        assert (await other_process.run(rid)).state == "completed"

        release.set()
        with pytest.raises(LostClaim):
            await stale

        assert (await s.resident(rid)).key_epoch == 2 and s.node.vault.epochs(rid) == [2]
        assert (await s.package(rid)).history[-1].extra["summary"] == "Other."
        assert [r.state for r in await s.node.ledger.days(rid)] == ["completed"]
