"""The keeper daemon over HTTP, with a signed client acting as host: deposit, data, seal, commit, destroy,
challenge, read and holdings; what is refused and why; what the keeper writes to disk and to its signed log."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from dataclasses import replace

import pytest

from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import verify_chain
from ftm.federation.identity import SigningKey
from ftm.federation.signedanswers import open_answer
from ftm.keeper import merkle, protocol
from ftm.keeper.daemon import Keeper
from ftm.keeper.protocol import (
    HOLDING_DOMAIN,
    ORDER_DOMAIN,
    PROOF_DOMAIN,
    PROTOCOL_VERSION,
    RECEIPT_DOMAIN,
    Ack,
    Challenge,
    Commit,
    DestroyOrder,
    DestroyReceipt,
    Heartbeat,
    Holding,
    Holdings,
    HoldingsAnswer,
    Progress,
    Proof,
    ReadRequest,
    Seal,
    sign_answer,
)
from ftm.keeper.replicas import host_dir_name
from ftm.keeper.server import REFUSALS_HEADER
from ftm.keeper.shareboxes import seal_share_to_keeper
from ftm.keeper.shares import deal, verify_possession
from tests.keeper.keeperparties import Epoch, MiB, Party, any_file_contains, deal_epoch, deliver, log_entries


async def test_deposit_data_seal_gives_a_holding_that_verifies(keeper: Keeper, host: Party) -> None:
    epoch = deal_epoch(keeper.key.public_key)
    answer = await deliver(host, epoch)
    holding = open_answer(Holding, answer.body, HOLDING_DOMAIN, keeper.key.public_key)
    assert (holding.resident_id, holding.epoch, holding.x) == (epoch.resident_id, 1, 1)
    assert (holding.keeper_key, holding.host_key) == (keeper.key.public_key, host.public_key)
    assert (holding.root, holding.length) == (epoch.deposit.root, len(epoch.vault))
    assert holding.commitments_digest == epoch.commitments.digest()

    replica = keeper.data_dir.replicas / _host_dir(host) / epoch.resident_id / "1"
    assert replica.read_bytes() == epoch.vault  # the ciphertext exactly as sent
    assert replica.with_name("1.levels").exists()
    again = await host.send(protocol.PATH_SEAL, Seal(PROTOCOL_VERSION, epoch.resident_id, 1))
    assert again.body == answer.body  # sealing again answers the same signed holding

    # Nothing under the data directory holds the share in the clear; the sealed box is stored as received.
    assert any_file_contains(keeper.data_dir.root, epoch.share.value) == []
    assert any_file_contains(keeper.data_dir.root, epoch.deposit.sealed_share) != []
    kinds = [entry.kind for entry in await log_entries(keeper)]
    assert kinds[-2:] == ["deposit_accepted", "seal_held"]


def _host_dir(host: Party) -> str:
    return host_dir_name(host.public_key)


async def test_a_tampered_or_foreign_share_is_rejected_by_name(keeper: Keeper, host: Party) -> None:
    epoch = deal_epoch(keeper.key.public_key)
    sealed = bytearray(epoch.deposit.sealed_share)
    sealed[-1] ^= 1
    tampered = await host.send(protocol.PATH_DEPOSIT, _with(epoch, sealed_share=bytes(sealed)))
    assert (tampered.status, tampered.error()) == (422, "share_rejected")

    other = deal(2, 3).shares[0]  # a well-sealed share of another dealing: it does not match the commitments
    foreign = seal_share_to_keeper(keeper.key.public_key, epoch.resident_id, 1, other)
    refused = await host.send(protocol.PATH_DEPOSIT, _with(epoch, sealed_share=foreign))
    assert (refused.status, refused.error()) == (422, "share_rejected")
    assert "commitments" in refused.body.decode()

    rebound = seal_share_to_keeper(keeper.key.public_key, epoch.resident_id, 2, epoch.share)  # epoch 2's box
    moved = await host.send(protocol.PATH_DEPOSIT, _with(epoch, sealed_share=rebound))
    assert (moved.status, moved.error()) == (422, "share_rejected")

    entries = [e for e in await log_entries(keeper) if e.kind == "deposit_refused"]
    assert [e.data["code"] for e in entries] == ["share_rejected"] * 3
    assert (await host.send(protocol.PATH_DEPOSIT, epoch.deposit)).decoded(Progress).received == 0


def _with(epoch: Epoch, **changes: object) -> protocol.Deposit:
    return replace(epoch.deposit, **changes)  # type: ignore[arg-type]


async def test_a_replica_with_the_wrong_root_is_refused_and_emptied(keeper: Keeper, host: Party) -> None:
    epoch = deal_epoch(keeper.key.public_key, length=10_000)
    wrong = _with(epoch, root=merkle.merkle_root(b"x" * 10_000))
    await host.send(protocol.PATH_DEPOSIT, wrong)
    await host.data(epoch.resident_id, 1, 0, epoch.vault)
    refused = await host.send(protocol.PATH_SEAL, Seal(PROTOCOL_VERSION, epoch.resident_id, 1))
    assert (refused.status, refused.error()) == (409, "wrong_root")
    assert (await host.send(protocol.PATH_DEPOSIT, wrong)).decoded(Progress).received == 0
    assert (await log_entries(keeper))[-1].data["code"] == "wrong_root"


async def test_an_upload_resumes_from_the_progress_the_keeper_reports(keeper: Keeper, host: Party) -> None:
    epoch = deal_epoch(keeper.key.public_key, length=2 * MiB + 123)
    await host.send(protocol.PATH_DEPOSIT, epoch.deposit)
    first = await host.data(epoch.resident_id, 1, 0, epoch.vault[:MiB])
    assert first.decoded(Progress).received == MiB
    # The host crashed and lost its place: the same deposit again tells it where to go on.
    progress = (await host.send(protocol.PATH_DEPOSIT, epoch.deposit)).decoded(Progress)
    assert progress.received == MiB
    replayed = await host.data(epoch.resident_id, 1, 0, epoch.vault[:MiB])
    assert (replayed.status, replayed.error()) == (409, "wrong_offset")
    await host.data(epoch.resident_id, 1, MiB, epoch.vault[MiB : 2 * MiB])
    beyond = await host.data(epoch.resident_id, 1, 2 * MiB, epoch.vault[2 * MiB :] + b"extra")
    assert (beyond.status, beyond.error()) == (409, "too_long")
    early = await host.send(protocol.PATH_SEAL, Seal(PROTOCOL_VERSION, epoch.resident_id, 1))
    assert (early.status, early.error()) == (409, "incomplete")
    answer = await deliver(host, epoch)  # deposit again, then data from 2 MiB on
    assert open_answer(Holding, answer.body, HOLDING_DOMAIN, keeper.key.public_key).length == 2 * MiB + 123
    conflicting = await host.send(protocol.PATH_DEPOSIT, _with(epoch, length=5))
    assert (conflicting.status, conflicting.error()) == (409, "conflicting_deposit")


async def test_commit_then_destroy_gives_a_signed_receipt_and_removes_everything(
    keeper: Keeper, host: Party, clock: FakeClock
) -> None:
    epoch = deal_epoch(keeper.key.public_key)
    await deliver(host, epoch)
    ack = (await host.send(protocol.PATH_COMMIT, Commit(PROTOCOL_VERSION, epoch.resident_id, 1))).decoded(Ack)
    assert (ack.resident_id, ack.epoch, ack.state) == (epoch.resident_id, 1, "committed")

    clock.advance(60)
    order = DestroyOrder(PROTOCOL_VERSION, epoch.resident_id, 1, "rotated", host.public_key, int(clock.now()))
    answer = await host.send(protocol.PATH_DESTROY, sign_answer(host.key, ORDER_DOMAIN, order))
    receipt = open_answer(DestroyReceipt, answer.body, RECEIPT_DOMAIN, keeper.key.public_key)
    assert (receipt.resident_id, receipt.epoch, receipt.reason) == (epoch.resident_id, 1, "rotated")
    assert receipt.keeper_key == keeper.key.public_key

    folder = keeper.data_dir.replicas / _host_dir(host)
    assert not folder.exists()  # replica, level file and the emptied folders are gone
    with sqlite3.connect(keeper.data_dir.database) as db:
        sealed, state = db.execute("SELECT sealed_share, state FROM deposits").fetchone()
    assert (sealed, state) == (b"", "destroyed")
    again = await host.send(protocol.PATH_DESTROY, sign_answer(host.key, ORDER_DOMAIN, order))
    assert again.status == 200 and again.body == answer.body

    forged = sign_answer(SigningKey.generate(), ORDER_DOMAIN, order)  # not signed by the host that sends it
    assert (await host.send(protocol.PATH_DESTROY, forged)).error() == "bad_signature"
    redeposit = await host.send(protocol.PATH_DEPOSIT, epoch.deposit)
    assert (redeposit.status, redeposit.error()) == (409, "destroyed")
    assert [e.kind for e in await log_entries(keeper)][-2:] == ["committed", "destroyed"]


async def test_a_challenge_is_answered_with_proofs_that_verify(keeper: Keeper, host: Party) -> None:
    epoch = deal_epoch(keeper.key.public_key, length=2 * MiB)
    await deliver(host, epoch)
    nonce = hashlib.sha256(b"challenge").digest()
    answer = await host.send(protocol.PATH_CHALLENGE, Challenge(PROTOCOL_VERSION, epoch.resident_id, 1, nonce, 48))
    proof = open_answer(Proof, answer.body, PROOF_DOMAIN, keeper.key.public_key, max_bytes=2 * MiB)
    assert (proof.resident_id, proof.epoch, proof.nonce, proof.keeper_key) == (
        epoch.resident_id, 1, nonce, keeper.key.public_key,
    )  # fmt: skip
    samples = merkle.Proof.decode(proof.merkle, max_bytes=merkle.max_proof_bytes(48))
    merkle.verify_proof(epoch.deposit.root, len(epoch.vault), nonce, samples, 48)
    assert len(samples.samples) == 48
    assert verify_possession(proof.possession, 1, epoch.commitments, nonce=nonce, binding=keeper.key.public_key)
    assert not verify_possession(proof.possession, 1, epoch.commitments, nonce=nonce, binding=host.public_key)

    # The level file is an optimisation: lost, it is rebuilt from the replica (and checked against the root).
    levels = keeper.data_dir.replicas / _host_dir(host) / epoch.resident_id / "1.levels"
    levels.unlink()
    rebuilt = await host.send(protocol.PATH_CHALLENGE, Challenge(PROTOCOL_VERSION, epoch.resident_id, 1, nonce, 8))
    assert rebuilt.status == 200 and levels.exists()
    assert [e.kind for e in await log_entries(keeper)][-2:] == ["challenge_answered", "challenge_answered"]


async def test_a_keeper_missing_a_tenth_of_its_leaves_fails_challenges(keeper: Keeper, host: Party) -> None:
    epoch = deal_epoch(keeper.key.public_key, length=2 * MiB)  # 512 leaves, 32 groups of 16 (64 KiB)
    await deliver(host, epoch)
    replica = keeper.data_dir.replicas / _host_dir(host) / epoch.resident_id / "1"
    lost = {*range(3 * 16, 4 * 16), *range(13 * 16, 14 * 16), *range(23 * 16, 24 * 16), *range(30 * 16, 30 * 16 + 4)}
    assert len(lost) == 52  # 10 % of the leaves, lost as whole 64 KiB pieces and a few leaves
    with replica.open("r+b") as copy:
        for leaf in lost:
            copy.seek(leaf * merkle.LEAF_SIZE)
            copy.write(b"\0" * merkle.LEAF_SIZE)
    # A sample's audit path is rebuilt from its 16-leaf group, so a challenged leaf beside a lost one fails too.
    damaged_groups = {leaf // 16 for leaf in lost}
    failures = 0
    for round_ in range(10):
        nonce = hashlib.sha256(b"round" + bytes([round_])).digest()
        touched = {leaf // 16 for leaf in merkle.challenge_indices(nonce, 512, 48)} & damaged_groups
        challenge = Challenge(PROTOCOL_VERSION, epoch.resident_id, 1, nonce, 48)
        answer = await host.send(protocol.PATH_CHALLENGE, challenge)
        assert answer.status == (409 if touched else 200)
        if touched:
            assert answer.error() == "replica_damaged"
            failures += 1
    assert failures >= 9  # one challenge catches a 10 % loss with probability > 0.99
    refused = [e for e in await log_entries(keeper) if e.kind == "challenge_failed"]
    assert len(refused) == failures
    assert all(isinstance(e.data["leaf"], int) and e.data["leaf"] // 16 in damaged_groups for e in refused)


async def test_reads_serve_the_host_in_ranges(keeper: Keeper, host: Party, party: Callable[[], Party]) -> None:
    epoch = deal_epoch(keeper.key.public_key, length=MiB + 10)
    await deliver(host, epoch)
    first = await host.send(protocol.PATH_READ, ReadRequest(PROTOCOL_VERSION, epoch.resident_id, 1, 0, MiB))
    rest = await host.send(protocol.PATH_READ, ReadRequest(PROTOCOL_VERSION, epoch.resident_id, 1, MiB, MiB))
    assert first.body + rest.body == epoch.vault
    stranger = await party().send(protocol.PATH_READ, ReadRequest(PROTOCOL_VERSION, epoch.resident_id, 1, 0, 10))
    assert (stranger.status, stranger.error()) == (403, "not_allowed")
    too_much = await host.send(protocol.PATH_READ, ReadRequest(PROTOCOL_VERSION, epoch.resident_id, 1, 0, MiB + 1))
    assert too_much.error() == "bad_range"


async def test_holdings_list_what_is_held_and_no_secret(
    keeper: Keeper, host: Party, party: Callable[[], Party]
) -> None:
    first, second = deal_epoch(keeper.key.public_key), deal_epoch(keeper.key.public_key, epoch=2)
    await deliver(host, first)
    await host.send(protocol.PATH_DEPOSIT, second.deposit)
    answer = await party().send(protocol.PATH_HOLDINGS, Holdings(PROTOCOL_VERSION, host.public_key))
    holdings = answer.decoded(HoldingsAnswer)
    assert (holdings.keeper_key, holdings.host_key) == (keeper.key.public_key, host.public_key)
    listed = sorted((e.resident_id, e.epoch, e.state, e.length, e.root) for e in holdings.entries)
    assert listed == sorted(
        [
            (first.resident_id, 1, "held", len(first.vault), first.deposit.root),
            (second.resident_id, 2, "deposited", len(second.vault), second.deposit.root),
        ]
    )
    for secret in (first.share.value, first.deposit.sealed_share, second.deposit.sealed_share):
        assert secret not in answer.body


async def test_strangers_are_refused_without_growing_the_log(
    keeper: Keeper, host: Party, party: Callable[[], Party]
) -> None:
    before = len(await log_entries(keeper))
    stranger = party()
    epoch = deal_epoch(keeper.key.public_key)
    for path, message in (
        (protocol.PATH_DEPOSIT, epoch.deposit),
        (protocol.PATH_HEARTBEAT, Heartbeat(PROTOCOL_VERSION, 0)),
        (protocol.PATH_COMMIT, Commit(PROTOCOL_VERSION, epoch.resident_id, 1)),
    ):
        answer = await stranger.send(path, message)
        assert (answer.status, answer.error()) == (403, "not_a_host")
    assert len(await log_entries(keeper)) == before


async def test_requests_must_be_signed_for_this_keeper_and_within_limits(
    keeper: Keeper, host: Party, party: Callable[[], Party]
) -> None:
    url = str(host.server.make_url(protocol.PREFIX + protocol.PATH_HOLDINGS))
    async with host.session.post(url, data=b"") as unsigned:
        assert unsigned.status == 400 and (await unsigned.json())["error"]["code"] == "missing_signature_header"
    elsewhere = Party(host.key, host.clock, host.server, host.public_key, host.session)  # audience: not the keeper
    assert (await elsewhere.send(protocol.PATH_HOLDINGS, Holdings(1, host.public_key))).error() == "wrong_audience"
    big = await host.post(protocol.PATH_DEPOSIT, b"\x80" * (64 * 1024 + 1))
    assert (big.status, big.error()) == (413, "body_too_large")
    epoch = deal_epoch(keeper.key.public_key, length=3 * MiB)
    await host.send(protocol.PATH_DEPOSIT, epoch.deposit)
    chunk = await host.data(epoch.resident_id, 1, 0, epoch.vault[: MiB + 1])
    assert (chunk.status, chunk.error()) == (413, "body_too_large")
    wrong_type = await host.post(protocol.PATH_SEAL, protocol.encode(Seal(1, epoch.resident_id, 1)), "text/plain")
    assert (wrong_type.status, wrong_type.error()) == (415, "unsupported_media_type")
    malformed = await host.post(protocol.PATH_SEAL, b"\x81\xa1x\x01")
    assert (malformed.status, malformed.error()) == (400, "malformed_body")
    health = await host.session.get(host.server.make_url("/healthz"))
    assert (await health.json())["keeper_key"] == keeper.key.public_key.hex()


async def test_refusals_are_reported_to_the_host_in_its_next_answer(
    keeper: Keeper, host: Party, party: Callable[[], Party]
) -> None:
    epoch = deal_epoch(keeper.key.public_key)
    await deliver(host, epoch)
    stranger = party()
    request = protocol.ReleaseRequest(PROTOCOL_VERSION, epoch.resident_id, 1, "run", b"\1" * 32, b"")
    assert (await stranger.send(protocol.PATH_RELEASE, request)).error() == "not_host"
    answer = await host.send(protocol.PATH_HEARTBEAT, Heartbeat(PROTOCOL_VERSION, 0))
    assert answer.decoded(Ack).state == "alive"
    assert answer.headers[REFUSALS_HEADER] == "1"
    assert REFUSALS_HEADER not in (await host.send(protocol.PATH_HEARTBEAT, Heartbeat(1, 0))).headers


async def test_the_signed_log_chain_verifies_and_refuses_edits(keeper: Keeper, host: Party) -> None:
    for epoch_number in (1, 2):
        await deliver(host, deal_epoch(keeper.key.public_key, epoch=epoch_number, length=5000))
    entries = await log_entries(keeper)
    report = await verify_chain(keeper.db, keeper.key.public_key)
    assert report.valid and report.entries == len(entries) == 5  # host added, then deposit + seal twice
    with sqlite3.connect(keeper.data_dir.database) as db, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE event_log SET subject = 'x' WHERE seq = 1")
