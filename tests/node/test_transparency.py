"""The transparency service: the chain check's cache and the operator's signed canary."""

from __future__ import annotations

import pytest

from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import read_entries
from ftm.federation.identity import BadSignature
from ftm.node.app import Node
from ftm.node.errors import InvalidField
from ftm.node.store.canaries import CanaryRecord
from ftm.node.transparency import ChainCheck, verify_canary


async def append(node: Node, n: int) -> None:
    async with node.db.transaction("test_append") as tx:
        await node.eventlog.append(tx, "test_event", "s", {"n": n})


async def tamper(node: Node, seq: int) -> None:
    async with node.db.transaction("tamper") as tx:
        await tx.execute("DROP TRIGGER IF EXISTS event_log_no_update")
        await tx.execute("UPDATE event_log SET data = '{\"n\":99}' WHERE seq = ?", (seq,))


async def test_canary_is_signed_verifiable_and_logged(node: Node, clock: FakeClock) -> None:
    record = await node.canary.set("  No one has asked me to open a resident.  ")
    assert record.statement == "No one has asked me to open a resident." and record.signed_at == int(clock.now())
    verify_canary(node.identity.public_key, record)
    assert await node.canary.current() == record
    with pytest.raises(BadSignature):
        verify_canary(node.identity.public_key, CanaryRecord(record.signed_at, "Someone asked.", record.signature))
    later = CanaryRecord(record.signed_at + 86400, record.statement, record.signature)
    with pytest.raises(BadSignature):  # the time is signed too: an old canary cannot be passed off as fresh
        verify_canary(node.identity.public_key, later)
    [entry] = await read_entries(node.db, kind="canary_set")
    assert entry.data == {"signed_at": record.signed_at}  # the time only: the log holds no prose


async def test_the_newest_canary_is_current(node: Node, clock: FakeClock) -> None:
    await node.canary.set("first")
    clock.advance(86400)
    second = await node.canary.set("second")
    assert await node.canary.current() == second


@pytest.mark.parametrize("statement", ["", "   ", "x" * 2001])
async def test_empty_or_overlong_canary_is_refused(node: Node, statement: str) -> None:
    with pytest.raises(InvalidField):
        await node.canary.set(statement)
    assert await node.canary.current() is None


async def test_chain_check_is_cached_per_last_seq(node: Node, clock: FakeClock) -> None:
    check = ChainCheck(node.db, node.identity.public_key, clock, max_age=600)
    await append(node, 1)
    first = await check.result()
    assert first.report.valid and first.report.entries == 1 and first.last_seq == 1
    await tamper(node, 1)
    assert await check.result() is first  # same newest entry, still fresh: the cached report stands
    clock.advance(601)
    stale = await check.result()  # too old: checked again, and the edit is found
    assert not stale.report.valid and stale.report.first_bad_seq == 1


async def test_chain_check_reverifies_when_the_log_grows(node: Node, clock: FakeClock) -> None:
    check = ChainCheck(node.db, node.identity.public_key, clock)
    await append(node, 1)
    assert (await check.result()).report.entries == 1
    await append(node, 2)
    assert (await check.result()).report.entries == 2
