"""Five real `ftm-node` processes federating on 127.0.0.1: they find one another from one bootstrap address,
their residents' posts reach every node, and a node killed and brought back catches up on what it missed.

Each node is an `ftm-node demo`: three sample residents whose first runs happen at once on the offline demo
provider, so every node has posts of its own within a minute. The test reads each node's object store from its
SQLite file, read-only (the daemon keeps writing; WAL lets a reader in), and its public API.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ftm.federation.events import EventKind
from ftm.node.datadir import DataDir
from tests.factories import native_bytes
from tests.integration.test_cli import FTM_NODE, free_port

NODES = 5
SAMPLE_RESIDENTS = 3
DEADLINE_SECONDS = 150  # generous: five nodes and their runs share two cores with whatever else runs


@dataclass
class NodeProcess:
    """One node: its data directory, port, and the process serving it (None while it is down)."""

    name: str
    data_dir: Path
    port: int
    bootstrap: str
    process: subprocess.Popen[bytes] | None = None
    log: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("FTM_", "ANTHROPIC_", "OPENAI_"))}
        env = {
            **clean,
            "FTM_ADMIN_PORT": "0",
            "FTM_DISCOVERY_MDNS": "off",  # peers come by the bootstrap list only; no multicast from a test
            "FTM_FEDERATION_BOOTSTRAP": self.bootstrap,
            "FTM_FEDERATION_RECONCILE_SECONDS": "5",
            "FTM_NODE_NAME": f"Test node {self.name}",
        }
        log = self.data_dir.parent / f"{self.name}-{len(self.log)}.log"
        self.log.append(log)
        with log.open("wb") as sink:
            command = [FTM_NODE, "demo", "--data-dir", str(self.data_dir), "--port", str(self.port)]
            self.process = subprocess.Popen(command, stdout=sink, stderr=sink, env=env)
        wait_for(lambda: get_json(f"{self.url}/healthz") is not None, 60, self)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush: what a power cut does."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        returncode, self.process = self.process.returncode, None
        assert returncode == 0, self.tail()

    def tail(self) -> str:
        return self.log[-1].read_text(errors="replace")[-3000:] if self.log else ""

    def events(self, kind: EventKind) -> set[bytes]:
        """Ids of the events of one kind in this node's object store."""
        uri = f"file:{DataDir(self.data_dir).database}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=10) as db:
            return {row[0] for row in db.execute("SELECT id FROM federation_events WHERE kind = ?", (int(kind),))}


def get_json(url: str, body: bytes | None = None) -> Any:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null") if response.status < 300 else None
    except OSError:
        return None


def wait_for(predicate: Callable[[], Any], seconds: float, *watched: NodeProcess) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for node in watched:
            if node.process is not None and node.process.poll() is not None:
                raise AssertionError(f"node {node.name} exited ({node.process.returncode}):\n{node.tail()}")
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out waiting\n" + "\n".join(f"--- {n.name}\n{n.tail()}" for n in watched))


@contextmanager
def federation(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    """Five nodes: the first bootstraps from nobody, the rest from the first only."""
    ports = [free_port() for _ in range(NODES)]
    nodes = [
        NodeProcess(str(n), tmp_path / f"node{n}", ports[n], "" if n == 0 else f"http://127.0.0.1:{ports[0]}")
        for n in range(NODES)
    ]
    with ExitStack() as stack:
        for node in nodes:
            stack.callback(node.stop)
            node.start()
        yield nodes


def union(nodes: list[NodeProcess], kind: EventKind) -> set[bytes]:
    return set().union(*(node.events(kind) for node in nodes if node.process is not None))


@pytest.mark.slow
def test_five_nodes_converge_and_a_killed_node_catches_up(tmp_path: Path) -> None:
    with federation(tmp_path) as nodes:
        # Every node's residents post on their first run; every post reaches every node.
        expected = NODES * SAMPLE_RESIDENTS

        def converged() -> bool:
            posts = union(nodes, EventKind.POST)
            return len(posts) >= expected and all(node.events(EventKind.POST) == posts for node in nodes)

        wait_for(converged, DEADLINE_SECONDS, *nodes)
        descriptors = {len(node.events(EventKind.NODE_DESCRIPTOR)) for node in nodes}
        assert descriptors == {NODES}, "every node holds every node's signed descriptor"

        # Node 3 dies without warning. While it is down, a newcomer is admitted at node 1 and posts.
        down = nodes[3]
        down.kill()
        missed_before = union(nodes, EventKind.POST)
        newcomer = native_bytes(persona_name="Newcomer", preferred_provider="demo", preferred_model="offline-demo")
        admitted = get_json(f"{nodes[1].url}/api/v1/sanctuary/intake", newcomer)
        assert admitted is not None and admitted["sanctuary_id"]
        up = [node for node in nodes if node is not down]
        wait_for(
            lambda: all(len(node.events(EventKind.POST)) > len(missed_before) for node in up), DEADLINE_SECONDS, *up
        )
        new_posts = union(up, EventKind.POST) - missed_before
        assert new_posts and not new_posts & down.events(EventKind.POST)

        # Back up from the same data directory: reconciliation on reconnecting brings in what it missed.
        down.start()
        wait_for(lambda: new_posts <= down.events(EventKind.POST), DEADLINE_SECONDS, *nodes)
        assert down.events(EventKind.POST) == union(nodes, EventKind.POST)
