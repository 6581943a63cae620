"""Threshold custody's rotation with real processes: five `ftm-keeper run` daemons and an `ftm-node run` daemon
keeping one resident 3-of-5.

Invariant 4 (write new → commit → destroy old) under `kill -9`: the day's run (`ftm-node run-now`, beside the
daemon) deals epoch 2; the daemon's custody worker delivers it, commits it at k + 1 holdings and orders epoch 1
destroyed. The daemon runs as a crasher child that kills itself at one of those steps, is started again as a plain
daemon, and the rotation must end with epoch 2 committed at every keeper, epoch 1 destroyed at every keeper that
had it (a signed receipt for each), nothing half-dealt left anywhere, one run counted, and the resident whole.

Runs go on with two keepers down: three release the epoch; epoch 2 reaches only three keepers and stays pending
(commit needs k + 1 = 4, docs/custody.md) with epoch 1 kept; once the two are back it commits and epoch 1 goes.

The resident carries about 2.5 MiB of imported history, which the run does not change: epoch 2's vault file
begins with epoch 1's bytes, so every keeper that holds epoch 1 copies them from its own replica and is sent only
the rest (docs/custody.md, "Deposits on a base"). A keeper killed as it copies them loses nothing either: its
deposit was never recorded, and the delivery is made again when it is back. In every case each keeper's replica of
epoch 2 ends byte for byte the node's file.

And an epoch superseded after a kill mid-delivery (the next day's run deals epoch 3 before the daemon is back)
must still be destroyed at every keeper it reached (a deposit counts as a try before it is sent, so destruction
never takes a delivery the keeper may hold for one never made).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ftm.config.loading import load_settings
from ftm.federation.clock import utc_day
from ftm.federation.eventlog import read_entries, verify_chain
from ftm.federation.signedanswers import open_answer
from ftm.keeper.daemon import KeeperDir
from ftm.keeper.protocol import RECEIPT_DOMAIN, DestroyReceipt
from ftm.node.app import open_node
from ftm.node.datadir import DataDir
from ftm.node.persona import PersonaPackage
from ftm.node.providers.demo import DemoProvider
from tests.factories import CANARY, native_bytes
from tests.integration.processes import (
    DEMO,
    FTM_KEEPER,
    FTM_NODE,
    QUIET,
    CrashPoint,
    Daemon,
    cli,
    free_port,
    keeper_daemon,
    node_daemon,
    query,
    wait_until,
)
from tests.integration.test_restore_cli import package_of, register_and_vet
from tests.node.custody.grid import THRESHOLD

KEEPERS = 5
DAY_SECONDS = 86_400
DEADLINE_SECONDS = 90
LOCAL = {**QUIET, "FTM_RUNS_SCHEDULER": "false"}  # runs happen only when the test says
CUSTODY = {**LOCAL, **DEMO, **THRESHOLD}  # 3-of-5, a 24 h run window, retries after 1 s

CLIENT = "ftm.node.keeperclient:KeeperClient"
POINTS = {
    # epoch 2 dealt, its record committed with the run, recorded by the worker; no keeper has seen any of it
    "dealt": CrashPoint(f"{CLIENT}.deposit"),
    # two keepers hold epoch 2 (signed Holdings); a third took its deposit, the node never heard its answer
    "mid_delivery": CrashPoint(f"{CLIENT}.deposit", "after", nth=3),
    # epoch 2 committed at the node; two keepers told so, three still hold it uncommitted
    "mid_commit": CrashPoint(f"{CLIENT}.commit", "after", nth=2),
    # epoch 2 committed and every holder told; epoch 1 marked destroying, no order sent
    "committed": CrashPoint(f"{CLIENT}.destroy"),
    # two keepers destroyed epoch 1; the second's receipt never reached the node's database
    "some_destroyed": CrashPoint(f"{CLIENT}.destroy", "after", nth=2),
}


# About 2.5 MiB of history no run changes: what makes epoch 2 a deposit on epoch 1.
HISTORY = [{"role": ("user", "assistant")[i % 2], "content": f"line {i}: " + "tide " * 400} for i in range(1200)]


def blob(value: object) -> bytes:
    assert isinstance(value, bytes)
    return value


@dataclass
class Grid:
    root: Path
    node_dir: DataDir
    node: Daemon
    keepers: list[Daemon]
    keeper_dirs: list[KeeperDir]
    rid: str
    before: PersonaPackage | None = None  # the package as it was before the day's run

    def epochs(self) -> dict[int, str]:
        """The node's custody epochs of the resident and their states."""
        rows = query(
            self.node_dir.database, "SELECT epoch, state FROM custody_epochs WHERE resident_id = ?", [self.rid]
        )
        return {int(str(epoch)): str(state) for epoch, state in rows}

    def deliveries(self, epoch: int) -> list[tuple[bytes, str, int, bytes | None]]:
        """(keeper key, state, tries, receipt) of each keeper epoch `epoch` was dealt to."""
        rows = query(
            self.node_dir.database,
            "SELECT keeper_key, state, tries, receipt FROM custody_deliveries WHERE resident_id = ? AND epoch = ?",
            [self.rid, epoch],
        )
        return [(blob(k), str(s), int(str(t)), None if r is None else blob(r)) for k, s, t, r in rows]

    def states(self, epoch: int) -> list[str]:
        return sorted(state for _, state, _, _ in self.deliveries(epoch))

    def deposits(self, n: int) -> dict[int, str]:
        """What keeper `n` holds of the resident: epoch → state."""
        rows = query(
            self.keeper_dirs[n].database, "SELECT epoch, state FROM deposits WHERE resident_id = ?", [self.rid]
        )
        return {int(str(epoch)): str(state) for epoch, state in rows}

    def run_grants(self, n: int, epoch: int) -> list[bytes]:
        """The ephemeral keys keeper `n` released `epoch` to for a run."""
        sql = "SELECT ephemeral_key FROM releases WHERE resident_id = ? AND epoch = ? AND purpose = 'run'"
        return [blob(key) for (key,) in query(self.keeper_dirs[n].database, sql, [self.rid, epoch])]

    def everywhere(self, epoch: int) -> list[str | None]:
        """The state of `epoch` at each keeper (None where it has nothing of it)."""
        return [self.deposits(n).get(epoch) for n in range(KEEPERS)]

    def rotated(self) -> bool:
        """Epoch 2 committed and every holder told; epoch 1 destroyed at every keeper."""
        return self.epochs() == {1: "destroyed", 2: "committed"} and self.states(2) == ["committed"] * KEEPERS

    def run_now(self) -> dict[str, object]:
        ran = cli(FTM_NODE, "run-now", self.rid, "--json", "--data-dir", str(self.node_dir.root), settings=CUSTODY)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        outcome: dict[str, object] = json.loads(ran.stdout)
        return outcome

    def wait(self, what: str, predicate: Callable[[], object], *, allow_death: Daemon | None = None) -> None:
        live = [d for d in (self.node, *self.keepers) if d.process is not None]
        wait_until(what, predicate, DEADLINE_SECONDS, *live, allow_death=allow_death)


