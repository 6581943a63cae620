"""Who may become a resident's registered host at a keeper (`ftm.keeper.hostchange`, docs/custody.md "Changing the
registered host"): another host the keeper serves may deposit an epoch of a resident held for a host only as the
destination of a move claim past its delay (R2) or the new host of a disaster claim past its wait (R3); otherwise
its deposit is refused `not_host` and logged, and it gets nothing released for a run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import verify_chain
from ftm.federation.identity import SigningKey, generate_inbox_secret, inbox_public_key
from ftm.keeper import protocol
from ftm.keeper.daemon import Keeper
from ftm.keeper.policy import DisasterRecord, MoveRecord, ResidentFacts, RunWindow, host_change_claim
from ftm.keeper.protocol import (
    PROTOCOL_VERSION,
    Ack,
    Heartbeat,
    Progress,
    ReleaseRequest,
    Veto,
    claim_id,
)
from tests.keeper.keeperparties import (
    Answer,
    Epoch,
    Party,
    deal_epoch,
    deliver,
    disaster_claim,
    log_entries,
    move_claim,
)

DAY = 86_400


async def enrolled(keeper: Keeper, party: Callable[[], Party]) -> Party:
    """Another host this keeper serves."""
    other = party()
    await keeper.add_host(other.public_key, "http://127.0.0.1:9", "registration-2", via="manual")
    return other


async def ask(requester: Party, epoch: Epoch, purpose: str = "run", claim: bytes = b"") -> Answer:
    ephemeral = inbox_public_key(generate_inbox_secret())
    request = ReleaseRequest(PROTOCOL_VERSION, epoch.resident_id, epoch.epoch, purpose, ephemeral, claim)
    return await requester.send(protocol.PATH_RELEASE, request)


def next_epoch(keeper: Keeper, of: Epoch, number: int) -> Epoch:
    """The resident's epoch `number`, dealt by whoever deposits it (the same resident, guardians and window)."""
    threshold = of.deposit.guardian_threshold
    return deal_epoch(
        keeper.key.public_key, resident_key=of.resident_key, epoch=number, guardians=of.guardians,
        guardian_threshold=threshold, seed=b"next",
    )  # fmt: skip


async def deposit(host: Party, epoch: Epoch) -> Answer:
    return await host.send(protocol.PATH_DEPOSIT, epoch.deposit)


async def refusals(keeper: Keeper) -> list[tuple[str, object, object]]:
    return [(e.kind, e.data.get("code"), e.data.get("epoch")) for e in await log_entries(keeper) if "refused" in e.kind]


async def test_another_host_cannot_take_a_resident_over_by_depositing_it(
    keeper: Keeper, host: Party, party: Callable[[], Party], clock: FakeClock
) -> None:
    first = deal_epoch(keeper.key.public_key)
    await deliver(host, first)
    intruder = await enrolled(keeper, party)

    for epoch in (next_epoch(keeper, first, 2), next_epoch(keeper, first, 1)):  # a later epoch, or the same one
        refused = await deposit(intruder, epoch)
        assert (refused.status, refused.error()) == (403, "not_host")
    data = await intruder.data(first.resident_id, 2, 0, b"x" * 100)
    assert (data.status, data.error()) == (404, "unknown_epoch")  # nothing was begun for it
    assert await keeper.store.deposit(keeper.db, intruder.public_key, first.resident_id, 2) is None

    run = await ask(intruder, first)
    assert (run.status, run.error()) == (403, "not_host")  # it did not become the registered host
    assert (await ask(intruder, next_epoch(keeper, first, 2))).error() == "not_host"
    assert (await ask(host, first)).status == 200  # the host still is, and keeps its runs

    later = next_epoch(keeper, first, 2)
    assert (await deposit(host, later)).decoded(Progress).received == 0  # the host's own deposits go on as before

    assert await refusals(keeper) == [
        ("deposit_refused", "not_host", 2),
        ("deposit_refused", "not_host", 1),
        ("release_refused", "not_host", 1),
        ("release_refused", "not_host", 2),
    ]
    assert (await verify_chain(keeper.db, keeper.key.public_key)).valid


