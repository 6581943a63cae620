"""The transparency service: the chain check's cache, the operator's signed canary, the custody report's reads."""

from __future__ import annotations

import pytest

from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import read_entries
from ftm.federation.identity import BadSignature
from ftm.node.app import Node
from ftm.node.errors import InvalidField
from ftm.node.store import custodyreport
from ftm.node.store.canaries import CanaryRecord
from ftm.node.store.custody import CustodyEpoch, CustodyStore, NewDelivery, ProofRecord
from ftm.node.store.custodyreport import CustodyReportStore, ProofCounts
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


# --- the custody report's reads (migration 0016) -------------------------------------------------------------------

KEEPER, OTHER = bytes([7]) * 32, bytes([8]) * 32


async def deal(node: Node, resident_id: str, epoch: int, state: str, made: int, length: int) -> None:
    store = CustodyStore(node.db)
    record = CustodyEpoch(resident_id, epoch, "pending", 3, b"c", bytes(32), length, None, made, None)
    async with node.db.transaction("test_deal") as tx:
        await store.add_epoch(tx, record, [NewDelivery(KEEPER, 1, b"s"), NewDelivery(OTHER, 2, b"s")], made)
    await store.update_delivery(resident_id, epoch, KEEPER, made, state=state)


async def test_the_custody_report_reads_through_its_indexes(node: Node) -> None:
    """The plans, not a timing: the week's proofs are counted from index entries, and a keeper's newest holdings
    are read from the end of their index instead of sorting all it holds (benchmark: tests/bench)."""

    async def plan(sql: str, *params: object) -> list[str]:
        return [str(row[3]) for row in await node.db.fetch_all("EXPLAIN QUERY PLAN " + sql, params)]

    counts = await plan(custodyreport._PROOF_COUNTS, KEEPER, 0, KEEPER, 0)
    assert any("COVERING INDEX custody_proofs_failures (keeper_key=? AND at>?)" in step for step in counts), counts
    assert any("COVERING INDEX custody_proofs_by_keeper (keeper_key=? AND at>?)" in step for step in counts), counts
    totals = await plan(custodyreport._HOLDING_TOTALS, KEEPER)
    assert "COVERING INDEX custody_deliveries_by_keeper (keeper_key=? AND state=?)" in totals[0], totals
    holdings = await plan(custodyreport._HOLDINGS, KEEPER, 100)
    picked = next(i for i, step in enumerate(holdings) if "INDEX custody_deliveries_held (keeper_key=?)" in step)
    sorts = [i for i, step in enumerate(holdings) if "TEMP B-TREE" in step]
    assert sorts == [len(holdings) - 1] and picked < sorts[0], holdings  # only the page's rows are sorted
    for steps in (counts, totals, holdings):
        assert not any(step.startswith("SCAN") and "newest" not in step for step in steps), steps


async def test_the_custody_report_counts_and_lists_as_the_rows_say(node: Node, clock: FakeClock) -> None:
    now = int(clock.now())
    since = now - 7 * 86_400
    rows = [
        (KEEPER, since - 1, "failed", True),  # before the window
        (KEEPER, since, "ok", False),
        (KEEPER, since + 5, "ok", False),
        (KEEPER, since + 9, "unanswered", False),  # contained
        (KEEPER, since + 10, "failed", False),  # contained
        (KEEPER, since + 11, "failed", True),  # counted
        (OTHER, since + 12, "failed", True),  # another keeper's
    ]
    store = CustodyStore(node.db)
    async with node.db.transaction("test_proofs") as tx:
        for key, at, outcome, counted in rows:
            reason = None if outcome == "ok" else "bad_possession"
            await store.record_proof(tx, ProofRecord(key, "r", 1, at, outcome, reason, int(counted), counted))
    reads = CustodyReportStore(node.db)
    assert await reads.proof_counts(KEEPER, since) == ProofCounts(passed=2, contained=2, failed=1)
    assert await reads.proof_counts(OTHER, since) == ProofCounts(passed=0, contained=0, failed=1)
    assert await reads.proof_counts(KEEPER, now) == ProofCounts(0, 0, 0)

    await deal(node, "lumen", 1, "destroyed", now - 300, 100)
    await deal(node, "lumen", 2, "committed", now - 200, 200)
    await deal(node, "marrow", 1, "held", now - 100, 40)
    await deal(node, "tern", 1, "skipped", now - 50, 7)
    held = await reads.holdings(KEEPER, 10)
    assert [(h.resident_id, h.epoch, h.delivery_state, h.length) for h in held] == [
        ("marrow", 1, "held", 40),
        ("lumen", 2, "committed", 200),
    ]  # newest first; neither the destroyed nor the skipped delivery
    assert [(h.resident_id, h.epoch) for h in await reads.holdings(KEEPER, 1)] == [("marrow", 1)]
    assert await reads.holding_totals(KEEPER) == (2, 240)
    assert await reads.holding_totals(OTHER) == (0, 0)  # dealt, still pending
