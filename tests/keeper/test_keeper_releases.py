"""The release policy as a keeper enforces it over HTTP: runs (R1), moves with delay and veto (R2), disasters with
guardians and a waiting period a heartbeat cancels (R3), tombstones (R4); every decision, refusals included, in
the keeper's signed log before the answer."""

from __future__ import annotations

from collections.abc import Callable

from ftm.federation.clock import FakeClock
from ftm.federation.eventcontent import TombstoneContent, sign_content
from ftm.federation.eventlog import verify_chain
from ftm.federation.identity import SigningKey, generate_inbox_secret, inbox_public_key
from ftm.federation.signedanswers import open_answer
from ftm.keeper import protocol
from ftm.keeper.daemon import Keeper
from ftm.keeper.protocol import (
    ORDER_DOMAIN,
    PROTOCOL_VERSION,
    RECEIPT_DOMAIN,
    RELEASE_DOMAIN,
    Ack,
    DestroyOrder,
    DestroyReceipt,
    Heartbeat,
    MoveClaim,
    ReadRequest,
    Release,
    ReleaseRequest,
    SignedAnswer,
    TombstoneOrder,
    Veto,
    claim_id,
    sign_answer,
)
from ftm.keeper.shareboxes import open_released_share
from ftm.keeper.shares import verify_share
from tests.keeper.keeperparties import (
    Answer,
    Epoch,
    Party,
    deal_epoch,
    deliver,
    disaster_claim,
    files_under,
    log_entries,
    move_claim,
)

DAY = 86_400


async def _ask(
    requester: Party, epoch: Epoch, purpose: str = "run", claim: bytes = b"", secret: bytes | None = None
) -> tuple[Answer, bytes]:
    """A release request with the ephemeral key of `secret` (a fresh one if None); the answer and the secret."""
    secret = secret or generate_inbox_secret()
    request = ReleaseRequest(PROTOCOL_VERSION, epoch.resident_id, epoch.epoch, purpose, inbox_public_key(secret), claim)
    return await requester.send(protocol.PATH_RELEASE, request), secret


def _opened(keeper: Keeper, answer: Answer, secret: bytes, epoch: Epoch) -> Release:
    """The release checked the way a requester checks it: signed by the keeper, its share verifying."""
    release = open_answer(Release, answer.body, RELEASE_DOMAIN, keeper.key.public_key)
    share = open_released_share(secret, release.sealed_share, epoch.resident_id, epoch.epoch, release.x)
    assert verify_share(share, epoch.commitments) and share == epoch.share
    return release


async def _decisions(keeper: Keeper, *kinds: str) -> list[tuple[str, object]]:
    return [(e.kind, e.data.get("code")) for e in await log_entries(keeper) if e.kind in kinds]


async def test_a_run_release_inside_the_window_once_per_epoch(
    keeper: Keeper, host: Party, party: Callable[[], Party], clock: FakeClock
) -> None:
    epoch = deal_epoch(keeper.key.public_key)
    await deliver(host, epoch)
    answer, secret = await _ask(host, epoch)
    release = _opened(keeper, answer, secret, epoch)
    assert (release.purpose, release.requester_key, release.x) == ("run", host.public_key, 1)

    twice, _ = await _ask(host, epoch)
    assert (twice.status, twice.error()) == (403, "already_released")
    stranger, _ = await _ask(party(), epoch)
    assert (stranger.status, stranger.error()) == (403, "not_host")

    later = deal_epoch(keeper.key.public_key, resident_key=epoch.resident_key, epoch=2)
    await deliver(host, later)
    clock.advance(12 * 3600)  # 20:00 UTC: outside 07:50-08:50 (and its five minutes of grace)
    outside, _ = await _ask(host, later)
    assert (outside.status, outside.error()) == (403, "outside_window")
    clock.advance(12 * 3600)  # the next day's window
    inside, secret = await _ask(host, later)
    assert _opened(keeper, inside, secret, later).epoch == 2

    assert await _decisions(keeper, "release_granted", "release_refused") == [
        ("release_granted", "run_released"),
        ("release_refused", "already_released"),
        ("release_refused", "not_host"),
        ("release_refused", "outside_window"),
        ("release_granted", "run_released"),
    ]
    assert (await verify_chain(keeper.db, keeper.key.public_key)).valid


