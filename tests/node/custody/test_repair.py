"""Repair (docs/custody.md, "Repair"): a keeper whose copy silently lost a tenth of its 4 KiB leaves is caught by
the node's own scheduled challenges, sent the epoch's vault file again, and passes the next challenge with its
copy whole; one that keeps losing it is repaired once, then counted, made suspect and replaced at the next epoch;
a repair of the wrong bytes is refused by the keeper, which keeps what it had."""

from __future__ import annotations

import os
from pathlib import Path

from ftm.federation.clock import FakeClock
from ftm.federation.eventlog import read_entries
from ftm.keeper import merkle
from ftm.keeper.replicas import host_dir_name
from ftm.node.store.custody import Delivery
from tests.fakes.llm_server import FakeLLM
from tests.node.custody.grid import Grid, KeeperSite, custody_grid
from tests.node.run.engine.harness import DAY_ONE_MIDNIGHT, DAY_SECONDS

MAX_STEPS = 20  # scheduled challenges driven per test: containment is 3 tries, suspicion 3 counted failures


def _history() -> list[dict[str, str]]:
    """A history big enough for a vault file of a few hundred leaves (random text does not compress)."""
    return [{"role": "user", "content": os.urandom(1500).hex()} for _ in range(300)]


def _replica(grid: Grid, site: KeeperSite, resident_id: str, epoch: int) -> Path:
    return site.keeper.data_dir.replicas / host_dir_name(grid.site.key) / resident_id / str(epoch)


