"""Repairing a sealed replica (docs/custody.md, "Repair"): the host sends the epoch's vault file again with `data`
from offset 0 and `seal`; the keeper replaces its damaged copy only with bytes that hash to the deposited root,
and refuses anything else without touching what it holds."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ftm.federation.identity import SigningKey
from ftm.keeper import merkle, protocol
from ftm.keeper.daemon import Keeper
from ftm.keeper.errors import KeeperError
from ftm.keeper.protocol import PROTOCOL_VERSION, Challenge, DestroyOrder, Progress, Seal, sign_answer
from ftm.keeper.replicas import Replicas, host_dir_name
from tests.keeper.keeperparties import MiB, Party, deal_epoch, deliver, log_entries

HOST = b"h" * 32
KEEPER = SigningKey.generate()
LOST_LEAVES = range(0, 512, 10)  # every tenth 4 KiB leaf of a 2 MiB replica: 10 % of it, in every 64 KiB group


def _zero_leaves(replica: Path, leaves: range) -> None:
    with replica.open("r+b") as copy:
        for leaf in leaves:
            copy.seek(leaf * merkle.LEAF_SIZE)
            copy.write(b"\0" * merkle.LEAF_SIZE)


async def _sealed(replicas: Replicas, vault: bytes) -> merkle.MerkleRoot:
    await replicas.begin(HOST, "r1", 1)
    await replicas.append(HOST, "r1", 1, 0, vault)
    sealed = await replicas.seal(HOST, "r1", 1)
    await replicas.keep_levels(HOST, "r1", 1)
    return sealed


async def test_a_repair_replaces_a_damaged_replica_only_with_the_deposited_bytes(tmp_path: Path) -> None:
    replicas = Replicas(tmp_path / "replicas")
    vault = deal_epoch(KEEPER.public_key, length=2 * MiB).vault
    sealed = await _sealed(replicas, vault)
    replica = replicas.path(HOST, "r1", 1)
    _zero_leaves(replica, LOST_LEAVES)
    damaged = replica.read_bytes()
    with pytest.raises(merkle.ProverError):
        await replicas.prove(HOST, "r1", 1, b"n" * 32, 48, sealed.root, sealed.length)

    # Wrong bytes (one flipped bit) are received beside the copy, then refused: the copy is as it was.
    wrong = bytearray(vault)
    wrong[MiB + 5] ^= 1
    assert await replicas.repair_append(HOST, "r1", 1, 0, bytes(wrong[:MiB])) == MiB
    with pytest.raises(KeeperError) as misplaced:
        await replicas.repair_append(HOST, "r1", 1, MiB + 1, b"x")
    assert misplaced.value.code == "wrong_offset"
    await replicas.repair_append(HOST, "r1", 1, MiB, bytes(wrong[MiB:]))
    assert not await replicas.finish_repair(HOST, "r1", 1, sealed.root, sealed.length)
    assert replica.read_bytes() == damaged
    assert await replicas.repair_size(HOST, "r1", 1) is None

    # The right bytes, a repair started over at offset 0 (whatever a broken try left), replace the copy.
    await replicas.repair_append(HOST, "r1", 1, 0, b"an interrupted try")
    assert await replicas.repair_append(HOST, "r1", 1, 0, vault) == len(vault)
    assert await replicas.finish_repair(HOST, "r1", 1, sealed.root, sealed.length)
    assert replica.read_bytes() == vault
    proof = await replicas.prove(HOST, "r1", 1, b"n" * 32, 48, sealed.root, sealed.length)
    merkle.verify_proof(sealed.root, sealed.length, b"n" * 32, proof, 48)
    folder = replica.parent
    assert sorted(p.name for p in folder.iterdir()) == ["1", "1.levels"]

    # A repair file left by a crash is swept at start-up; a destroy takes one in progress too.
    await replicas.repair_append(HOST, "r1", 1, 0, vault[:100])
    assert await replicas.sweep({(host_dir_name(HOST), "r1", 1)}) == 1
    await replicas.repair_append(HOST, "r1", 1, 0, vault[:100])
    await replicas.destroy(HOST, "r1", 1)
    assert not (tmp_path / "replicas" / host_dir_name(HOST)).exists()


async def test_a_host_repairs_a_sealed_replica_over_http(keeper: Keeper, host: Party) -> None:
    epoch = deal_epoch(keeper.key.public_key, length=2 * MiB)
    holding = await deliver(host, epoch)
    replica = keeper.data_dir.replicas / host_dir_name(host.public_key) / epoch.resident_id / "1"
    _zero_leaves(replica, LOST_LEAVES)
    damaged = replica.read_bytes()
    nonce = hashlib.sha256(b"after the loss").digest()
    challenge = Challenge(PROTOCOL_VERSION, epoch.resident_id, 1, nonce, 48)
    assert (await host.send(protocol.PATH_CHALLENGE, challenge)).error() == "replica_damaged"
    seal = Seal(PROTOCOL_VERSION, epoch.resident_id, 1)

    # A bad repair: the keeper takes the bytes, then refuses them at seal and keeps its copy untouched.
    bad = bytes(reversed(epoch.vault))
    assert (await host.data(epoch.resident_id, 1, 0, bad[:MiB])).decoded(Progress).received == MiB
    beyond = await host.data(epoch.resident_id, 1, 2 * MiB - 10, b"x" * 11)
    assert (beyond.status, beyond.error()) == (409, "too_long")
    await host.data(epoch.resident_id, 1, MiB, bad[MiB:])
    refused = await host.send(protocol.PATH_SEAL, seal)
    assert (refused.status, refused.error()) == (409, "wrong_root")
    assert replica.read_bytes() == damaged
    assert (await log_entries(keeper))[-1].kind == "repair_refused"

    # The good repair: the same signed holding again, the copy whole, the challenge answered.
    for offset in (0, MiB):
        await host.data(epoch.resident_id, 1, offset, epoch.vault[offset : offset + MiB])
    repaired = await host.send(protocol.PATH_SEAL, seal)
    assert (repaired.status, repaired.body) == (200, holding.body)
    assert replica.read_bytes() == epoch.vault
    assert (await log_entries(keeper))[-1].kind == "repair_held"
    assert (await host.send(protocol.PATH_CHALLENGE, challenge)).status == 200
    assert (await host.send(protocol.PATH_SEAL, seal)).body == holding.body  # nothing more to repair

    # A destroyed epoch takes nothing.
    order = DestroyOrder(PROTOCOL_VERSION, epoch.resident_id, 1, "rotated", host.public_key, 0)
    await host.send(protocol.PATH_DESTROY, sign_answer(host.key, protocol.ORDER_DOMAIN, order))
    late = await host.data(epoch.resident_id, 1, 0, epoch.vault[:MiB])
    assert (late.status, late.error()) == (409, "not_receiving")