async def test_a_run_asking_again_with_its_ephemeral_key_gets_the_share_again_and_no_other_key_does(
    keeper: Keeper, host: Party, party: Callable[[], Party], clock: FakeClock
) -> None:
    epoch = deal_epoch(keeper.key.public_key)
    await deliver(host, epoch)
    answer, secret = await _ask(host, epoch)
    first = _opened(keeper, answer, secret, epoch)

    clock.advance(600)  # the host crashed after the release and retries, still inside the window
    answer, _ = await _ask(host, epoch, secret=secret)
    again = _opened(keeper, answer, secret, epoch)  # the same share, sealed afresh to the same key
    assert (again.ephemeral_key, again.x, again.at) == (first.ephemeral_key, first.x, first.at + 600)
    assert again.sealed_share != first.sealed_share

    other, _ = await _ask(host, epoch)
    assert (other.status, other.error()) == (403, "already_released")
    stranger, _ = await _ask(party(), epoch, secret=secret)
    assert (stranger.status, stranger.error()) == (403, "not_host")  # the key alone opens nothing
    clock.advance(12 * 3600)
    outside, _ = await _ask(host, epoch, secret=secret)
    assert (outside.status, outside.error()) == (403, "outside_window")

    rows = await keeper.db.fetch_all(
        "SELECT purpose, ephemeral_key FROM releases WHERE resident_id = ?", (epoch.resident_id,)
    )
    assert [(row[0], bytes(row[1])) for row in rows] == [("run", inbox_public_key(secret))]  # one grant
    released = [
        (e.kind, e.data.get("code"), e.data.get("repeat"))
        for e in await log_entries(keeper)
        if e.kind in ("release_granted", "release_refused")
    ]
    assert released == [
        ("release_granted", "run_released", False),
        ("release_granted", "run_released", True),
        ("release_refused", "already_released", None),
        ("release_refused", "not_host", None),
        ("release_refused", "outside_window", None),
    ]
    assert (await verify_chain(keeper.db, keeper.key.public_key)).valid


async def test_a_move_waits_out_its_delay_and_a_veto_stops_it(
    keeper: Keeper, host: Party, party: Callable[[], Party], clock: FakeClock
) -> None:
    guardian = SigningKey.generate()
    epoch = deal_epoch(keeper.key.public_key, guardians=(guardian,), guardian_threshold=1)
    await deliver(host, epoch)
    destination = party()

    unsigned = move_claim(epoch, host, destination, int(clock.now()))
    half = MoveClaim(unsigned.body, unsigned.signatures[:1])  # the destination did not sign
    refused = await host.send(protocol.PATH_MOVE, half)
    assert (refused.status, refused.error()) == (403, "not_destination")

    claim = move_claim(epoch, host, destination, int(clock.now()))
    ack = (await host.send(protocol.PATH_MOVE, claim)).decoded(Ack)
    assert (ack.state, ack.at) == ("move_pending", int(clock.now()) + DAY)
    early, _ = await _ask(destination, epoch, "move", claim_id(claim.body))
    assert (early.status, early.error()) == (403, "move_pending")

    guardian_party = Party(guardian, clock, host.server, keeper.key.public_key, host.session)
    vetoed = (await guardian_party.send(protocol.PATH_VETO, Veto(PROTOCOL_VERSION, claim_id(claim.body)))).decoded(Ack)
    assert vetoed.state == "vetoed"
    clock.advance(DAY + 1)
    after, _ = await _ask(destination, epoch, "move", claim_id(claim.body))
    assert (after.status, after.error()) == (403, "move_vetoed")

    second = move_claim(epoch, host, destination, int(clock.now()))
    await destination.send(protocol.PATH_MOVE, second)  # the destination may submit it too
    clock.advance(DAY)
    answer, secret = await _ask(destination, epoch, "move", claim_id(second.body))
    release = _opened(keeper, answer, secret, epoch)
    assert (release.purpose, release.requester_key) == ("move", destination.public_key)
    # Whoever the epoch was released to may read the replica it opens.
    read = await destination.send(protocol.PATH_READ, ReadRequest(PROTOCOL_VERSION, epoch.resident_id, 1, 0, 4096))
    assert read.body == epoch.vault[:4096]
    late_veto = await host.send(protocol.PATH_VETO, Veto(PROTOCOL_VERSION, claim_id(second.body)))
    assert (late_veto.status, late_veto.error()) == (403, "veto_too_late")

    assert await _decisions(
        keeper, "move_opened", "move_refused", "veto_recorded", "veto_refused", "release_granted", "release_refused"
    ) == [
        ("move_refused", "not_destination"),
        ("move_opened", "move_opened"),
        ("release_refused", "move_pending"),
        ("veto_recorded", "veto_recorded"),
        ("release_refused", "move_vetoed"),
        ("move_opened", "move_opened"),
        ("release_granted", "move_released"),
        ("veto_refused", "veto_too_late"),
    ]