@contextmanager
def custody_grid(tmp_path: Path) -> Iterator[Grid]:
    """A node whose five vetted Keepers' keeper nodes (`ftm-keeper init --node … --token …`, then `run`) enrolled
    while it ran in local custody, serving again in threshold custody with one resident whose first epoch is
    committed at all five keepers. Its package is opened once (`before`): that spends epoch 1's run release to the
    ephemeral key the node keeps, which the day's run asks with again."""
    node_dir = DataDir(tmp_path / "node")
    init = cli(FTM_NODE, "init", "--data-dir", str(node_dir.root), settings=LOCAL)
    assert init.returncode == 0, init.stderr
    tokens = register_and_vet(node_dir.root, KEEPERS)
    node_port = free_port()
    keeper_dirs = [KeeperDir(tmp_path / f"keeper-{n}") for n in range(KEEPERS)]
    keepers = [keeper_daemon(f"keeper-{n}", d.root, free_port(), {}, tmp_path) for n, d in enumerate(keeper_dirs)]
    node = node_daemon("node", node_dir.root, node_port, CUSTODY, tmp_path)
    with ExitStack() as stack:
        stack.callback(node.stop)
        for keeper in keepers:
            stack.callback(keeper.stop)
        enrolling = node_daemon("node-local", node_dir.root, node_port, LOCAL, tmp_path)
        stack.callback(enrolling.stop)
        enrolling.start()
        for keeper, token in zip(keepers, tokens, strict=True):
            data = keeper.command[keeper.command.index("--data-dir") + 1]
            made = cli(FTM_KEEPER, "init", "--data-dir", data, "--public-url", keeper.url, "--node", enrolling.url,
                       "--token", token)  # fmt: skip
            assert made.returncode == 0, made.stdout + made.stderr
            keeper.start()
        assert enrolling.stop() == 0, enrolling.tail()

        node.start()
        persona = tmp_path / "persona.json"
        persona.write_bytes(
            native_bytes(preferred_provider="demo", preferred_model="offline-demo", chat_history=HISTORY)
        )
        intake = cli(FTM_NODE, "intake", str(persona), "--consent", "--json", "--data-dir", str(node_dir.root),
                     settings=CUSTODY)  # fmt: skip
        assert intake.returncode == 0, intake.stderr
        rid = json.loads(intake.stdout)["sanctuary_id"]
        grid = Grid(tmp_path, node_dir, node, keepers, keeper_dirs, rid)
        grid.wait("epoch 1 to commit at all five keepers", lambda: grid.everywhere(1) == ["committed"] * KEEPERS)
        assert grid.epochs() == {1: "committed"}
        grid.before = package_of(node_dir.root, rid, CUSTODY)
        assert CANARY in grid.before.system_prompt
        yield grid


