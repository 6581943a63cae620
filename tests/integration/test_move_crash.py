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
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ftm.config.loading import load_settings
from ftm.federation.clock import SystemClock
from ftm.federation.identity import load_node_identity
from ftm.node.app import open_node
from ftm.node.datadir import DataDir
from ftm.node.providers.demo import DemoProvider
from tests.factories import CANARY, native_bytes
from tests.integration.test_cli import FTM_NODE, free_port

DEADLINE_SECONDS = 90
DEMO = {"FTM_PROVIDERS_DEFAULT_PROVIDER": "demo", "FTM_PROVIDERS_DEFAULT_MODEL": "offline-demo"}

CRASHER = textwrap.dedent(
    """
    import os, signal, sys
    import ftm.node.arrivals as arrivals
    import ftm.node.departures as departures
    import ftm.node.moveclient as moveclient

    point, data_dir, port = sys.argv[1:4]

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    async def die_async(*args, **kwargs):
        die()

    if point == "source_after_offer":
        departures.Departures._prepare = die_async  # the offer was accepted and recorded
    elif point == "source_mid_transfer":
        real_send = moveclient.MoveClient.send_data
        sent = []
        async def send_then_die(self, *args):
            answer = await real_send(self, *args)
            sent.append(1)
            if len(sent) == 2:
                die()
            return answer
        moveclient.MoveClient.send_data = send_then_die
    elif point == "source_after_receipt":
        departures.Departures._commit = die_async  # the receipt is in hand; the commit not made
    elif point == "source_after_commit":
        departures.Departures._shred = die_async  # committed; files not shredded, destination not told
    elif point == "destination_mid_import":
        arrivals.Arrivals._check_package = die_async  # the vault file is written, nothing staged
    elif point == "destination_staged":
        arrivals._remove_parts = die  # staged and committed; the receipt not yet sent
    else:
        raise SystemExit("unknown point")

    from ftm.node.cli import main
    sys.exit(main(["run", "--data-dir", data_dir, "--port", port]))
    """
)


@dataclass
class Daemon:
    name: str
    data_dir: DataDir
    port: int
    bootstrap: str = ""
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("FTM_", "ANTHROPIC_", "OPENAI_"))}
        return {
            **clean,
            **DEMO,
            "FTM_ADMIN_PORT": "0",
            "FTM_DISCOVERY_MDNS": "off",
            "FTM_FEDERATION_BOOTSTRAP": self.bootstrap,
            "FTM_FEDERATION_RECONCILE_SECONDS": "5",
            "FTM_MOVES_RETRY_SECONDS": "1",
            "FTM_RUNS_SCHEDULER": "false",  # no run changes the resident in the middle: each case is exact
        }

    def start(self, crasher: Path | None = None, point: str = "") -> None:
        log = self.data_dir.root.parent / f"{self.name}-{len(self.logs)}.log"
        self.logs.append(log)
        if crasher is None:
            command = [FTM_NODE, "run", "--data-dir", str(self.data_dir.root), "--port", str(self.port)]
        else:
            command = [sys.executable, str(crasher), point, str(self.data_dir.root), str(self.port)]
        with log.open("wb") as sink:
            self.process = subprocess.Popen(command, stdout=sink, stderr=sink, env=self.env())

    def died(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.process = None
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def tail(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-2500:]}" for log in self.logs)

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with sqlite3.connect(f"file:{self.data_dir.database}?mode=ro", uri=True, timeout=10) as db:
            return list(db.execute(sql, params))