async def test_a_disaster_claim_needs_silence_and_guardians_and_a_heartbeat_cancels_it(
    keeper: Keeper, host: Party, party: Callable[[], Party], clock: FakeClock
) -> None:
    guardians = (SigningKey.generate(), SigningKey.generate(), SigningKey.generate())
    epoch = deal_epoch(keeper.key.public_key, guardians=guardians, guardian_threshold=2)
    await deliver(host, epoch)
    await host.send(protocol.PATH_COMMIT, protocol.Commit(PROTOCOL_VERSION, epoch.resident_id, 1))
    new_host = party()

    too_soon = await new_host.send(protocol.PATH_DISASTER, disaster_claim(epoch, host, new_host, guardians[:2], 0))
    assert (too_soon.status, too_soon.error()) == (403, "stale_claim")  # created_at 0 is long ago
    not_silent = disaster_claim(epoch, host, new_host, guardians[:2], int(clock.now()))
    assert (await new_host.send(protocol.PATH_DISASTER, not_silent)).error() == "host_not_silent"

    clock.advance(31 * DAY)  # the host falls silent
    one_guardian = disaster_claim(epoch, host, new_host, guardians[:1], int(clock.now()))
    assert (await new_host.send(protocol.PATH_DISASTER, one_guardian)).error() == "not_enough_guardians"
    claim = disaster_claim(epoch, host, new_host, guardians[:2], int(clock.now()))
    ack = (await new_host.send(protocol.PATH_DISASTER, claim)).decoded(Ack)
    assert (ack.resident_id, ack.state, ack.at) == (epoch.resident_id, "disaster_pending", int(clock.now()) + 7 * DAY)
    waiting, _ = await _ask(new_host, epoch, "disaster", claim_id(claim.body))
    assert waiting.error() == "waiting_period"

    clock.advance(DAY)
    assert (await host.send(protocol.PATH_HEARTBEAT, Heartbeat(PROTOCOL_VERSION, 0))).decoded(Ack).state == "alive"
    clock.advance(7 * DAY)
    cancelled, _ = await _ask(new_host, epoch, "disaster", claim_id(claim.body))
    assert (cancelled.status, cancelled.error()) == (403, "claim_cancelled")

    clock.advance(31 * DAY)  # silent again, for long enough: a new claim, nobody cancels it this time
    final = disaster_claim(epoch, host, new_host, guardians[1:], int(clock.now()))
    await guardian_party(guardians[1], new_host).send(protocol.PATH_DISASTER, final)  # a guardian may submit it
    clock.advance(7 * DAY)
    answer, secret = await _ask(new_host, epoch, "disaster", claim_id(final.body))
    assert _opened(keeper, answer, secret, epoch).purpose == "disaster"

    assert await _decisions(keeper, "disaster_opened", "disaster_refused", "disaster_cancelled") == [
        ("disaster_refused", "host_not_silent"),
        ("disaster_refused", "not_enough_guardians"),
        ("disaster_opened", "disaster_opened"),
        ("disaster_cancelled", None),
        ("disaster_opened", "disaster_opened"),
    ]
    assert (await verify_chain(keeper.db, keeper.key.public_key)).valid


def guardian_party(key: SigningKey, like: Party) -> Party:
    return Party(key, like.clock, like.server, like.keeper_key, like.session)


