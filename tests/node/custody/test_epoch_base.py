"""Only changed ciphertext goes to keepers (docs/custody.md, "Deposits on a base"): when an epoch's vault file
begins with the previous epoch's bytes, the keepers that hold the previous epoch copy them from their own replica
and are sent only the rest; a keeper that never held it is sent the whole file.

The vault files here are written as raw bytes (ciphertext-like) at the vault's paths, and the resident's epochs
made with ThresholdCustody directly, so that what is measured is custody's part alone, whatever the vault format.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import read_entries
from ftm.federation.identity import SigningKey, derive_id
from ftm.keeper import protocol
from ftm.keeper.protocol import DepositBase, Holding
from ftm.node.store.residents import IntakeFacts, ResidentRecord
from ftm.node.thresholdcustody import MIN_BASE_PREFIX, ThresholdRecord, common_prefix, decode_record
from tests.fakes.llm_server import FakeLLM
from tests.node.custody.grid import Grid, KeeperSite, custody_grid

MiB = 1024 * 1024


async def _seal_epoch(grid: Grid, resident_id: str, epoch: int, vault: bytes) -> bytes:
    """Deal epoch `epoch`, write its vault file, and make its custody record (as a run's commit does)."""
    key = await grid.node.custody.new_epoch_key(resident_id, epoch)
    path = grid.node.vault.path_for(resident_id, epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(vault)
    record: bytes = await grid.node.custody.seal_epoch_key(resident_id, epoch, key)
    return record


def diverging(earlier: bytes, same: int, more: int) -> bytes:
    """`earlier`'s first `same` bytes, then `more` bytes of which the first surely differs from `earlier`'s next."""
    return earlier[:same] + bytes([earlier[same] ^ 0xFF]) + os.urandom(more - 1)


async def _admit(grid: Grid, vault: bytes) -> str:
    """A resident at epoch 1 under threshold custody, without the intake (its vault file is ours)."""
    signing = SigningKey.generate()
    rid = derive_id("resident", signing.public_key)
    record = await _seal_epoch(grid, rid, 1, vault)
    now = int(grid.clock.now())
    resident = ResidentRecord(
        rid, "Lumen", "", "active", signing.public_key, os.urandom(32), 1, len(vault), 0, 0, now
    )  # fmt: skip
    facts = IntakeFacts(now, "native", "", "human", None, len(vault), 0, 0)
    async with grid.node.db.transaction("test_admit") as tx:
        await grid.node.residents.insert_admitted(
            tx, resident, custody="threshold", key_record=record, intake=facts, uploader_token_hash=os.urandom(32),
            uploader_reply_key=os.urandom(32),
        )  # fmt: skip
    return rid


async def _rotate(grid: Grid, resident_id: str, epoch: int, vault: bytes) -> ThresholdRecord:
    record = await _seal_epoch(grid, resident_id, epoch, vault)
    async with grid.node.db.transaction("test_rotate") as tx:
        assert await grid.node.custody_parts.store.rotate_key(
            tx, resident_id, old_epoch=epoch - 1, new_epoch=epoch, custody="threshold", record=record,
            vault_bytes=len(vault), now=int(grid.clock.now()),
        )  # fmt: skip
    return decode_record(record)


async def _reused(site: KeeperSite, resident_id: str, epoch: int) -> list[object]:
    """What the keeper's signed log says it copied from a base for the epoch's deposit."""
    return [
        entry.data["reused"]
        for entry in await read_entries(site.keeper.db, limit=10_000)
        if entry.kind == "deposit_accepted" and entry.subject == resident_id and entry.data["epoch"] == epoch
    ]


async def test_keepers_holding_the_previous_epoch_are_sent_only_what_changed(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    first = os.urandom(3 * MiB + 100)
    second = diverging(first, 2 * MiB + 5000, MiB + 17)
    third = diverging(second, 2 * MiB + 9000, MiB // 2)
    async with custody_grid(tmp_path, clock, llm) as grid:
        rid = await _admit(grid, first)
        await grid.settle()
        assert (await grid.epochs(rid))[1].state == "committed"
        assert await grid.keeper_states(rid, 1) == ["committed"] * 5

        # One keeper is down while epoch 2 is made and delivered: it never holds epoch 2.
        absent = grid.keepers[4]
        await absent.stop()
        record = await _rotate(grid, rid, 2, second)
        assert record.base == DepositBase(1, (await grid.epochs(rid))[1].root, 2 * MiB + 5000)
        await grid.settle()
        assert (await grid.epochs(rid))[2].state == "committed"  # four holders are threshold + 1
        assert (await grid.epochs(rid))[2].base == record.base
        for site in grid.keepers[:4]:
            assert await _reused(site, rid, 2) == [2 * MiB + 5000]

        await absent.start()
        caplog.set_level(logging.INFO, logger="ftm.node.custodydelivery")
        record = await _rotate(grid, rid, 3, third)
        prefix = 2 * MiB + 9000
        assert record.base is not None and (record.base.epoch, record.base.prefix) == (2, prefix)
        await grid.settle()
        epochs = await grid.epochs(rid)
        assert epochs[3].state == "committed"
        assert await grid.keeper_states(rid, 3) == ["committed"] * 5

        # The four keepers holding epoch 2 copied the shared bytes and were sent the rest; the fifth, all of it.
        for site in grid.keepers[:4]:
            assert await _reused(site, rid, 3) == [prefix]
        assert await _reused(absent, rid, 3) == [0]
        held = [r for r in caplog.records if r.getMessage() == "keeper holds an epoch" and r.__dict__["epoch"] == 3]
        assert sorted((r.__dict__["sent"], r.__dict__["reused"]) for r in held) == sorted(
            [(len(third) - prefix, prefix)] * 4 + [(len(third), 0)]
        )
        # Every keeper holds exactly the new file and signed that it does, with the root the node recorded.
        for site in grid.keepers:
            replica = site.keeper.service.replicas.path(grid.site.key, rid, 3)
            assert replica.read_bytes() == third
        for delivery in await grid.deliveries(rid, 3):
            holding = protocol.open_answer(
                Holding, delivery.holding or b"", protocol.HOLDING_DOMAIN, delivery.keeper_key
            )
            assert (holding.epoch, holding.root, holding.length) == (3, record.root, len(third))


async def test_a_prefix_too_short_to_be_worth_it_names_no_base(tmp_path: Path, clock: FakeClock, llm: FakeLLM) -> None:
    first = os.urandom(MiB)
    async with custody_grid(tmp_path, clock, llm) as grid:
        rid = await _admit(grid, first)
        await grid.settle()
        record = await _rotate(grid, rid, 2, diverging(first, MIN_BASE_PREFIX - 1, MiB))
        assert record.base is None
        await grid.settle()
        assert (await grid.epochs(rid))[2].base is None
        for site in grid.keepers:
            assert await _reused(site, rid, 2) == [0]


def test_the_common_prefix_of_two_files(tmp_path: Path) -> None:
    block = 1024 * 1024
    body = os.urandom(2 * block + 300)
    one, other, shorter = tmp_path / "one", tmp_path / "other", tmp_path / "shorter"
    one.write_bytes(body)
    changed = bytearray(body)
    changed[block + 12345] ^= 1
    other.write_bytes(bytes(changed))
    shorter.write_bytes(body[: block + 7])
    assert common_prefix(one, one) == len(body)
    assert common_prefix(one, other) == block + 12345
    assert common_prefix(one, shorter) == common_prefix(shorter, one) == block + 7
    assert common_prefix(one, tmp_path / "missing") == 0


async def test_a_days_run_sends_its_keepers_only_what_it_changed(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    # About 3 MiB of imported history, which no run changes: the packed vault carries its blobs over as they were.
    history = [
        {"role": "user" if i % 2 else "assistant", "content": f"line {i}: " + "tide " * 400} for i in range(1500)
    ]
    async with custody_grid(tmp_path, clock, llm) as grid:
        rid = (await grid.admit(chat_history=history)).sanctuary_id
        await grid.settle()
        first = (await grid.epochs(rid))[1]
        assert first.state == "committed" and first.length > 2 * MiB

        assert (await grid.run(rid, 0)).state == "completed"
        await grid.settle()

        second = (await grid.epochs(rid))[2]
        assert second.state == "committed" and second.base is not None
        assert (second.base.epoch, second.base.root) == (1, first.root)
        assert first.length - second.base.prefix < 64 * 1024  # all of epoch 1 but its index and trailer
        assert second.length - second.base.prefix < 256 * 1024  # what the run changed, a new index and a trailer
        node_file = grid.node.vault.path_for(rid, 2).read_bytes()
        for site in grid.keepers:
            assert await _reused(site, rid, 2) == [second.base.prefix]
            assert site.keeper.service.replicas.path(grid.site.key, rid, 2).read_bytes() == node_file
        # The next day opens epoch 2 from the keepers' shares, and the package holds both days' history.
        assert (await grid.run(rid, 1)).state == "completed"
        await grid.settle()
        assert len((await grid.node.packages.open(rid)).history) == 3