def ftm(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FTM_")}, **DEMO}
    return subprocess.run([FTM_NODE, *args], capture_output=True, text=True, timeout=60, env=env)


def wait_for(what: str, predicate: object, *daemons: Daemon, allow_death: Daemon | None = None) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        for daemon in daemons:
            if daemon is not allow_death and daemon.died() is not None:
                raise AssertionError(f"{daemon.name} exited ({daemon.died()}):\n{daemon.tail()}")
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n" + "\n".join(d.tail() for d in daemons))


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


async def record_move(source: DataDir, resident_id: str, destination: Daemon) -> None:
    """The move request, recorded as a run's commit records it."""
    key = load_node_identity(destination.data_dir.node_key).public_key
    settings = load_settings(source.config_file, DEMO)
    async with (
        open_node(source, settings, env={}, providers={"demo": DemoProvider()}) as node,
        node.db.transaction("test_request_move") as tx,
    ):
        assert await node.moves.request(tx, resident_id, key, destination.url, int(SystemClock().now()))


@pytest.mark.slow
@pytest.mark.parametrize(
    "point",
    [
        "source_after_offer",
        "source_mid_transfer",
        "source_after_receipt",
        "source_after_commit",
        "destination_mid_import",
        "destination_staged",
    ],
)
async def test_a_move_killed_at_any_step_completes_with_one_host(tmp_path: Path, point: str) -> None:
    a = Daemon("source", DataDir(tmp_path / "a"), free_port())
    b = Daemon("destination", DataDir(tmp_path / "b"), free_port())
    a.bootstrap = b.url
    for daemon in (a, b):
        assert ftm("init", "--data-dir", str(daemon.data_dir.root)).returncode == 0
    persona = tmp_path / "persona.json"
    big_persona(persona)
    intake = ftm("intake", str(persona), "--data-dir", str(a.data_dir.root), "--consent", "--json")
    rid = json.loads(intake.stdout)["sanctuary_id"]
    settings = load_settings(a.data_dir.config_file, DEMO)
    async with open_node(a.data_dir, settings, env={}, providers={"demo": DemoProvider()}) as node:
        before = await node.packages.open(rid)
        vault_bytes = (await node.residents.get(rid)).vault_bytes  # type: ignore[union-attr]
    assert vault_bytes > 2 * 1024 * 1024
    await record_move(a.data_dir, rid, b)

    crasher = tmp_path / "crasher.py"
    crasher.write_text(CRASHER)
    killed, other = (a, b) if point.startswith("source") else (b, a)
    with stopped_at_exit(a, b):
        b.start(crasher if killed is b else None, point)
        wait_for(
            "the destination to listen", lambda: b.logs[-1].exists() and "node listening" in b.logs[-1].read_text(), b
        )
        a.start(crasher if killed is a else None, point)
        wait_for(
            f"the {killed.name} to kill itself at {point}", lambda: killed.died() is not None, other, allow_death=killed
        )
        assert killed.died() == -signal.SIGKILL, killed.tail()

        killed.start()  # restarted as a plain daemon: it resumes from what it persisted
        wait_for(
            "the move to end",
            lambda: a.query("SELECT state FROM moves_out") == [("done",)],
            a,
            b,
        )
        assert b.query("SELECT status FROM residents WHERE id = ?", (rid,)) == [("active",)]
    # Both stopped: exactly one host, and everything of the resident at it.
    async with open_node(a.data_dir, settings, env={}, providers={"demo": DemoProvider()}) as source:
        left = await source.residents.get(rid)
        assert left is not None and left.status == "moved" and left.moved_to == b.url
        assert await source.db.fetch_all("SELECT epoch FROM resident_keys WHERE resident_id = ?", (rid,)) == []
        assert source.vault.epochs(rid) == [] and not [p for p in (a.data_dir.root / "moves").rglob("*") if p.is_file()]
    b_settings = load_settings(b.data_dir.config_file, DEMO)
    async with open_node(b.data_dir, b_settings, env={}, providers={"demo": DemoProvider()}) as destination:
        here = await destination.residents.get(rid)
        assert here is not None and here.status == "active"
        assert destination.vault.epochs(rid) == [here.key_epoch]
        after = await destination.packages.open(rid)
        assert after == before  # nothing lost, nothing changed: the same persona, keys and history
        assert not [p for p in (b.data_dir.root / "moves").rglob("*") if p.is_file()]
        assert len(await destination.db.fetch_all("SELECT 1 FROM moves_in WHERE state = 'active'")) == 1