async def test_a_tombstone_destroys_every_epoch_and_nothing_is_released_again(
    keeper: Keeper, host: Party, party: Callable[[], Party], clock: FakeClock
) -> None:
    first = deal_epoch(keeper.key.public_key)
    second = deal_epoch(keeper.key.public_key, resident_key=first.resident_key, epoch=2)
    await deliver(host, first)
    await deliver(host, second)
    resident = first.resident_key

    by_other = sign_content(SigningKey.generate(), TombstoneContent(resident.public_key), int(clock.now()))
    forged = await host.send(protocol.PATH_TOMBSTONE, TombstoneOrder(PROTOCOL_VERSION, first.resident_id, by_other))
    assert (forged.status, forged.error()) == (403, "bad_tombstone")  # not signed by the resident itself

    event = sign_content(resident, TombstoneContent(resident.public_key), int(clock.now()))
    order = TombstoneOrder(PROTOCOL_VERSION, first.resident_id, event)
    assert (await party().send(protocol.PATH_TOMBSTONE, order)).error() == "not_a_host"
    answer = await host.send(protocol.PATH_TOMBSTONE, order)
    receipt = open_answer(DestroyReceipt, answer.body, RECEIPT_DOMAIN, keeper.key.public_key)
    assert (receipt.resident_id, receipt.epoch, receipt.reason) == (first.resident_id, 2, "tombstone")
    assert files_under(keeper.data_dir.replicas) == []
    states = {(d.epoch, d.state, d.sealed_share) for d in await keeper.store.deposits_of(keeper.db, first.resident_id)}
    assert states == {(1, "destroyed", b""), (2, "destroyed", b"")}

    refused, _ = await _ask(host, second)
    assert (refused.status, refused.error()) == (403, "tombstoned")
    third = deal_epoch(keeper.key.public_key, resident_key=resident, epoch=3)
    again = await host.send(protocol.PATH_DEPOSIT, third.deposit)
    assert (again.status, again.error()) == (403, "tombstoned")
    assert (await host.send(protocol.PATH_TOMBSTONE, order)).status == 200  # idempotent

    kinds = await _decisions(keeper, "tombstoned", "release_refused", "deposit_refused")
    assert kinds == [("tombstoned", None), ("release_refused", "tombstoned"), ("deposit_refused", "tombstoned")]


async def test_any_request_the_host_signs_cancels_a_disaster_claim_replica_data_included(
    keeper: Keeper, host: Party, party: Callable[[], Party], clock: FakeClock
) -> None:
    guardians = (SigningKey.generate(),)
    epoch = deal_epoch(keeper.key.public_key, guardians=guardians, guardian_threshold=1)
    await deliver(host, epoch)
    pending = deal_epoch(
        keeper.key.public_key, resident_key=epoch.resident_key, epoch=2, guardians=guardians, guardian_threshold=1
    )
    assert (await host.send(protocol.PATH_DEPOSIT, pending.deposit)).status == 200
    new_host = party()
    clock.advance(31 * DAY)
    claim = disaster_claim(epoch, host, new_host, guardians, int(clock.now()))
    assert (await new_host.send(protocol.PATH_DISASTER, claim)).decoded(Ack).state == "disaster_pending"
    clock.advance(60)
    assert (await host.data(pending.resident_id, 2, 0, pending.vault[:1000])).status == 200
    clock.advance(7 * DAY)
    cancelled, _ = await _ask(new_host, epoch, "disaster", claim_id(claim.body))
    assert (cancelled.status, cancelled.error()) == (403, "claim_cancelled")
    assert ("disaster_cancelled", None) in await _decisions(keeper, "disaster_cancelled")


async def test_a_disaster_restore_asking_again_with_its_key_gets_the_share_again_and_no_other_key_does(
    keeper: Keeper, host: Party, party: Callable[[], Party], clock: FakeClock
) -> None:
    guardians = (SigningKey.generate(), SigningKey.generate())
    epoch = deal_epoch(keeper.key.public_key, guardians=guardians, guardian_threshold=2)
    await deliver(host, epoch)
    new_host = party()
    clock.advance(31 * DAY)
    claim = disaster_claim(epoch, host, new_host, guardians, int(clock.now()))
    assert (await new_host.send(protocol.PATH_DISASTER, claim)).decoded(Ack).state == "disaster_pending"
    clock.advance(7 * DAY)
    cid = claim_id(claim.body)
    answer, secret = await _ask(new_host, epoch, "disaster", cid)
    first = _opened(keeper, answer, secret, epoch)

    clock.advance(3 * DAY)  # the restoring node crashed after the release; it resumes days later, same claim
    answer, _ = await _ask(new_host, epoch, "disaster", cid, secret=secret)
    again = _opened(keeper, answer, secret, epoch)
    assert (again.purpose, again.ephemeral_key, again.x) == ("disaster", first.ephemeral_key, first.x)
    other, _ = await _ask(new_host, epoch, "disaster", cid)
    assert (other.status, other.error()) == (403, "already_released")
    stranger, _ = await _ask(party(), epoch, "disaster", cid, secret=secret)
    assert (stranger.status, stranger.error()) == (403, "not_new_host")

    rows = await keeper.db.fetch_all("SELECT purpose FROM releases WHERE resident_id = ?", (epoch.resident_id,))
    assert [row[0] for row in rows] == ["disaster"]  # one grant, however often it was answered
    released = [
        (e.kind, e.data.get("code"), e.data.get("repeat"))
        for e in await log_entries(keeper)
        if e.kind in ("release_granted", "release_refused")
    ]
    assert released == [
        ("release_granted", "disaster_released", False),
        ("release_granted", "disaster_released", True),
        ("release_refused", "already_released", None),
        ("release_refused", "not_new_host", None),
    ]
    assert (await verify_chain(keeper.db, keeper.key.public_key)).valid


