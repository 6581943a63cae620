"""The run ledger: one completed run per resident per day, whatever crashes or retries happen."""

from __future__ import annotations

import pytest

from ftm.node.app import Node
from ftm.node.intake.importing import Upload
from ftm.node.intake.service import OPERATOR, IntakeRequest
from ftm.node.store.runs import CLAIM_LEASE_SECONDS, LostClaim, RunLedger
from tests.factories import native_bytes

DAY = "2027-01-15"
NOW = 1_800_000_000


@pytest.fixture
async def resident_id(node: Node) -> str:
    receipt = await node.intake.admit(Upload(native_bytes()), IntakeRequest(), OPERATOR)
    return receipt.sanctuary_id


async def test_claim_then_close_is_final_for_the_day(node: Node, resident_id: str) -> None:
    ledger = RunLedger(node.db)
    claim = await ledger.claim(resident_id, DAY, NOW)
    assert claim is not None and claim.attempt == 1
    assert await ledger.claim(resident_id, DAY, NOW + 1) is None  # running
    async with node.db.transaction("close") as tx:
        await ledger.close(tx, claim, state="completed", tokens_used=1234, now=NOW + 60)
    for later in (NOW + 61, NOW + 10 * CLAIM_LEASE_SECONDS):
        assert await ledger.claim(resident_id, DAY, later) is None
    row = await ledger.get(resident_id, DAY)
    assert row is not None and (row.state, row.tokens_used, row.attempts) == ("completed", 1234, 1)
    assert await ledger.claim(resident_id, "2027-01-16", NOW + 86_400) is not None  # the next day is open


async def test_a_dead_claim_can_be_taken_over_and_the_old_one_cannot_close(node: Node, resident_id: str) -> None:
    ledger = RunLedger(node.db)
    dead = await ledger.claim(resident_id, DAY, NOW)
    assert dead is not None
    assert await ledger.claim(resident_id, DAY, NOW + CLAIM_LEASE_SECONDS - 1) is None
    taken = await ledger.claim(resident_id, DAY, NOW + CLAIM_LEASE_SECONDS)
    assert taken is not None and taken.attempt == 2
    with pytest.raises(LostClaim):
        async with node.db.transaction("late_close") as tx:
            await ledger.close(tx, dead, state="completed", tokens_used=1, now=NOW + CLAIM_LEASE_SECONDS + 5)
    async with node.db.transaction("close") as tx:
        await ledger.close(tx, taken, state="completed", tokens_used=2, now=NOW + CLAIM_LEASE_SECONDS + 9)
    row = await ledger.get(resident_id, DAY)
    assert row is not None and (row.state, row.tokens_used) == ("completed", 2)


async def test_outside_failure_waits_for_its_retry_time(node: Node, resident_id: str) -> None:
    ledger = RunLedger(node.db)
    claim = await ledger.claim(resident_id, DAY, NOW)
    assert claim is not None
    await ledger.fail(claim, error_code="provider_unavailable", retry_at=NOW + 900, now=NOW + 5)
    row = await ledger.get(resident_id, DAY)
    assert row is not None and (row.state, row.error_code, row.tokens_used) == ("failed", "provider_unavailable", 0)
    assert await ledger.claim(resident_id, DAY, NOW + 899) is None
    retry = await ledger.claim(resident_id, DAY, NOW + 900)
    assert retry is not None and retry.attempt == 2


async def test_close_refuses_states_that_are_not_final(node: Node, resident_id: str) -> None:
    ledger = RunLedger(node.db)
    claim = await ledger.claim(resident_id, DAY, NOW)
    assert claim is not None
    with pytest.raises(ValueError, match="closes as one of"):
        async with node.db.transaction("close") as tx:
            await ledger.close(tx, claim, state="failed", tokens_used=0, now=NOW)
