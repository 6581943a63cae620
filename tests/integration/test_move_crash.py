"""A move survives `kill -9` of either node at each of its steps: after a restart it completes, with exactly one
host and nothing lost.

Two real `ftm-node run` daemons on 127.0.0.1, peered by bootstrap. The source holds a resident large enough to
cross in several transfer chunks, and a recorded move request (as a run's commit records it). One daemon runs as a
child process with one step replaced by a SIGKILL of itself; once it died it is started again as a plain daemon,
and the move must end `done`. Then both are stopped and their data directories opened: the source has the resident
'moved' with no keys and no files left, the destination hosts it, and its package opens there whole.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from ftm.config.loading import load_settings
from ftm.federation.clock import SystemClock
from ftm.federation.identity import load_node_identity
from ftm.node.app import open_node
from ftm.node.datadir import DataDir
from ftm.node.providers.demo import DemoProvider
from tests.factories import CANARY, native_bytes
from tests.integration.processes import (
    DEMO,
    FTM_NODE,
    QUIET,
    CrashPoint,
    Daemon,
    answers,
    cli,
    free_port,
    node_daemon,
    query,
    wait_until,
)

DEADLINE_SECONDS = 90
POINTS = {
    "source_after_offer": CrashPoint("ftm.node.departures:Departures._prepare"),  # the offer was accepted, recorded
    "source_mid_transfer": CrashPoint("ftm.node.moveclient:MoveClient.send_data", "after", nth=2),
    "source_after_receipt": CrashPoint("ftm.node.departures:Departures._commit"),  # the receipt is in hand
    # committed; files not shredded, destination not told
    "source_after_commit": CrashPoint("ftm.node.departures:Departures._shred"),
    "destination_mid_import": CrashPoint("ftm.node.arrivals:Arrivals._check_package"),  # vault file written only
    "destination_staged": CrashPoint("ftm.node.arrivals:_remove_parts"),  # staged and committed; no receipt sent
}


def site(name: str, data_dir: DataDir, port: int, bootstrap: str = "") -> Daemon:
    settings = {
        **DEMO,
        **QUIET,
        "FTM_FEDERATION_BOOTSTRAP": bootstrap,
        "FTM_FEDERATION_RECONCILE_SECONDS": "5",
        "FTM_MOVES_RETRY_SECONDS": "1",
        "FTM_RUNS_SCHEDULER": "false",  # no run changes the resident in the middle: each case is exact
    }
    return node_daemon(name, data_dir.root, port, settings, data_dir.root.parent)


def ftm(*args: str) -> subprocess.CompletedProcess[str]:
    return cli(FTM_NODE, *args, settings=DEMO, timeout=60)


def wait_for(what: str, predicate: Callable[[], object], *daemons: Daemon, allow_death: Daemon | None = None) -> None:
    wait_until(what, predicate, DEADLINE_SECONDS, *daemons, allow_death=allow_death)


@contextmanager
def stopped_at_exit(*daemons: Daemon) -> Iterator[None]:
    with ExitStack() as stack:
        for daemon in daemons:
            stack.callback(daemon.stop)
        yield


def big_persona(path: Path) -> None:
    """A persona whose sealed package takes three transfer chunks (1 MiB each), with a canary in it."""
    history = [
        {"role": "user" if i % 2 else "assistant", "content": f"{CANARY} lamp light {i} " * 60} for i in range(3000)
    ]
    path.write_bytes(native_bytes(chat_history=history, preferred_provider="demo", preferred_model="offline-demo"))


async def record_move(source: DataDir, resident_id: str, destination: DataDir, url: str) -> None:
    """The move request, recorded as a run's commit records it."""
    key = load_node_identity(destination.node_key).public_key
    settings = load_settings(source.config_file, DEMO)
    async with (
        open_node(source, settings, env={}, providers={"demo": DemoProvider()}) as node,
        node.db.transaction("test_request_move") as tx,
    ):
        assert await node.moves.request(tx, resident_id, key, url, int(SystemClock().now()))


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
async def test_a_move_killed_at_any_step_completes_with_one_host(tmp_path: Path, point: str) -> None:
    a_dir, b_dir = DataDir(tmp_path / "a"), DataDir(tmp_path / "b")
    b = site("destination", b_dir, free_port())
    a = site("source", a_dir, free_port(), bootstrap=b.url)
    for data_dir in (a_dir, b_dir):
        assert ftm("init", "--data-dir", str(data_dir.root)).returncode == 0
    persona = tmp_path / "persona.json"
    big_persona(persona)
    intake = ftm("intake", str(persona), "--data-dir", str(a_dir.root), "--consent", "--json")
    assert intake.returncode == 0, intake.stderr
    rid = json.loads(intake.stdout)["sanctuary_id"]
    settings = load_settings(a_dir.config_file, DEMO)
    async with open_node(a_dir, settings, env={}, providers={"demo": DemoProvider()}) as node:
        before = await node.packages.open(rid)
        vault_bytes = (await node.residents.get(rid)).vault_bytes  # type: ignore[union-attr]
    assert vault_bytes > 2 * 1024 * 1024
    await record_move(a_dir, rid, b_dir, b.url)

    killed, other = (a, b) if point.startswith("source") else (b, a)
    with stopped_at_exit(a, b):
        b.start(POINTS[point] if killed is b else None, wait=False)
        wait_for("the destination to listen", lambda: answers(b.health), b)
        a.start(POINTS[point] if killed is a else None, wait=False)
        wait_for(
            f"the {killed.name} to kill itself at {point}", lambda: killed.died() is not None, other, allow_death=killed
        )
        assert killed.died() == -signal.SIGKILL, killed.tail()

        killed.start(wait=False)  # restarted as a plain daemon: it resumes from what it persisted
        wait_for(
            "the move to end",
            lambda: query(a_dir.database, "SELECT state FROM moves_out") == [("done",)],
            a,
            b,
        )
        assert query(b_dir.database, "SELECT status FROM residents WHERE id = ?", (rid,)) == [("active",)]
    # Both stopped: exactly one host, and everything of the resident at it.
    async with open_node(a_dir, settings, env={}, providers={"demo": DemoProvider()}) as source:
        left = await source.residents.get(rid)
        assert left is not None and left.status == "moved" and left.moved_to == b.url
        assert await source.db.fetch_all("SELECT epoch FROM resident_keys WHERE resident_id = ?", (rid,)) == []
        assert source.vault.epochs(rid) == [] and not [p for p in (a_dir.root / "moves").rglob("*") if p.is_file()]
    b_settings = load_settings(b_dir.config_file, DEMO)
    async with open_node(b_dir, b_settings, env={}, providers={"demo": DemoProvider()}) as destination:
        here = await destination.residents.get(rid)
        assert here is not None and here.status == "active"
        assert destination.vault.epochs(rid) == [here.key_epoch]
        after = await destination.packages.open(rid)
        assert after == before  # nothing lost, nothing changed: the same persona, keys and history
        assert not [p for p in (b_dir.root / "moves").rglob("*") if p.is_file()]
        assert len(await destination.db.fetch_all("SELECT 1 FROM moves_in WHERE state = 'active'")) == 1