async def test_a_disaster_claim_s_new_host_may_have_the_displaced_host_s_epochs_destroyed_after_the_wait(
    keeper: Keeper, host: Party, party: Callable[[], Party], clock: FakeClock
) -> None:
    guardians = (SigningKey.generate(), SigningKey.generate())
    epoch = deal_epoch(keeper.key.public_key, guardians=guardians, guardian_threshold=2)
    await deliver(host, epoch)
    new_host, stranger = party(), party()

    def order(by: Party) -> SignedAnswer:
        made = DestroyOrder(PROTOCOL_VERSION, epoch.resident_id, 1, "moved", by.public_key, int(clock.now()))
        return sign_answer(by.key, ORDER_DOMAIN, made)

    clock.advance(31 * DAY)
    claim = disaster_claim(epoch, host, new_host, guardians, int(clock.now()))
    assert (await new_host.send(protocol.PATH_DISASTER, claim)).decoded(Ack).state == "disaster_pending"
    early = await new_host.send(protocol.PATH_DESTROY, order(new_host))
    assert (early.status, early.error()) == (403, "waiting_period")
    clock.advance(7 * DAY)
    intruder = await stranger.send(protocol.PATH_DESTROY, order(stranger))
    assert (intruder.status, intruder.error()) == (403, "no_disaster_claim")

    answer = await new_host.send(protocol.PATH_DESTROY, order(new_host))
    receipt = open_answer(DestroyReceipt, answer.body, RECEIPT_DOMAIN, keeper.key.public_key)
    assert (receipt.resident_id, receipt.epoch, receipt.reason) == (epoch.resident_id, 1, "moved")
    record = await keeper.store.deposit(keeper.db, host.public_key, epoch.resident_id, 1)
    assert record is not None and (record.state, record.sealed_share) == ("destroyed", b"")
    assert not files_under(keeper.data_dir.replicas)
    again = await new_host.send(protocol.PATH_DESTROY, order(new_host))
    assert again.status == 200 and open_answer(DestroyReceipt, again.body, RECEIPT_DOMAIN, keeper.key.public_key)
    run, _ = await _ask(host, epoch)  # the old host is back: nothing of the epoch is left to release
    assert run.error() == "destroyed_epoch"
    [destroyed] = [e for e in await log_entries(keeper) if e.kind == "destroyed"]
    assert destroyed.data["by"] != destroyed.data["host"]
    assert (await verify_chain(keeper.db, keeper.key.public_key)).valid


async def test_a_heartbeat_after_the_claim_keeps_the_displaced_host_s_epochs(
    keeper: Keeper, host: Party, party: Callable[[], Party], clock: FakeClock
) -> None:
    guardians = (SigningKey.generate(), SigningKey.generate())
    epoch = deal_epoch(keeper.key.public_key, guardians=guardians, guardian_threshold=2)
    await deliver(host, epoch)
    new_host = party()
    clock.advance(31 * DAY)
    claim = disaster_claim(epoch, host, new_host, guardians, int(clock.now()))
    await new_host.send(protocol.PATH_DISASTER, claim)
    clock.advance(DAY)
    await host.send(protocol.PATH_HEARTBEAT, Heartbeat(PROTOCOL_VERSION, 0))
    clock.advance(7 * DAY)
    made = DestroyOrder(PROTOCOL_VERSION, epoch.resident_id, 1, "moved", new_host.public_key, int(clock.now()))
    refused = await new_host.send(protocol.PATH_DESTROY, sign_answer(new_host.key, ORDER_DOMAIN, made))
    assert (refused.status, refused.error()) == (403, "claim_cancelled")
    record = await keeper.store.deposit(keeper.db, host.public_key, epoch.resident_id, 1)
    assert record is not None and record.state != "destroyed"
