"""Deposits on a base (docs/custody.md, "Deposits on a base"): a new epoch's vault file that begins with the bytes
of an earlier epoch the keeper holds sealed from the same host is started from the keeper's own replica of it,
and the host sends only the rest. A base the keeper cannot use is ignored, never refused; a malformed one is."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from ftm.federation.clock import FakeClock
from ftm.federation.identity import SigningKey
from ftm.keeper import protocol
from ftm.keeper.daemon import Keeper
from ftm.keeper.merkle import merkle_root
from ftm.keeper.protocol import (
    HOLDING_DOMAIN,
    ORDER_DOMAIN,
    PROTOCOL_VERSION,
    DepositBase,
    DestroyOrder,
    Holding,
    Progress,
    Seal,
    open_answer,
    sign_answer,
)
from ftm.keeper.replicas import Replicas
from tests.keeper.keeperparties import Epoch, MiB, Party, deal_epoch, deliver, log_entries, move_claim

DAY_SECONDS = 86_400
PREFIX = 3 * MiB // 2 + 4097  # not a multiple of a leaf, a chunk or a copy step
FIRST_LENGTH = 2 * MiB + 123


def _first(keeper: Keeper) -> Epoch:
    return deal_epoch(keeper.key.public_key, epoch=1, length=FIRST_LENGTH)


def _next(keeper: Keeper, first: Epoch, *, prefix: int = PREFIX, epoch: int = 2, tail: int = MiB + 77) -> Epoch:
    """The resident's epoch `epoch`, whose vault file begins with `prefix` bytes of `first`'s (a base to name)."""
    dealt = deal_epoch(keeper.key.public_key, resident_key=first.resident_key, epoch=epoch, length=tail)
    vault = first.vault[:prefix] + dealt.vault
    deposit = replace(dealt.deposit, length=len(vault), root=merkle_root(vault))
    return replace(dealt, vault=vault, deposit=deposit)


def _on(epoch: Epoch, base: DepositBase | None) -> Epoch:
    return replace(epoch, deposit=replace(epoch.deposit, base=base))


def _base(first: Epoch, prefix: int = PREFIX) -> DepositBase:
    return DepositBase(first.epoch, first.deposit.root, prefix)


async def _finish(host: Party, epoch: Epoch, received: int) -> Holding:
    """Send the rest from `received` in 1 MiB pieces, then seal; the keeper's Holding."""
    offset = received
    while offset < len(epoch.vault):
        piece = epoch.vault[offset : offset + MiB]
        offset = (await host.data(epoch.resident_id, epoch.epoch, offset, piece)).decoded(Progress).received
    sealed = await host.send(protocol.PATH_SEAL, Seal(PROTOCOL_VERSION, epoch.resident_id, epoch.epoch))
    assert sealed.status == 200, sealed.body
    return open_answer(Holding, sealed.body, HOLDING_DOMAIN, host.keeper_key)


async def _deposit(host: Party, epoch: Epoch) -> int:
    return (await host.send(protocol.PATH_DEPOSIT, epoch.deposit)).decoded(Progress).received


def _replica(keeper: Keeper, host: Party, epoch: Epoch) -> Path:
    return Replicas(keeper.data_dir.replicas).path(host.public_key, epoch.resident_id, epoch.epoch)


async def _reused(keeper: Keeper, epoch: int) -> list[object]:
    return [
        e.data["reused"] for e in await log_entries(keeper) if e.kind == "deposit_accepted" and e.data["epoch"] == epoch
    ]


async def test_a_deposit_on_a_held_base_starts_from_the_keepers_own_copy(keeper: Keeper, host: Party) -> None:
    first = _first(keeper)
    assert (await deliver(host, first)).status == 200
    second = _on(_next(keeper, first), _base(first))

    assert await _deposit(host, second) == PREFIX  # the host sends from there
    holding = await _finish(host, second, PREFIX)
    assert (holding.epoch, holding.root, holding.length) == (2, second.deposit.root, len(second.vault))
    assert _replica(keeper, host, second).read_bytes() == second.vault
    assert _replica(keeper, host, first).read_bytes() == first.vault  # the base is untouched
    assert await _reused(keeper, 1) == [0]
    assert await _reused(keeper, 2) == [PREFIX]