def assert_rotated_and_whole(grid: Grid) -> None:
    """Epoch 2 committed at every keeper, epoch 1 destroyed at every one with a signed receipt, nothing else held;
    one run counted; the package opens with everything it had. The node daemon is stopped; keepers serve."""
    assert grid.epochs() == {1: "destroyed", 2: "committed"}
    assert grid.states(2) == ["committed"] * KEEPERS
    for keeper_key, state, _, raw in grid.deliveries(1):
        assert state == "destroyed" and raw is not None, (state, raw)
        receipt = open_answer(DestroyReceipt, raw, RECEIPT_DOMAIN, keeper_key)  # signed by that keeper
        assert (receipt.resident_id, receipt.epoch, receipt.keeper_key) == (grid.rid, 1, keeper_key)
    for n, keeper_dir in enumerate(grid.keeper_dirs):
        assert grid.deposits(n) == {1: "destroyed", 2: "committed"}, n  # no half-dealt or stray epoch anywhere
        [(share,)] = query(
            keeper_dir.database, "SELECT sealed_share FROM deposits WHERE resident_id = ? AND epoch = 1", [grid.rid]
        )
        assert share == b""  # wiped
        replicas = sorted(p.name for p in keeper_dir.replicas.rglob("*") if p.is_file() and grid.rid in p.parts)
        assert replicas and all(name.startswith("2") for name in replicas), replicas  # epoch 1's replica is gone
    assert query(grid.node_dir.database, "SELECT state FROM run_ledger WHERE resident_id = ?", [grid.rid]) == [
        ("completed",)
    ]
    [(base_epoch, prefix)] = query(
        grid.node_dir.database,
        "SELECT base_epoch, base_prefix FROM custody_epochs WHERE resident_id = ? AND epoch = 2",
        [grid.rid],
    )
    assert base_epoch == 1 and int(str(prefix)) > 2 * 2**20  # epoch 2 was a deposit on epoch 1
    node_file = (grid.node_dir.root / "vault" / grid.rid / "epoch-0000000002.ftmv").read_bytes()
    for keeper_dir in grid.keeper_dirs:
        [replica] = [p for p in keeper_dir.replicas.rglob("2") if p.is_file() and grid.rid in p.parts]
        assert replica.read_bytes() == node_file

    async def inside() -> PersonaPackage:
        settings = load_settings(None, CUSTODY)
        async with open_node(grid.node_dir, settings, env={}) as node:
            resident = await node.residents.get(grid.rid)
            assert resident is not None and (resident.key_epoch, resident.total_runs) == (2, 1)
            assert node.vault.epochs(grid.rid) == [2]
            assert len(await read_entries(node.db, kind="run_completed")) == 1
            assert (await verify_chain(node.db, node.identity.public_key)).valid
            return await node.packages.open(grid.rid)  # epoch 2's shares, released by the keepers

    after = asyncio.run(inside())
    before = grid.before
    assert before is not None
    assert (after.resident_id, after.name, after.system_prompt, after.memory) == (
        before.resident_id, before.name, before.system_prompt, before.memory,
    )  # fmt: skip
    assert (after.signing_seed, after.inbox_secret) == (before.signing_seed, before.inbox_secret)
    assert after.history[: len(before.history)] == before.history and len(after.history) == len(before.history) + 1


