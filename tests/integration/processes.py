"""Real processes for the integration tests: one way to launch `ftm-node` and `ftm-keeper` as children, daemons
and short commands alike, to kill one at a named point (`kill -9` from inside, through `crasher.py`), and to wait
for what they do, every wait bounded in time.

    clean_env      the environment a child gets: this one without FTM_ and provider settings, plus the given ones
    cli            a command line run to its end (`ftm-node init`, `ftm-keeper init`, `restore run`, …)
    CrashPoint     one function replaced by a SIGKILL of the process, before or after its nth call
    crash          a command line run in a child that kills itself at a crash point; its return code and output
    Daemon         a long-running `ftm-node run` / `ftm-keeper run` (or a crasher of one), logged to files
    node_daemon    `ftm-node run` as a Daemon; keeper_daemon the same for `ftm-keeper run`
    daemon         a Daemon as a context manager: started, healthy, stopped at exit
    wait_until     poll a predicate until it holds, failing early if a watched daemon died
    query          a read-only look into a daemon's SQLite database while it writes (WAL lets a reader in)
    RealTimeClock  real time, moved on by `advance`, for in-process nodes and keepers beside real ones
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from ftm.federation.clock import FakeClock
from tests.integration.test_cli import FTM_NODE, free_port

FTM_KEEPER = str(Path(sys.executable).with_name("ftm-keeper"))
CRASHER = Path(__file__).with_name("crasher.py")
ENTRY_POINTS = {FTM_NODE: "ftm.node.cli:main", FTM_KEEPER: "ftm.keeper.cli:main"}
DEMO = {"FTM_PROVIDERS_DEFAULT_PROVIDER": "demo", "FTM_PROVIDERS_DEFAULT_MODEL": "offline-demo"}
QUIET = {"FTM_ADMIN_PORT": "0", "FTM_DISCOVERY_MDNS": "off"}  # no admin socket, no multicast from a test
CLI_SECONDS = 120
HEALTH_SECONDS = 30
STOP_SECONDS = 30
POLL_SECONDS = 0.2
HEALTH_PATH = "/healthz"

__all__ = [
    "CRASHER",
    "DEMO",
    "FTM_KEEPER",
    "FTM_NODE",
    "QUIET",
    "CrashPoint",
    "Daemon",
    "RealTimeClock",
    "answers",
    "clean_env",
    "cli",
    "crash",
    "daemon",
    "free_port",
    "keeper_daemon",
    "node_daemon",
    "query",
    "wait_until",
]


def clean_env(settings: Mapping[str, str] = {}) -> dict[str, str]:
    """This process's environment without anything that configures a node, keeper or provider, plus `settings`:
    a child sees only what its test gives it."""
    prefixes = ("FTM_", "ANTHROPIC_", "OPENAI_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)} | dict(settings)


def cli(
    program: str, *args: str, settings: Mapping[str, str] = {}, timeout: float = CLI_SECONDS
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [program, *args], capture_output=True, text=True, timeout=timeout, env=clean_env(settings), check=False
    )


@dataclass(frozen=True, slots=True)
class CrashPoint:
    """Where a child kills itself: `target` (`module:Qualified.name`) is replaced by a wrapper that sends the
    process SIGKILL as its `nth` call starts (`before`) or as it returns (`after`)."""

    target: str
    when: Literal["before", "after"] = "before"
    nth: int = 1

    def command(self, program: str, args: Sequence[str]) -> list[str]:
        """`program args…` as a crasher child: the same command line, run with this point patched in."""
        return [sys.executable, str(CRASHER), self.target, self.when, str(self.nth), ENTRY_POINTS[program], "--", *args]


async def crash(
    point: CrashPoint, program: str, *args: str, settings: Mapping[str, str] = {}, seconds: float = CLI_SECONDS
) -> tuple[int, str]:
    """Run `program args…` to its end (or its death) at `point`; its return code and its output's last 3000
    characters. Async, so that keepers or servers on the caller's event loop keep answering it."""
    child = await asyncio.create_subprocess_exec(
        *point.command(program, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=clean_env(settings),
    )
    try:
        output, _ = await asyncio.wait_for(child.communicate(), seconds)
    except TimeoutError:
        child.kill()
        await child.wait()
        raise
    assert child.returncode is not None
    return child.returncode, output.decode(errors="replace")[-3000:]


def answers(url: str) -> bool:
    """Whether a GET of `url` succeeds now."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Daemon:
    """One long-running process, started and stopped again as a test needs: `command` is the whole command line
    (`[FTM_NODE, "run", …]`); `url` its base URL, whose `/healthz` answers once it serves ('' for none); each
    start logs to its own file in `log_dir` (or nowhere)."""

    name: str
    command: list[str]
    settings: dict[str, str] = field(default_factory=dict)
    url: str = ""
    log_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def health(self) -> str:
        return f"{self.url}{HEALTH_PATH}"

    def start(self, crash_at: CrashPoint | None = None, *, wait: bool = True) -> None:
        """Start it (as a crasher child if `crash_at`); with `wait`, return once `health` answers. A crasher is not
        waited for: it may die before it ever serves."""
        assert self.process is None or self.process.poll() is not None, f"{self.name} is running"
        program, *args = self.command
        command = self.command if crash_at is None else crash_at.command(program, args)
        sink: IO[bytes] | int = subprocess.DEVNULL
        if self.log_dir is not None:
            log = self.log_dir / f"{self.name}-{len(self.logs)}.log"
            self.logs.append(log)
            sink = log.open("wb")
        try:
            self.process = subprocess.Popen(command, stdout=sink, stderr=sink, env=clean_env(self.settings))
        finally:
            if not isinstance(sink, int):
                sink.close()
        if wait and crash_at is None and self.url:
            self.wait_serving()

    def wait_serving(self, seconds: float = HEALTH_SECONDS) -> None:
        wait_until(f"{self.name} to serve", lambda: answers(self.health), seconds, self)

    def died(self) -> int | None:
        """Its return code if it has exited, else None (None too if it was never started)."""
        return None if self.process is None else self.process.poll()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush: what a power cut does."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=STOP_SECONDS)
        self.process = None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within STOP_SECONDS; its return code (None if not running)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_SECONDS)
        returncode, self.process = self.process.returncode, None
        return returncode

    def tail(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-2500:]}" for log in self.logs)


def node_daemon(name: str, data_dir: Path, port: int, settings: Mapping[str, str], log_dir: Path) -> Daemon:
    """`ftm-node run` on 127.0.0.1:`port`."""
    command = [FTM_NODE, "run", "--data-dir", str(data_dir), "--port", str(port)]
    return Daemon(name, command, dict(settings), f"http://127.0.0.1:{port}", log_dir)


def keeper_daemon(name: str, data_dir: Path, port: int, settings: Mapping[str, str], log_dir: Path) -> Daemon:
    """`ftm-keeper run` on 127.0.0.1:`port` (initialised before with `ftm-keeper init`)."""
    command = [FTM_KEEPER, "run", "--data-dir", str(data_dir), "--port", str(port)]
    return Daemon(name, command, dict(settings), f"http://127.0.0.1:{port}", log_dir)


@contextmanager
def daemon(
    command: list[str], settings: Mapping[str, str], health: str, log_dir: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A daemon that serves `health` for the length of the block, stopped (SIGTERM) at its end."""
    running = Daemon(Path(command[0]).name, command, dict(settings), health.removesuffix(HEALTH_PATH), log_dir)
    running.start()
    assert running.process is not None
    try:
        yield running.process
    finally:
        running.stop()


def wait_until(
    what: str,
    predicate: Callable[[], object],
    seconds: float,
    *watched: Daemon,
    allow_death: Daemon | None = None,
) -> None:
    """Poll `predicate` every POLL_SECONDS until it is true; fail after `seconds`, or at once if a watched daemon
    (other than `allow_death`) exited."""
    deadline = time.monotonic() + seconds
    while True:
        for one in watched:
            if one is not allow_death and one.died() is not None:
                raise AssertionError(f"{one.name} exited ({one.died()}) while waiting for {what}:\n{one.tail()}")
        if predicate():
            return
        if time.monotonic() >= deadline:
            tails = "\n".join(d.tail() for d in watched)
            raise AssertionError(f"timed out after {seconds} s waiting for {what}\n{tails}")
        time.sleep(POLL_SECONDS)


def query(database: Path, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
    """Rows from a SQLite database another process is writing, opened read-only."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as db:
        return list(db.execute(sql, tuple(params)))


class RealTimeClock(FakeClock):
    """Real time, moved on by `advance` (the node and keepers see the same 'later')."""

    def __init__(self) -> None:
        super().__init__(0.0)

    def now(self) -> float:
        return time.time() + super().now()
