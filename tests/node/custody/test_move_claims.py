"""Release rule R2 when a move does not go straight through: a veto by the host or a guardian during the delay (the
destination refuses, signed, and the resident stays), a keeper that accepted the claim late (skipped while k
others release), claims the destination refuses to sign, and nodes that restart while the move waits for the
delay or after keepers released shares to the destination but before it staged the resident."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import read_entries
from ftm.federation.events import SignedEvent
from ftm.federation.identity import SigningKey
from ftm.federation.peers import PeerAddress
from ftm.keeper.protocol import PROTOCOL_VERSION, MoveClaim, MoveTerms, Veto, claim_id, encode, sign_claim
from ftm.node import movewire
from ftm.node.keeperclient import KeeperAddress, KeeperClient
from ftm.node.moveclient import MoveCallError, MoveClient
from ftm.node.movewire import ClaimSignature, MoveClaimRequest, MoveOffer
from ftm.node.thresholdcustody import decode_record
from tests.fakes.llm_server import FakeLLM
from tests.node.custody.grid import THRESHOLD, Grid
from tests.node.custody.test_moves import (
    MOVE_DELAY,
    destination_node,
    grants,
    keepers_of_two,
    move_out,
    peered_nodes,
    resident_asks_to_move,
    source_node,
)
from tests.node.moves.sites import Site, open_site, peered

GUARDIAN = SigningKey(bytes(range(32)))


@pytest.mark.parametrize("vetoed_by", ["host", "guardian"])
async def test_a_veto_during_the_delay_stops_the_move(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM, vetoed_by: str
) -> None:
    guarded = {**THRESHOLD, "FTM_CUSTODY_GUARDIANS": GUARDIAN.public_key.hex(), "FTM_CUSTODY_GUARDIAN_THRESHOLD": "1"}
    async with keepers_of_two(tmp_path, clock, llm) as pair:
        port = pair.ports[0]
        async with (
            open_site(pair.dirs[0], clock, llm, port=port, settings=guarded) as a,
            destination_node(pair, clock, llm, a.url) as b,
        ):
            await peered(a, b)
            source = Grid(a, pair.keepers, llm, clock)
            rid = await resident_asks_to_move(source, b)
            await a.node.moves.tick(due_only=False)
            move = await move_out(a, rid)
            assert move.state == "accepted" and move.claim is not None

            clock.advance(MOVE_DELAY // 2)
            if vetoed_by == "host":
                assert await a.node.moves.veto(move.id) == 5
            else:
                veto = Veto(PROTOCOL_VERSION, claim_id(movewire.decode(MoveClaim, move.claim).body))
                client = KeeperClient(GUARDIAN, clock)
                try:
                    for keeper in pair.keepers:
                        assert (await client.veto(KeeperAddress(keeper.key, keeper.url), veto)).state == "vetoed"
                finally:
                    await client.close()

            await a.node.moves.tick(due_only=False)  # the keepers say vetoed: the destination hears it too
            assert ((ended := await move_out(a, rid)).state, ended.reason) == ("refused", "vetoed")
            arrival = await b.node.moves.store.get_in(move.id)
            assert arrival is not None and (arrival.state, arrival.reason) == ("refused", "vetoed")
            assert await grants(pair.keepers, a.key, rid, 2) == [[]] * 5  # nothing released, to anyone
            stays = await source.resident(rid)
            assert (stays.status, stays.key_epoch) == ("active", 2)
            assert await b.node.residents.get(rid) is None

            clock.advance(MOVE_DELAY)  # past the delay: a vetoed claim never releases anything
            await a.node.moves.tick(due_only=False)
            assert (await move_out(a, rid)).state == "refused"
            assert await grants(pair.keepers, a.key, rid, 2) == [[]] * 5
            assert (await source.run(rid, 2)).state == "completed"  # it lives on where it was


async def test_a_keeper_that_took_the_claim_late_is_skipped(tmp_path: Path, clock: FakeClock, llm: FakeLLM) -> None:
    async with peered_nodes(tmp_path, clock, llm) as (pair, a, b):
        source = Grid(a, pair.keepers, llm, clock)
        rid = await resident_asks_to_move(source, b)
        record = await a.node.residents.key_record(rid, 2)
        assert record is not None
        first = decode_record(record).holders[0].keeper_key  # x = 1: among the first the destination asks
        late = next(k for k in pair.keepers if k.key == first)

        await late.stop()
        await a.node.moves.tick(due_only=False)  # four keepers take the claim
        ready_at = (await move_out(a, rid)).ready_at
        assert ready_at == int(clock.now()) + MOVE_DELAY

        clock.advance(MOVE_DELAY // 2)
        await late.start()
        await a.node.moves.tick(due_only=False)  # resubmitted: the late keeper's delay starts only now
        claims = await late.keeper.store.claims_of(late.keeper.db, rid, "move")
        assert [c.release_after for c in claims] == [int(clock.now()) + MOVE_DELAY]
        assert (await move_out(a, rid)).ready_at == ready_at  # three others are ready then

        clock.advance(ready_at - int(clock.now()))
        await a.node.moves.tick(due_only=True)

        assert (await move_out(a, rid)).state == "done"
        released = await grants(pair.keepers, a.key, rid, 2)
        assert released[pair.keepers.index(late)] == []
        assert sorted(len(g) for g in released) == [0, 0, 1, 1, 1]
        refusals = await read_entries(late.keeper.db, kind="release_refused")
        assert [e.data["code"] for e in refusals] == ["move_pending"]
        assert (await b.node.residents.get(rid)) is not None


async def _attestation(a: Site, resident_key: bytes) -> SignedEvent:
    for attestation in await a.node.federation.network.store.attestations(resident_key):
        if attestation.node_key == a.key:
            return (await a.node.federation.network.store.fetch([attestation.event_id]))[0].signed
    raise AssertionError("no attestation")


async def test_the_destination_signs_only_a_claim_of_a_move_it_accepted(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with peered_nodes(tmp_path, clock, llm) as (pair, a, b):
        rid = (await Grid(a, pair.keepers, llm, clock).admit()).sanctuary_id
        resident = await Grid(a, pair.keepers, llm, clock).resident(rid)
        attestation = await _attestation(a, resident.signing_public_key)
        client, to = MoveClient(a.node.identity.key, clock), PeerAddress(b.key, b.url)
        try:

            async def offered(package_bytes: int = resident.vault_bytes) -> bytes:
                move_id = secrets.token_bytes(16)
                offer = MoveOffer(1, move_id, rid, resident.signing_public_key, package_bytes, attestation)
                await client.offer(to, offer)
                return move_id

            def claim(signer: SigningKey = a.node.identity.key, **changes: object) -> MoveClaim:
                fields: dict[str, object] = {
                    "version": 1, "resident_id": rid, "epoch": 1, "host_key": a.key, "destination_key": b.key,
                    "destination_url": b.url, "created_at": int(clock.now()),
                }  # fmt: skip
                body = encode(MoveTerms(**{**fields, **changes}))  # type: ignore[arg-type]
                return MoveClaim(body, (sign_claim(signer, body),))

            async def refused(move_id: bytes, request_claim: MoveClaim) -> str:
                with pytest.raises(MoveCallError) as refusal:
                    await client.claim(to, MoveClaimRequest(move_id, request_claim))
                return refusal.value.code

            move_id = await offered()
            other = SigningKey(bytes(32))
            assert await refused(secrets.token_bytes(16), claim()) == "unknown_move"
            assert await refused(move_id, claim(resident_id="a" * 26)) == "wrong_claim"
            assert await refused(move_id, claim(host_key=other.public_key)) == "wrong_claim"
            assert await refused(move_id, claim(destination_key=other.public_key)) == "wrong_claim"
            assert await refused(move_id, claim(destination_url="http://127.0.0.1:1")) == "wrong_claim"
            assert await refused(move_id, claim(signer=other)) == "bad_claim_signature"
            assert await refused(move_id, claim(created_at=int(clock.now()) - 3600)) == "stale_claim"

            good = claim()
            signature = await client.claim(to, MoveClaimRequest(move_id, good))
            assert signature == sign_claim(b.node.identity.key, good.body)
            assert isinstance(signature, ClaimSignature)
            assert await client.claim(to, MoveClaimRequest(move_id, good)) == signature  # asked again: the same
            clock.advance(1)
            assert await refused(move_id, claim()) == "claim_replayed"  # another claim for the same move
            assert await refused(await offered(), good) == "claim_replayed"  # the claim of another move
            arrival = await b.node.moves.store.get_in(move_id)
            assert arrival is not None and arrival.claim_id == claim_id(good.body)

            too_large = await offered(package_bytes=10**12)  # refused at the offer: nothing to sign for
            assert await refused(too_large, claim()) == "not_open"
        finally:
            await client.close()


async def test_restarts_while_the_move_waits_and_after_shares_were_released(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with keepers_of_two(tmp_path, clock, llm) as pair:
        async with source_node(pair, clock, llm) as a, destination_node(pair, clock, llm, a.url) as b:
            await peered(a, b)
            rid = await resident_asks_to_move(Grid(a, pair.keepers, llm, clock), b)
            await a.node.moves.tick(due_only=False)
            waiting = await move_out(a, rid)
            assert waiting.state == "accepted" and waiting.ready_at is not None
        # Both nodes are gone; what the move needs is in their databases.
        clock.advance(MOVE_DELAY + 1)
        async with source_node(pair, clock, llm) as a, destination_node(pair, clock, llm, a.url) as b:
            await peered(a, b)
            assert (await move_out(a, rid)).claim == waiting.claim

            async def fail(*_: object) -> int:
                raise OSError("the destination dies before it stages the resident")

            with monkeypatch.context() as patch:  # keepers release, then the destination fails before staging
                patch.setattr(b.node.moves.arrivals._vault, "import_sealed", fail)
                await a.node.moves.tick(due_only=True)
            assert (await move_out(a, rid)).state == "prepared"
            stored = await b.node.db.fetch_all("SELECT x FROM move_releases WHERE move_id = ?", (waiting.id,))
            assert len(stored) == 3  # kept: the keepers will not release epoch 2 again under this claim
        async with source_node(pair, clock, llm) as a, destination_node(pair, clock, llm, a.url) as b:
            await peered(a, b)
            await a.node.moves.tick(due_only=False)
            assert (await move_out(a, rid)).state == "done"
            assert sorted(len(g) for g in await grants(pair.keepers, a.key, rid, 2)) == [0, 0, 1, 1, 1]
            assert await b.node.db.fetch_all("SELECT x FROM move_releases") == []
            arrived = await b.node.residents.get(rid)
            assert arrived is not None and arrived.status == "active"