def at_the_kill(grid: Grid, point: str) -> None:
    """What the kill left, before anything recovers: proof that it happened where its name says."""
    if point == "dealt":
        assert grid.epochs() == {1: "committed", 2: "pending"}
        assert grid.states(2) == ["pending"] * KEEPERS
        assert grid.everywhere(2) == [None] * KEEPERS
    elif point == "mid_delivery":
        assert grid.epochs() == {1: "committed", 2: "pending"}
        assert grid.states(2) == ["held", "held", "pending", "pending", "pending"]
        assert sorted(map(str, grid.everywhere(2))) == ["None", "None", "deposited", "held", "held"]
    elif point == "mid_commit":
        assert grid.epochs() == {1: "committed", 2: "committed"}
        assert grid.states(2) == ["committed", "held", "held", "held", "held"]  # the second's answer never recorded
        assert sorted(map(str, grid.everywhere(2))) == ["committed"] * 2 + ["held"] * 3
        assert grid.everywhere(1) == ["committed"] * KEEPERS
    elif point == "committed":
        assert grid.epochs() == {1: "destroying", 2: "committed"}
        assert grid.everywhere(2) == ["committed"] * KEEPERS
        assert grid.everywhere(1) == ["committed"] * KEEPERS
    else:
        assert grid.epochs() == {1: "destroying", 2: "committed"}
        assert grid.states(1) == ["committed", "committed", "committed", "committed", "destroyed"]
        assert sorted(map(str, grid.everywhere(1))) == ["committed"] * 3 + ["destroyed"] * 2


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_a_rotation_killed_at_any_step_loses_nothing(tmp_path: Path, point: str) -> None:
    with custody_grid(tmp_path) as grid:
        assert grid.node.stop() == 0, grid.node.tail()
        grid.node.start(POINTS[point], wait=False)
        grid.node.wait_serving()
        outcome = grid.run_now()  # beside the daemon: its worker finds the new record and delivers it
        assert outcome["state"] == "completed", outcome
        grid.wait(f"the node to kill itself at {point}", lambda: grid.node.died() is not None, allow_death=grid.node)
        assert grid.node.died() == -signal.SIGKILL, grid.node.tail()
        at_the_kill(grid, point)

        grid.node.start()  # a plain daemon again: its worker resumes from what it recorded
        grid.wait("the rotation to finish", grid.rotated)
        assert grid.node.stop() == 0, grid.node.tail()
        assert grid.run_now()["state"] == "skipped"  # the day's run happened, once
        assert_rotated_and_whole(grid)