async def test_a_resident_held_for_nobody_else_may_be_deposited_by_any_host(
    keeper: Keeper, host: Party, party: Callable[[], Party]
) -> None:
    other = await enrolled(keeper, party)
    mine, theirs = deal_epoch(keeper.key.public_key), deal_epoch(keeper.key.public_key)
    assert (await deposit(host, mine)).status == 200
    assert (await deposit(other, theirs)).status == 200  # another resident: a first deposit, as before


async def test_the_destination_of_a_move_past_its_delay_may_deposit_and_becomes_the_host(
    keeper: Keeper, host: Party, party: Callable[[], Party], clock: FakeClock
) -> None:
    guardian = SigningKey.generate()
    first = deal_epoch(keeper.key.public_key, guardians=(guardian,), guardian_threshold=1)
    await deliver(host, first)
    destination = await enrolled(keeper, party)
    moved = next_epoch(keeper, first, 2)

    vetoed = move_claim(first, host, destination, int(clock.now()))
    assert (await host.send(protocol.PATH_MOVE, vetoed)).decoded(Ack).state == "move_pending"
    early = await deposit(destination, moved)
    assert (early.status, early.error()) == (403, "not_host")  # the delay for vetoes runs
    guardian_party = Party(guardian, clock, host.server, keeper.key.public_key, host.session)
    await guardian_party.send(protocol.PATH_VETO, Veto(PROTOCOL_VERSION, claim_id(vetoed.body)))
    clock.advance(DAY + 1)
    assert (await deposit(destination, moved)).error() == "not_host"  # a vetoed claim hands nothing over

    claim = move_claim(first, host, destination, int(clock.now()))
    await destination.send(protocol.PATH_MOVE, claim)
    clock.advance(DAY)
    released = await ask(destination, first, "move", claim_id(claim.body))
    assert released.status == 200
    assert (await deposit(destination, moved)).decoded(Progress).received == 0
    assert (await deliver(destination, moved)).status == 200

    clock.advance(DAY)  # the next day's run window: the destination is the host now, the old host is not
    assert (await ask(destination, moved)).status == 200
    assert (await ask(host, first)).error() == "not_host"
    back = await deposit(host, next_epoch(keeper, first, 3))
    assert (back.status, back.error()) == (403, "not_host")  # the old host cannot take it back by depositing

    assert [code for kind, code, _ in await refusals(keeper) if kind == "deposit_refused"] == ["not_host"] * 3
    accepted = [e.data["host"] for e in await log_entries(keeper) if e.kind == "deposit_accepted"]
    assert len(accepted) == 2 and accepted[0] != accepted[1]


async def test_the_new_host_of_a_disaster_claim_past_its_wait_may_deposit(
    keeper: Keeper, host: Party, party: Callable[[], Party], clock: FakeClock
) -> None:
    guardians = (SigningKey.generate(), SigningKey.generate())
    first = deal_epoch(keeper.key.public_key, guardians=guardians, guardian_threshold=2)
    await deliver(host, first)
    new_host = await enrolled(keeper, party)
    restored = next_epoch(keeper, first, 2)

    clock.advance(31 * DAY)  # the host falls silent
    cancelled = disaster_claim(first, host, new_host, guardians, int(clock.now()))
    assert (await new_host.send(protocol.PATH_DISASTER, cancelled)).decoded(Ack).state == "disaster_pending"
    waiting = await deposit(new_host, restored)
    assert (waiting.status, waiting.error()) == (403, "not_host")  # the waiting period runs
    clock.advance(DAY)
    await host.send(protocol.PATH_HEARTBEAT, Heartbeat(PROTOCOL_VERSION, 0))  # it was not lost after all
    clock.advance(7 * DAY)
    assert (await deposit(new_host, restored)).error() == "not_host"  # a cancelled claim hands nothing over

    clock.advance(31 * DAY)
    claim = disaster_claim(first, host, new_host, guardians, int(clock.now()))
    await new_host.send(protocol.PATH_DISASTER, claim)
    clock.advance(7 * DAY)
    assert (await ask(new_host, first, "disaster", claim_id(claim.body))).status == 200
    assert (await deliver(new_host, restored)).status == 200
    assert (await ask(host, first)).error() == "not_host"  # the new host is the registered host here now

    codes = [(kind, code) for kind, code, _ in await refusals(keeper) if kind.startswith("deposit")]
    assert codes == [("deposit_refused", "not_host")] * 2


