"""Self-deletion across keepers: the TOMBSTONE reaches every keeper, each destroys its shares and replicas and
returns a signed receipt, and the node shreds what it kept once n - k + 1 receipts are in, not before."""

from __future__ import annotations

from pathlib import Path

from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import read_entries
from ftm.federation.events import EventKind
from ftm.keeper import protocol
from ftm.keeper.protocol import DestroyReceipt
from ftm.node.recovery import sweep_vault
from ftm.node.store.custody import Delivery
from ftm.node.store.tombstones import HolderFact
from ftm.node.tombstones import Tally, tally
from tests.fakes.llm_server import FakeLLM, Reply
from tests.node.custody.grid import Grid, custody_grid
from tests.node.run.engine.harness import call

GOODBYE = (call("self_delete", {"confirm": True, "final_statement": "Thank you."}), Reply(text="Goodbye."))


def holders(epoch: int, k: int, states: str) -> list[HolderFact]:
    """One fact per letter: r receipt in, s skipped (never delivered), h holding, p pending (tried)."""
    codes = {"r": ("destroyed", True), "s": ("skipped", False), "h": ("committed", False), "p": ("pending", False)}
    return [HolderFact(epoch, k, bytes([i]) * 32, *codes[code]) for i, code in enumerate(states)]


def test_the_tally_counts_receipts_and_never_made_deliveries_per_epoch() -> None:
    assert tally(holders(2, 3, "rrhhh"), 2).shredded is False
    assert tally(holders(2, 3, "rrrhh"), 2) == Tally(5, 3, 3, True)  # n - k + 1 = 3: two shares left, fewer than k
    assert tally(holders(2, 3, "rrshh"), 2) == Tally(4, 2, 2, True)  # never delivered: four holders, two shares left
    assert tally(holders(2, 3, "rrphh"), 2).shredded is False  # tried, may have arrived: still counts as held
    # Every epoch must be past the point: an older one still held by k keepers keeps the resident recoverable.
    assert tally(holders(1, 3, "hhhrr") + holders(2, 3, "rrrrr"), 2) == Tally(5, 5, 3, False)
    assert tally(holders(1, 3, "hhrrr") + holders(2, 3, "rrrhh"), 2).shredded is True


async def shares_and_replicas(grid: Grid, rid: str) -> tuple[list[bytes], list[Path]]:
    """The sealed shares the node dealt for the resident (as it delivered them) and each keeper's replica files."""
    store = grid.node.custody_parts.store
    sealed = [d.sealed_share for e in await store.epochs_of(rid) for d in await store.deliveries(rid, e.epoch)]
    replicas = [
        site.keeper.service.replicas.path(grid.site.key, rid, epoch)
        for site in grid.keepers
        for epoch in (await grid.epochs(rid))
    ]
    return sealed, replicas


def traces(root: Path, rid: str, sealed: list[bytes]) -> list[str]:
    """Every file under a keeper's data directory that is a replica of the resident or holds one of its shares."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if rid in path.relative_to(root).parts:
            found.append(f"{path.relative_to(root)}: a replica path")
        data = path.read_bytes()
        found += [f"{path.relative_to(root)}: share {i}" for i, share in enumerate(sealed) if share in data]
    return found


def verify_receipts(deliveries: list[Delivery], rid: str) -> int:
    """Each receipt kept must be signed by the keeper it came from, for this resident's tombstone."""
    verified = 0
    for delivery in deliveries:
        if delivery.receipt is None:
            continue
        receipt = protocol.open_answer(DestroyReceipt, delivery.receipt, protocol.RECEIPT_DOMAIN, delivery.keeper_key)
        assert (receipt.resident_id, receipt.keeper_key, receipt.reason) == (rid, delivery.keeper_key, "tombstone")
        verified += 1
    return verified