def _lose_a_tenth(replica: Path) -> int:
    """Zero every tenth 4 KiB leaf in place (the file keeps its length): nothing tells the keeper."""
    leaves = -(-replica.stat().st_size // merkle.LEAF_SIZE)
    with replica.open("r+b") as copy:
        for leaf in range(0, leaves, 10):
            copy.seek(leaf * merkle.LEAF_SIZE)
            copy.write(b"\0" * min(merkle.LEAF_SIZE, replica.stat().st_size - leaf * merkle.LEAF_SIZE))
    return leaves


async def _holding(grid: Grid, resident_id: str, site: KeeperSite) -> Delivery:
    [delivery] = [d for d in await grid.deliveries(resident_id, 1) if d.keeper_key == site.key]
    return delivery


async def _next_scheduled_challenge(grid: Grid, resident_id: str, site: KeeperSite) -> None:
    """The clock goes to the keeper's next challenge (or containment retry); the worker does what is due then."""
    delivery = await _holding(grid, resident_id, site)
    assert delivery.next_challenge_at is not None
    grid.clock.advance(max(0, delivery.next_challenge_at - grid.clock.now()))
    await grid.worker.tick()


async def _admitted(grid: Grid) -> tuple[str, KeeperSite]:
    rid = (await grid.admit(chat_history=_history())).sanctuary_id
    await grid.settle()
    epoch = (await grid.epochs(rid))[1]
    assert epoch.state == "committed" and epoch.length > 100 * merkle.LEAF_SIZE
    dealt = {d.keeper_key for d in await grid.deliveries(rid, 1)}
    return rid, next(site for site in grid.keepers if site.key in dealt)


async def test_a_keeper_that_silently_drops_a_tenth_of_its_leaves_is_caught_and_repaired(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with custody_grid(tmp_path, clock, llm) as grid:
        rid, loser = await _admitted(grid)
        replica = _replica(grid, loser, rid, 1)
        original = replica.read_bytes()
        assert original == grid.node.vault.path_for(rid, 1).read_bytes()
        _lose_a_tenth(replica)

        store = grid.node.custody_parts.store
        for _ in range(MAX_STEPS):
            await _next_scheduled_challenge(grid, rid, loser)
            history = await store.proofs(loser.key, 100)
            if history[0].outcome == "ok" and any(p.counted for p in history):
                break
        history = list(reversed(await store.proofs(loser.key, 100)))
        counted = [p for p in history if p.counted]
        assert len(counted) == 1 and counted[0].reason in ("replica_damaged", "bad_merkle:wrong_root")
        assert [p.outcome for p in history[history.index(counted[0]) + 1 :]] == ["ok"]  # the very next challenge
        assert all(p.outcome != "ok" for p in history[: history.index(counted[0])])  # containment: retried first
        assert replica.read_bytes() == original

        [repaired] = await read_entries(grid.node.db, kind="replica_repaired")
        keeper = await store.keeper(loser.key)
        assert keeper is not None and keeper.state == "active"  # one counted failure: not suspect
        assert (repaired.subject, repaired.data) == (
            keeper.registration_id, {"resident": rid, "epoch": 1, "bytes": len(original)},
        )  # fmt: skip
        delivery = await _holding(grid, rid, loser)
        assert (delivery.state, delivery.sent, delivery.last_error) == ("committed", len(original), None)
        kinds = [e.kind for e in await read_entries(loser.keeper.db)]
        assert "repair_held" in kinds and "repair_refused" not in kinds
        # The other keepers were challenged on their own schedule and never repaired.
        assert {p.outcome for site in grid.keepers if site is not loser for p in await store.proofs(site.key, 100)} <= {
            "ok"
        }


async def test_a_keeper_that_keeps_losing_its_copy_is_repaired_once_then_suspect_and_replaced(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with custody_grid(tmp_path, clock, llm, keepers=6) as grid:
        rid, loser = await _admitted(grid)
        replica = _replica(grid, loser, rid, 1)
        original = replica.read_bytes()
        store = grid.node.custody_parts.store
        for _ in range(MAX_STEPS):
            if replica.read_bytes() == original:
                _lose_a_tenth(replica)  # it loses whatever it is given
            await _next_scheduled_challenge(grid, rid, loser)
            keeper = await store.keeper(loser.key)
            assert keeper is not None
            if keeper.state == "suspect":
                break
        assert keeper.state == "suspect"
        history = await store.proofs(loser.key, 100)
        assert sum(p.counted for p in history) == 3
        assert len(await read_entries(grid.node.db, kind="replica_repaired")) == 1  # repaired once, never again
        suspect = await read_entries(grid.node.db, kind="keeper_suspect")
        assert [(e.subject, e.data["failures"]) for e in suspect] == [(keeper.registration_id, 3)]

        day = int((clock.now() - DAY_ONE_MIDNIGHT) // DAY_SECONDS) + 1
        assert (await grid.run(rid, day)).state == "completed"
        await grid.settle()
        dealt_next = {d.keeper_key for d in await grid.deliveries(rid, 2)}
        assert loser.key not in dealt_next and len(dealt_next) == 5
        assert (await grid.epochs(rid))[2].state == "committed"


async def test_a_repair_of_the_wrong_bytes_is_refused_and_the_keeper_keeps_its_copy(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM
) -> None:
    async with custody_grid(tmp_path, clock, llm) as grid:
        rid, loser = await _admitted(grid)
        replica = _replica(grid, loser, rid, 1)
        _lose_a_tenth(replica)
        damaged = replica.read_bytes()
        vault_file = grid.node.vault.path_for(rid, 1)
        good = vault_file.read_bytes()
        vault_file.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # the node's own file went bad too

        store = grid.node.custody_parts.store
        for _ in range(MAX_STEPS):
            await _next_scheduled_challenge(grid, rid, loser)
            if (await _holding(grid, rid, loser)).last_error == "wrong_root":
                break
        delivery = await _holding(grid, rid, loser)
        assert (delivery.sent, delivery.last_error, delivery.tries) == (0, "wrong_root", 1)  # tried again later
        assert replica.read_bytes() == damaged
        assert await read_entries(grid.node.db, kind="replica_repaired") == []
        refused = [e for e in await read_entries(loser.keeper.db) if e.kind == "repair_refused"]
        assert [e.data["code"] for e in refused] == ["wrong_root"]

        vault_file.write_bytes(good)  # its next try, after the retry wait, sends the right bytes
        clock.advance(delivery.next_try_at - clock.now())
        await grid.worker.tick()
        assert replica.read_bytes() == good
        assert len(await read_entries(grid.node.db, kind="replica_repaired")) == 1
        await grid.worker.tick()  # the repaired copy is challenged at the next pass
        assert (await store.proofs(loser.key, 1))[0].outcome == "ok"