async def test_a_base_the_keeper_cannot_use_is_ignored(keeper: Keeper, host: Party, clock: FakeClock) -> None:
    first = _first(keeper)
    await deliver(host, first)
    root = first.deposit.root
    cases = {
        2: DepositBase(0, root, PREFIX),  # an epoch never deposited
        3: DepositBase(1, merkle_root(b"another file"), PREFIX),  # another root than the one held
        4: DepositBase(1, root, FIRST_LENGTH + 1),  # longer than the replica held
    }
    for number, base in cases.items():
        later = _next(keeper, first, epoch=number, tail=2 * MiB)
        assert await _deposit(host, _on(later, base)) == 0
        holding = await _finish(host, later, 0)
        assert (holding.epoch, holding.root) == (number, later.deposit.root)
        assert await _reused(keeper, number) == [0]

    # A base deposited but never sealed is not a copy the keeper checked.
    unsealed = _next(keeper, first, epoch=5)
    await _deposit(host, unsealed)
    await host.data(unsealed.resident_id, 5, 0, unsealed.vault[:MiB])
    on_unsealed = _on(_next(keeper, first, epoch=6), DepositBase(5, unsealed.deposit.root, MiB // 2))
    assert await _deposit(host, on_unsealed) == 0

    # A destroyed base is gone.
    order = DestroyOrder(PROTOCOL_VERSION, first.resident_id, 1, "rotated", host.public_key, int(clock.now()))
    assert (await host.send(protocol.PATH_DESTROY, sign_answer(host.key, ORDER_DOMAIN, order))).status == 200
    after = _on(_next(keeper, first, epoch=8), _base(first))
    assert await _deposit(host, after) == 0
    assert (await _finish(host, after, 0)).root == after.deposit.root


async def test_a_destination_cannot_name_its_source_hosts_copy_as_a_base(
    keeper: Keeper, host: Party, party: Callable[[], Party], clock: FakeClock
) -> None:
    first = _first(keeper)
    await deliver(host, first)
    destination = party()
    await keeper.add_host(destination.public_key, "http://127.0.0.1:9", "registration-2", via="manual")
    claim = move_claim(first, host, destination, int(clock.now()))
    assert (await host.send(protocol.PATH_MOVE, claim)).status == 200
    clock.advance(DAY_SECONDS + 1)  # past the move's delay: the destination may deposit the resident here

    # The base names the resident's epoch 1 as this keeper holds it, but for the source: not the signer's own.
    moved = _on(_next(keeper, first), _base(first))
    assert await _deposit(destination, moved) == 0
    assert (await _finish(destination, moved, 0)).root == moved.deposit.root
    assert await _reused(keeper, 2) == [0]


async def test_a_malformed_base_is_refused(keeper: Keeper, host: Party) -> None:
    first = _first(keeper)
    await deliver(host, first)
    second = _next(keeper, first)
    root = first.deposit.root
    malformed = [
        DepositBase(1, root, -1),
        DepositBase(1, root, len(second.vault) + 1),
        DepositBase(2, root, PREFIX),  # not an earlier epoch
        DepositBase(3, root, PREFIX),
        DepositBase(-1, root, PREFIX),
        DepositBase(1, root[:31], PREFIX),
    ]
    for base in malformed:
        answer = await host.send(protocol.PATH_DEPOSIT, _on(second, base).deposit)
        assert (answer.status, answer.error()) == (422, "bad_base")
    assert await _reused(keeper, 2) == []
    assert await _deposit(host, second) == 0  # the same deposit without a base is taken


async def test_a_corrupt_base_copy_fails_the_seal_and_the_whole_file_is_sent_again(keeper: Keeper, host: Party) -> None:
    first = _first(keeper)
    await deliver(host, first)
    with _replica(keeper, host, first).open("r+b") as copy:  # the keeper's disk lost some of epoch 1
        copy.seek(MiB)
        copy.write(b"\0" * 4096)
    second = _on(_next(keeper, first), _base(first))

    assert await _deposit(host, second) == PREFIX
    offset = PREFIX
    while offset < len(second.vault):
        piece = second.vault[offset : offset + MiB]
        offset = (await host.data(second.resident_id, 2, offset, piece)).decoded(Progress).received
    refused = await host.send(protocol.PATH_SEAL, Seal(PROTOCOL_VERSION, second.resident_id, 2))
    assert (refused.status, refused.error()) == (409, "wrong_root")

    # The host's next attempt repeats the deposit (with its base): answered from the emptied replica, no copy.
    assert await _deposit(host, second) == 0
    holding = await _finish(host, second, 0)
    assert (holding.root, holding.length) == (second.deposit.root, len(second.vault))
    assert _replica(keeper, host, second).read_bytes() == second.vault
    assert await _reused(keeper, 2) == [PREFIX]  # one deposit, copied once


async def test_a_repeated_deposit_answers_what_is_held_and_copies_nothing_again(keeper: Keeper, host: Party) -> None:
    first = _first(keeper)
    await deliver(host, first)
    second = _on(_next(keeper, first), _base(first))
    assert await _deposit(host, second) == PREFIX
    await host.data(second.resident_id, 2, PREFIX, second.vault[PREFIX : PREFIX + 1000])

    # The host crashed and asks again, with or without the base: the same deposit, answered from what is held.
    assert await _deposit(host, second) == PREFIX + 1000
    assert await _deposit(host, _on(second, None)) == PREFIX + 1000
    assert await _reused(keeper, 2) == [PREFIX]
    holding = await _finish(host, second, PREFIX + 1000)
    assert holding.root == second.deposit.root
    assert await _deposit(host, second) == len(second.vault)  # sealed: all of it


@pytest.mark.parametrize("kernel_copy", [True, False])
async def test_a_replica_begun_from_a_base_holds_exactly_its_prefix(
    tmp_path: Path, kernel_copy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not kernel_copy:
        monkeypatch.delattr(os, "copy_file_range", raising=False)  # the plain copy, as where the call is missing
    replicas = Replicas(tmp_path / "replicas")
    host = SigningKey.generate().public_key
    vault = deal_epoch(host, length=3 * MiB + 5).vault
    await replicas.begin(host, "r1", 1)
    await replicas.append(host, "r1", 1, 0, vault)

    assert await replicas.begin_from(host, "r1", 2, 1, PREFIX) == PREFIX
    assert replicas.path(host, "r1", 2).read_bytes() == vault[:PREFIX]
    assert await replicas.begin_from(host, "r1", 3, 1, 0) == 0
    assert replicas.path(host, "r1", 3).read_bytes() == b""
    # A base shorter on disk than it should be (or gone) gives an empty replica: the host sends everything.
    assert await replicas.begin_from(host, "r1", 4, 1, len(vault) + 1) == 0
    assert replicas.path(host, "r1", 4).read_bytes() == b""
    assert await replicas.begin_from(host, "r1", 5, 9, 10) == 0
    assert replicas.path(host, "r1", 5).read_bytes() == b""