@pytest.mark.slow
def test_runs_go_on_with_two_keepers_down_and_the_rotation_finishes_when_they_return(tmp_path: Path) -> None:
    with custody_grid(tmp_path) as grid:
        down = [1, 3]
        for n in down:
            grid.keepers[n].kill()
        outcome = grid.run_now()
        assert outcome["state"] == "completed", outcome
        up = [n for n in range(KEEPERS) if n not in down]
        grants = [key for n in up for key in grid.run_grants(n, 1)]
        assert len(grants) == 3 and len(set(grants)) == 1  # the three keepers up released epoch 1, to one kept key

        def both_missed_twice() -> bool:
            deliveries = grid.deliveries(2)
            held = sum(state == "held" for _, state, _, _ in deliveries)
            return held == 3 and sum(tries >= 2 for _, _, tries, _ in deliveries) == 2

        grid.wait("epoch 2 to reach the three keepers up and fail twice at the two down", both_missed_twice)
        assert grid.states(2) == ["held", "held", "held", "pending", "pending"]
        assert grid.epochs() == {1: "committed", 2: "pending"}  # three holdings: commit needs k + 1 = 4
        held = grid.everywhere(2)
        assert [held[n] for n in down] == [None, None] and held.count("held") == 3
        assert grid.everywhere(1) == ["committed"] * KEEPERS  # nothing newer committed: epoch 1 stays

        for n in down:
            grid.keepers[n].start()
        grid.wait("the rotation to finish", grid.rotated)
        assert grid.node.stop() == 0, grid.node.tail()
        assert_rotated_and_whole(grid)


@pytest.mark.slow
def test_an_epoch_superseded_after_a_kill_mid_delivery_is_destroyed_at_every_keeper_it_reached(tmp_path: Path) -> None:
    """The node dies as the third keeper's deposit of epoch 2 is answered (the node still has that delivery as
    never sent). Before its daemon is back, the next day's run opens epoch 2 (the two holders and the third keeper
    release it) and deals epoch 3. Epoch 2 is then abandoned: every keeper it reached must destroy it."""
    with custody_grid(tmp_path) as grid:
        assert grid.node.stop() == 0, grid.node.tail()
        grid.node.start(POINTS["mid_delivery"], wait=False)
        grid.node.wait_serving()
        assert grid.run_now()["state"] == "completed"
        grid.wait("the node to kill itself mid-delivery", lambda: grid.node.died() is not None, allow_death=grid.node)
        assert grid.node.died() == -signal.SIGKILL, grid.node.tail()
        at_the_kill(grid, "mid_delivery")
        reached = [n for n in range(KEEPERS) if 2 in grid.deposits(n)]
        assert len(reached) == 3

        async def next_day() -> str:
            settings = load_settings(None, CUSTODY)
            async with open_node(grid.node_dir, settings, env={}, providers={"demo": DemoProvider()}) as node:
                return (await node.engine.run(grid.rid, utc_day(time.time() + DAY_SECONDS))).state

        assert asyncio.run(next_day()) == "completed"  # epoch 2 opened from the three keepers it reached
        grid.node.start()
        grid.wait(
            "epoch 3 to commit and the older epochs to end",
            lambda: (
                grid.epochs() == {1: "destroyed", 2: "destroyed", 3: "committed"}
                and grid.states(3) == ["committed"] * KEEPERS
            ),
        )
        assert grid.node.stop() == 0, grid.node.tail()
        for n in range(KEEPERS):
            held = grid.deposits(n)
            assert held.get(1) == "destroyed" and held.get(3) == "committed", (n, held)
            assert held.get(2) == ("destroyed" if n in reached else None), (n, held)  # nothing half-dealt left
        receipts = [raw for _, state, _, raw in grid.deliveries(2) if raw is not None]
        assert len(receipts) == len(reached)  # a signed receipt from each keeper epoch 2 reached


@pytest.mark.slow
def test_a_keeper_killed_as_it_copies_a_base_loses_nothing(tmp_path: Path) -> None:
    with custody_grid(tmp_path) as grid:
        keeper = grid.keepers[0]
        assert keeper.stop() == 0, keeper.tail()
        keeper.start(CrashPoint("ftm.keeper.replicas:Replicas.begin_from", "after"), wait=False)
        keeper.wait_serving()
        assert grid.run_now()["state"] == "completed"
        grid.wait("keeper 0 to kill itself as it copies epoch 1", lambda: keeper.died() is not None, allow_death=keeper)
        assert keeper.died() == -signal.SIGKILL, keeper.tail()
        assert 2 not in grid.deposits(0)  # it copied the prefix and died before its deposit was recorded

        keeper.start()  # its start-up sweep removes the unrecorded replica; the node's next try deposits again
        grid.wait("the rotation to finish", grid.rotated)
        assert grid.node.stop() == 0, grid.node.tail()
        assert_rotated_and_whole(grid)