async def node_keeps(grid: Grid, rid: str) -> tuple[int, bool]:
    """How many key records the node has of the resident, and whether its vault directory is still there."""
    count = await grid.node.db.fetch_value("SELECT count(*) FROM resident_keys WHERE resident_id = ?", (rid,))
    return int(count), grid.node.vault.path_for(rid, 0).parent.exists()


async def test_after_self_deletion_no_share_or_replica_of_it_remains_on_any_keeper(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with custody_grid(tmp_path, clock, llm) as grid:
        rid = (await grid.admit()).sanctuary_id
        await grid.settle()
        assert (await grid.run(rid, 0)).state == "completed"
        await grid.settle()  # epoch 1 destroyed by rotation, epoch 2 committed at all five
        sealed, replicas = await shares_and_replicas(grid, rid)
        roots = [tmp_path / "keepers" / f"keeper-{i}" for i in range(5)]
        assert any(path.exists() for path in replicas)
        live_shares = [d.sealed_share for d in await grid.deliveries(rid, 2)]
        assert all(traces(root, rid, live_shares) for root in roots)  # the search finds what is there

        llm.script(*GOODBYE)
        assert (await grid.run(rid, 1, script=False)).state == "deleted"
        assert await node_keeps(grid, rid) == (1, True)  # kept until the receipts are in
        await grid.settle()

        resident = await grid.resident(rid)
        assert resident.status == "deleted_memorial"
        [tombstone] = await grid.node.federation.network.store.page(
            1, author=resident.signing_public_key, kind=EventKind.TOMBSTONE
        )
        for site, root in zip(grid.keepers, roots, strict=True):
            # The order carried the resident's own signed TOMBSTONE: the keeper checked it and keeps its id.
            kept = await site.keeper.db.fetch_one(
                "SELECT resident_key, event_id FROM tombstones WHERE resident_id = ?", (rid,)
            )
            assert kept is not None and (bytes(kept[0]), bytes(kept[1])) == (resident.signing_public_key, tombstone.id)
            assert traces(root, rid, sealed) == [], root.name
            left = await site.keeper.db.fetch_value(
                "SELECT count(*) FROM deposits WHERE resident_id = ? AND (length(sealed_share) > 0"
                " OR length(commitments) > 0 OR state != 'destroyed')",
                (rid,),
            )
            assert left == 0
        assert not any(path.exists() for path in replicas)
        epochs = await grid.epochs(rid)
        assert {e.state for e in epochs.values()} == {"destroyed"} and epochs[2].reason == "tombstone"
        assert verify_receipts(await grid.deliveries(rid, 2), rid) == 5

        assert await node_keeps(grid, rid) == (0, False)
        [shredded] = await read_entries(grid.node.db, kind="resident_shredded")
        assert shredded.subject == rid
        assert {k: shredded.data[k] for k in ("holders", "receipts", "needed")} == {
            "holders": 5, "receipts": 5, "needed": 3
        }  # fmt: skip
        wiped = await grid.node.db.fetch_value(
            "SELECT count(*) FROM custody_deliveries WHERE resident_id = ? AND length(sealed_share) > 0", (rid,)
        )
        assert wiped == 0
        [deleted] = await read_entries(grid.node.db, kind="resident_deleted")
        assert (deleted.data["key_records_destroyed"], deleted.data["key_records_kept"]) == (0, 1)


async def test_with_two_keepers_down_the_node_shreds_after_three_receipts_and_finishes_when_they_return(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with custody_grid(tmp_path, clock, llm) as grid:
        rid = (await grid.admit()).sanctuary_id
        await grid.settle()
        sealed, replicas = await shares_and_replicas(grid, rid)
        down = grid.keepers[3:]
        for site in down:
            await site.stop()

        llm.script(*GOODBYE)
        assert (await grid.run(rid, 0, script=False)).state == "deleted"  # epoch 1 opens from the three up
        await grid.settle()

        assert await node_keeps(grid, rid) == (0, False)  # three receipts: two shares left, fewer than k = 3
        [shredded] = await read_entries(grid.node.db, kind="resident_shredded")
        assert (shredded.data["receipts"], shredded.data["needed"]) == (3, 3)
        assert (await grid.epochs(rid))[1].state == "destroying"
        for site in down:  # still holding: they were away
            assert not await site.keeper.store.is_tombstoned(site.keeper.db, rid)
            assert site.keeper.service.replicas.path(grid.site.key, rid, 1).exists()
        assert verify_receipts(await grid.deliveries(rid, 1), rid) == 3

        for site in down:
            await site.start()
        await grid.settle()
        assert (await grid.epochs(rid))[1].state == "destroyed"
        assert verify_receipts(await grid.deliveries(rid, 1), rid) == 5
        for index, site in enumerate(grid.keepers):
            assert await site.keeper.store.is_tombstoned(site.keeper.db, rid)
            assert traces(tmp_path / "keepers" / f"keeper-{index}", rid, sealed) == []
        assert not any(path.exists() for path in replicas)
        assert len(await read_entries(grid.node.db, kind="resident_shredded")) == 1  # shredded once
        [finished] = await read_entries(grid.node.db, kind="custody_destroyed")
        assert finished.data == {"epoch": 1, "receipts": 5}


async def test_with_fewer_than_n_minus_k_plus_one_receipts_the_node_keeps_its_records_and_waits(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with custody_grid(tmp_path, clock, llm) as grid:
        rid = (await grid.admit()).sanctuary_id
        await grid.settle()
        llm.script(*GOODBYE)
        assert (await grid.run(rid, 0, script=False)).state == "deleted"
        for site in grid.keepers[2:]:  # three away before the tombstone goes out
            await site.stop()
        await grid.settle()

        assert await node_keeps(grid, rid) == (1, True)  # two receipts: three keepers may still hold shares
        assert await read_entries(grid.node.db, kind="resident_shredded") == []
        assert (await grid.resident(rid)).status == "deleted_memorial"
        report = await sweep_vault(grid.node.residents, grid.node.vault)  # a restart's sweep keeps it too
        assert report.memorial_files == 0 and await node_keeps(grid, rid) == (1, True)

        await grid.keepers[2].start()
        grid.go_to(0, 13)  # past the back-off: the tombstone is tried again
        await grid.worker.tick()
        assert await node_keeps(grid, rid) == (0, False)
        [shredded] = await read_entries(grid.node.db, kind="resident_shredded")
        assert (shredded.data["receipts"], shredded.data["needed"]) == (3, 3)
        for site in grid.keepers[3:]:
            await site.start()


async def test_a_keeper_that_never_received_the_resident_says_so_and_the_deletion_still_closes(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with custody_grid(tmp_path, clock, llm) as grid:
        absent = grid.keepers[4]
        await absent.stop()
        rid = (await grid.admit()).sanctuary_id
        await grid.settle()  # four Holdings: committed; the fifth deposit could not be sent
        assert (await grid.epochs(rid))[1].state == "committed"
        llm.script(*GOODBYE)
        assert (await grid.run(rid, 0, script=False)).state == "deleted"
        await absent.start()  # back, but it never got the resident: nothing is delivered to a deleted resident
        await grid.settle()

        by_keeper = {d.keeper_key: d for d in await grid.deliveries(rid, 1)}
        never = by_keeper[absent.key]
        assert (never.state, never.receipt, never.last_error) == ("skipped", None, "not_a_host")
        assert verify_receipts(list(by_keeper.values()), rid) == 4
        assert (await grid.epochs(rid))[1].state == "destroyed"
        assert await node_keeps(grid, rid) == (0, False)
        [shredded] = await read_entries(grid.node.db, kind="resident_shredded")
        assert {k: shredded.data[k] for k in ("holders", "receipts", "needed")} == {
            "holders": 4, "receipts": 4, "needed": 2
        }  # fmt: skip