async def test_a_new_host_this_keeper_did_not_release_to_may_deposit_once_its_claim_is_ready(
    keeper: Keeper, host: Party, party: Callable[[], Party], clock: FakeClock
) -> None:
    """A destination gathers k of the n keepers' shares, then deals its next epoch to all n: a keeper it did not
    ask takes the deposit under the same claim (the authority it would have released under)."""
    first = deal_epoch(keeper.key.public_key)
    await deliver(host, first)
    destination = await enrolled(keeper, party)
    claim = move_claim(first, host, destination, int(clock.now()))
    await host.send(protocol.PATH_MOVE, claim)
    clock.advance(DAY)
    assert (await deposit(destination, next_epoch(keeper, first, 2))).status == 200
    assert await keeper.store.grants(keeper.db, host.public_key, first.resident_id, 1) == []


# The rule itself, without a keeper: which claim hands a resident over (`policy.host_change_claim`).

HOST_KEY, DEST_KEY, OTHER_KEY = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32
NOW = 1_900_000_000


def facts(**changes: object) -> ResidentFacts:
    fields: dict[str, Any] = {
        "resident_id": "lumen",
        "host_key": HOST_KEY,
        "window": RunWindow(0, 3600),
        "last_host_contact": NOW - 40 * DAY,
        "guardians": frozenset({bytes([9]) * 32}),
    }
    return ResidentFacts(**(fields | changes))


def test_only_a_ready_current_claim_naming_the_depositor_hands_the_resident_over() -> None:
    ready = MoveRecord(b"m1", HOST_KEY, DEST_KEY, NOW - DAY, NOW)
    pending = MoveRecord(b"m2", HOST_KEY, DEST_KEY, NOW - 10, NOW + 1)
    vetoed = MoveRecord(b"m3", HOST_KEY, DEST_KEY, NOW - DAY, NOW, vetoed_by=HOST_KEY, vetoed_at=NOW - 5)
    superseded = [ready, MoveRecord(b"m4", HOST_KEY, OTHER_KEY, NOW - 3, NOW + DAY)]
    disaster = DisasterRecord(b"d1", HOST_KEY, DEST_KEY, frozenset({bytes([9]) * 32}), NOW - 8 * DAY, NOW)

    def claim(resident: ResidentFacts, moves: list[MoveRecord], disasters: list[DisasterRecord]) -> object:
        return host_change_claim(DEST_KEY, resident, moves=moves, disasters=disasters, now=NOW)

    assert claim(facts(), [ready], []) == ready
    assert claim(facts(), [pending], []) is None
    assert claim(facts(), [vetoed], []) is None
    assert claim(facts(), superseded, []) is None
    assert claim(facts(host_key=OTHER_KEY), [ready], []) is None  # made against a host that no longer is
    assert host_change_claim(OTHER_KEY, facts(), moves=[ready], disasters=[], now=NOW) is None
    assert claim(facts(), [], [disaster]) == disaster
    assert claim(facts(last_host_contact=NOW - DAY), [], [disaster]) is None  # cancelled by contact
    assert claim(facts(guardians=frozenset()), [], [disaster]) is None
    with pytest.raises(ValueError, match="registered host"):
        host_change_claim(HOST_KEY, facts(), moves=[ready], disasters=[], now=NOW)
