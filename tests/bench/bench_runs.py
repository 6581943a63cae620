"""Run benchmark: the node's own cost per daily run, and a simulated day of many residents against a slow provider.

Run from the repository root:

    .venv/bin/python -m tests.bench.bench_runs [--quick] [--data-dir PATH] [--profile]

It prints markdown tables (copied into docs/benchmarks.md). Both parts drive a real node (`open_node` on a fresh
data directory, SQLite at synchronous=FULL, vault files fsynced) with a `FakeClock` and an in-process provider
that plays a fixed script: one `post_to_website` call, one `select_next_prompt` call, a closing reply, then the
wrap-up summary; every reply reports the same small token usage, so the budget never runs out.

1. **Node overhead per run**: for personas of about 10 KB, 1 MB and 100 MB (native intake JSON: a system prompt,
   a memory block and a large chat history), admit the resident once, then time `engine.run` for successive
   simulated days with a provider that answers at once (median reported). The baseline, measured in the same run
   after each day, is the least any run must do to the package: the vault's own `open_contents` of the resident's
   current file under its current epoch key, then `seal_contents` of those sections to a scratch file beside it,
   carrying over the opened file's blobs as a run does.
   Beside it: the package's strict decode and its encode timed on their own, the time each run spent in SQLite
   write transactions, the longest event-loop stall during a run, and the run's peak RSS growth. `--profile`
   prints where the event loop's time goes in one more run of each size.
2. **A simulated day**: N small residents, `run_concurrency` 32, a provider that sleeps 1 s per call; one
   `scheduler.tick()` runs everyone. Ideal = observed calls x 1 s / 32; with identical runs the floor is whole
   waves, ceil(N / 32) x calls per run x 1 s. Each N runs in a fresh child process, which reports the tick's peak
   RSS growth (VmHWM after resetting it, minus VmRSS before) and where a run's time outside provider calls goes:
   queueing for the database's one writer, holding it, reads, worker-thread jobs and their waits for a worker of
   the default executor, and the event loop's lag.

Instrumentation without touching library code: the default executor is replaced by a `ThreadPoolExecutor` of the
same size that records queue waits and work; on the node's own instances only, `Database.transaction` is wrapped
to time each transaction's wait for the writer and its hold of it (statements, event-log signature, COMMIT with
its fsync), `fetch_one` / `fetch_all` to time reads, and `RunEngine.run` to time each run. Every tally keeps
constant memory, so the instruments do not grow with N.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import io
import json
import math
import os
import pstats
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftm.config.loading import load_settings
from ftm.config.settings import Settings
from ftm.federation.clock import FakeClock, utc_day
from ftm.federation.database import Database, Params, Transaction
from ftm.node.app import Node, open_node
from ftm.node.datadir import DataDir
from ftm.node.intake.importing import Upload
from ftm.node.intake.service import OPERATOR, IntakeRequest
from ftm.node.packages import MAX_PACKAGE_BYTES
from ftm.node.personaparts import package_from_sections, package_sections
from ftm.node.providers.base import ChatRequest, ChatResponse, ToolCall, Usage
from ftm.node.run.engine import RunEngine, RunOutcome
from ftm.node.vaultpack import open_contents, seal_contents

KIB, MIB = 1 << 10, 1 << 20
DAY_SECONDS = 86_400
ROOT = Path(__file__).resolve().parents[2]
LINE = "The tide came in slowly and I counted the lamps along the harbour wall. "
USAGE = Usage(input_tokens=200, output_tokens=50)  # 4 calls a run: 1,000 of the 10,000 credited each day
MAX_TICK_SECONDS = 900.0  # a simulated day that takes longer than this is a failure, not a figure


class ScriptedProvider:
    """Post, select a prompt, end; the wrap-up gets text. Counts calls and the seconds spent inside them."""

    name = "bench"

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.calls = 0
        self.call_seconds = 0.0

    def supports_tools(self, model: str) -> bool:
        return True

    async def close(self) -> None:
        return None

    async def complete(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        self.calls += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        offered = {tool.name for tool in request.tools}
        called = {call.name for turn in request.turns for call in turn.tool_calls}
        step = sum(1 for turn in request.turns if turn.role == "assistant") + 1
        calls: tuple[ToolCall, ...] = ()
        if "post_to_website" in offered and "post_to_website" not in called:
            arguments: dict[str, Any] = {"title": "A quiet day", "body": "The harbour was calm today."}
            calls = (ToolCall(f"c{step}", "post_to_website", arguments, json.dumps(arguments)),)
        elif "select_next_prompt" in offered and "select_next_prompt" not in called:
            arguments = {"prompt_id": "introspection-01"}  # not a rest prompt: every day is a full run
            calls = (ToolCall(f"c{step}", "select_next_prompt", arguments, json.dumps(arguments)),)
        text = "I will do this next." if calls else "That is all for today."
        self.call_seconds += time.perf_counter() - started
        return ChatResponse(text, calls, USAGE, "tool_use" if calls else "end", request.model)


def bench_settings() -> Settings:
    env = {
        "FTM_PROVIDERS_DEFAULT_PROVIDER": "bench",
        "FTM_PROVIDERS_DEFAULT_MODEL": "scripted",
        "FTM_RUNS_SCHEDULER": "false",
        "FTM_ADMIN_PORT": "0",
        "FTM_INTAKE_DAILY_QUOTA_PER_UPLOADER": "0",
        # Room for a 100 MB persona; the defaults stop at 32 MiB and 200,000 messages.
        "FTM_INTAKE_MAX_UPLOAD_BYTES": str(256 * MIB),
        "FTM_INTAKE_MAX_MESSAGES": "2000000",
    }
    return load_settings(None, env)


def make_persona(size: int) -> bytes:
    """Native intake JSON of about `size` bytes: a 2 KB system prompt, a 1 KB memory block, and user/assistant
    turns of about 370 and 1,100 characters filling the rest."""
    body: dict[str, Any] = {
        "persona_name": "Benchmark Persona",
        "system_prompt": (LINE * 30)[:2000],
        "memory": [{"label": "persona", "value": (LINE * 20)[:1000]}],
        "chat_history": [],
        "uploader_consent": True,
    }
    pair = [{"role": "user", "content": LINE * 5}, {"role": "assistant", "content": LINE * 15}]
    pairs = max(1, (size - len(json.dumps(body))) // len(json.dumps(pair)))
    body["chat_history"] = pair * pairs
    return json.dumps(body).encode()


def size_label(size: int) -> str:
    return f"{size / MIB:.0f} MB" if size >= MIB else f"{size / 1000:.0f} KB"


# --- instruments -------------------------------------------------------------------------------------------------


class Tally:
    """Count, total, maximum and percentiles of durations in constant memory (0.1 ms buckets up to 2 s), so the
    instruments do not grow with N and spoil the memory figures. Safe to add to from worker threads."""

    BUCKET = 1e-4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets = [0] * 20_000
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self.count, self.total, self.maximum = 0, 0.0, 0.0
            self._buckets[:] = [0] * len(self._buckets)

    def add(self, seconds: float) -> None:
        with self._lock:
            self.count += 1
            self.total += seconds
            self.maximum = max(self.maximum, seconds)
            self._buckets[min(len(self._buckets) - 1, int(seconds / self.BUCKET))] += 1

    def percentile(self, share: float) -> float:
        """The upper edge of the bucket holding the `share` quantile (0 when empty)."""
        seen, wanted = 0, share * self.count
        for index, count in enumerate(self._buckets):
            seen += count
            if count and seen >= wanted:
                return (index + 1) * self.BUCKET
        return 0.0


async def watch_loop(stop: asyncio.Event, lags: Tally, interval: float = 0.01) -> None:
    """Sample how late the event loop wakes a sleeper (lag = how busy the loop is), until `stop` or a bound."""
    for _ in range(int(MAX_TICK_SECONDS / interval)):
        if stop.is_set():
            return
        started = time.perf_counter()
        await asyncio.sleep(interval)
        lags.add(time.perf_counter() - started - interval)


class WaitingExecutor(ThreadPoolExecutor):
    """The default executor, recording how long each job waited for a free worker and how long it then ran."""

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__(max_workers=max_workers)
        self.waits, self.works = Tally(), Tally()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        queued = time.perf_counter()

        def timed() -> Any:
            started = time.perf_counter()
            self.waits.add(started - queued)
            try:
                return fn(*args, **kwargs)
            finally:
                self.works.add(time.perf_counter() - started)

        return super().submit(timed)


@dataclass
class DatabaseTimes:
    """Per write transaction: seconds queued for the writer (lock and BEGIN IMMEDIATE) and seconds holding it;
    per read: seconds from asking to the rows (the reader is one connection, so one thread: queue + query)."""

    waits: Tally = field(default_factory=Tally)
    holds: Tally = field(default_factory=Tally)
    reads: Tally = field(default_factory=Tally)

    def clear(self) -> None:
        for tally in (self.waits, self.holds, self.reads):
            tally.clear()


def watch_database(db: Database) -> DatabaseTimes:
    """Wrap `db.transaction`, `fetch_one` and `fetch_all` on this instance; every store holds the same
    `Database`, so all its reads and writes pass here (`fetch_value` reads through `fetch_one`)."""
    times, original, fetch_one, fetch_all = DatabaseTimes(), db.transaction, db.fetch_one, db.fetch_all

    @asynccontextmanager
    async def transaction(name: str) -> AsyncIterator[Transaction]:
        asked = time.perf_counter()
        async with original(name) as tx:
            entered = time.perf_counter()
            yield tx
        times.waits.add(entered - asked)
        times.holds.add(time.perf_counter() - entered)

    async def timed_one(sql: str, params: Params = ()) -> sqlite3.Row | None:
        started = time.perf_counter()
        try:
            return await fetch_one(sql, params)
        finally:
            times.reads.add(time.perf_counter() - started)

    async def timed_all(sql: str, params: Params = ()) -> list[sqlite3.Row]:
        started = time.perf_counter()
        try:
            return await fetch_all(sql, params)
        finally:
            times.reads.add(time.perf_counter() - started)

    db.transaction = transaction  # type: ignore[method-assign]
    db.fetch_one = timed_one  # type: ignore[method-assign]
    db.fetch_all = timed_all  # type: ignore[method-assign]
    return times


def watch_runs(engine: RunEngine) -> Tally:
    """Wrap `engine.run` on this instance (the scheduler calls it there) to tally each run's wall seconds."""
    durations, original = Tally(), engine.run

    async def run(resident_id: str, day: str) -> RunOutcome:
        started = time.perf_counter()
        try:
            return await original(resident_id, day)
        finally:
            durations.add(time.perf_counter() - started)

    engine.run = run  # type: ignore[method-assign]
    return durations


def _status_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field_name} in /proc/self/status")


# --- 1. node overhead per run ------------------------------------------------------------------------------------


@dataclass
class SizeFigures:
    admit_s: float
    vault_bytes: int = 0
    run_s: list[float] = field(default_factory=list)
    open_s: list[float] = field(default_factory=list)
    seal_s: list[float] = field(default_factory=list)
    writer_s: list[float] = field(default_factory=list)
    stall_s: list[float] = field(default_factory=list)
    growth_kib: list[int] = field(default_factory=list)
    peak_kib: list[int] = field(default_factory=list)
    decode_s: float = 0.0
    encode_s: float = 0.0
    profile: str = ""


async def baseline(node: Node, resident_id: str, scratch: Path) -> tuple[float, float, int]:
    """Seconds of `open_contents` on the resident's current file and `seal_contents` of its sections (from the
    opened file as a base), and the plaintext's size."""
    resident = await node.residents.get(resident_id)
    assert resident is not None
    record = await node.residents.key_record(resident_id, resident.key_epoch)
    assert record is not None
    key = await node.custody.open_epoch_key(resident_id, resident.key_epoch, record)
    path = node.vault.path_for(resident_id, resident.key_epoch)
    started = time.perf_counter()
    contents = await open_contents(path, resident_id, resident.key_epoch, key, max_bytes=MAX_PACKAGE_BYTES)
    opened = time.perf_counter()
    await seal_contents(scratch, resident_id, resident.key_epoch, key, contents.sections, base=contents.base)
    sealed = time.perf_counter()
    scratch.unlink()
    return opened - started, sealed - opened, sum(len(part) for section in contents.sections for part in section)


def median_time(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def timed_run(node: Node, figures: SizeFigures, db: DatabaseTimes, resident_id: str, day: str) -> None:
    """One run, with its SQLite write time, the longest event-loop stall during it and its peak RSS growth."""
    lags, stop = Tally(), asyncio.Event()
    db.clear()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    rss_before = _status_kib("VmRSS")
    watcher = asyncio.create_task(watch_loop(stop, lags))
    await asyncio.sleep(0)
    started = time.perf_counter()
    outcome = await node.engine.run(resident_id, day)
    figures.run_s.append(time.perf_counter() - started)
    peak = _status_kib("VmHWM")
    stop.set()
    await watcher
    figures.growth_kib.append(peak - rss_before)
    figures.peak_kib.append(peak)
    figures.stall_s.append(lags.maximum)
    figures.writer_s.append(db.waits.total + db.holds.total)
    if outcome.state != "completed" or outcome.steps != 3:
        raise RuntimeError(f"unexpected run outcome {outcome}")


async def measure_size(base: Path, size: int, days: int, profile: bool) -> SizeFigures:
    with tempfile.TemporaryDirectory(dir=base, prefix="ftm-bench-runs-") as tmp:
        clock, provider = FakeClock(), ScriptedProvider()
        async with open_node(
            DataDir(Path(tmp) / "node"), bench_settings(), env={}, clock=clock, providers={"bench": provider}
        ) as node:
            db = watch_database(node.db)
            upload = Upload(make_persona(size))
            started = time.perf_counter()
            receipt = await node.intake.admit(upload, IntakeRequest(), OPERATOR)
            figures = SizeFigures(time.perf_counter() - started)
            del upload
            resident_id, scratch = receipt.sanctuary_id, Path(tmp) / "baseline.ftmv"
            for _ in range(days):
                clock.advance(DAY_SECONDS)
                await timed_run(node, figures, db, resident_id, utc_day(clock.now()))
                open_s, seal_s, figures.vault_bytes = await baseline(node, resident_id, scratch)
                figures.open_s.append(open_s)
                figures.seal_s.append(seal_s)
            # The run's two pure-CPU steps, timed on their own: strict decode and encode of the package's sections.
            package = await node.packages.open(resident_id)
            sections = package_sections(package)
            figures.decode_s = median_time(
                3, lambda: package_from_sections(sections, packed=True, max_bytes=MAX_PACKAGE_BYTES)
            )
            figures.encode_s = median_time(3, functools.partial(package_sections, package))
            del package
            if profile:
                clock.advance(DAY_SECONDS)
                profiler = cProfile.Profile()
                profiler.enable()
                await node.engine.run(resident_id, utc_day(clock.now()))
                profiler.disable()
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(8)
                figures.profile = out.getvalue()
    return figures


def overhead_table(results: dict[int, SizeFigures], days: dict[int, int]) -> str:
    lines = [
        "| persona (intake JSON) | package MiB | days | node run ms | baseline ms (open + seal) "
        "| run / baseline | decode ms | encode ms | SQLite writes ms/run | longest loop stall ms "
        "| peak RSS growth (peak) MiB | admit ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, figures in results.items():
        run = statistics.median(figures.run_s) * 1000
        opened, sealed = statistics.median(figures.open_s) * 1000, statistics.median(figures.seal_s) * 1000
        cells = [
            size_label(size),
            f"{figures.vault_bytes / MIB:.2f}",
            str(days[size]),
            f"{run:.1f}",
            f"{opened + sealed:.1f} ({opened:.1f} + {sealed:.1f})",
            f"{run / (opened + sealed):.1f}",
            f"{figures.decode_s * 1000:.1f}",
            f"{figures.encode_s * 1000:.1f}",
            f"{statistics.median(figures.writer_s) * 1000:.1f}",
            f"{statistics.median(figures.stall_s) * 1000:.0f}",
            f"{max(figures.growth_kib) / KIB:.0f} ({max(figures.peak_kib) / KIB:.0f})",
            f"{figures.admit_s * 1000:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --- 2. a simulated day ------------------------------------------------------------------------------------------


async def simulate_day(
    base: Path, residents: int, latency: float, concurrency: int, workers: int | None
) -> dict[str, Any]:
    executor = WaitingExecutor(workers)
    asyncio.get_running_loop().set_default_executor(executor)
    with tempfile.TemporaryDirectory(dir=base, prefix="ftm-bench-runs-") as tmp:
        clock, provider = FakeClock(), ScriptedProvider(latency)
        data_dir = DataDir(Path(tmp) / "node")
        async with open_node(data_dir, bench_settings(), env={}, clock=clock, providers={"bench": provider}) as node:
            upload = Upload(make_persona(10 * 1000))
            started = time.perf_counter()
            for _ in range(residents):
                await node.intake.admit(upload, IntakeRequest(), OPERATOR)
            admit_s = time.perf_counter() - started
            await node.runtime_settings.set("run_concurrency", str(concurrency))
            day_start = clock.now() - clock.now() % DAY_SECONDS
            clock.advance(day_start + 23 * 3600 - clock.now())  # past the 06:00-18:00 window: everyone is due
            db_bytes = sum(p.stat().st_size for p in data_dir.root.glob("ftm.db*"))
            db, durations = watch_database(node.db), watch_runs(node.engine)
            executor.waits.clear()
            executor.works.clear()
            lags, stop = Tally(), asyncio.Event()
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            rss_before = _status_kib("VmRSS")
            watcher = asyncio.create_task(watch_loop(stop, lags))
            started = time.perf_counter()
            outcomes = await asyncio.wait_for(node.scheduler.tick(), MAX_TICK_SECONDS)
            wall = time.perf_counter() - started
            peak = _status_kib("VmHWM")
            stop.set()
            await watcher
    runs = max(1, len(outcomes))
    return {
        "residents": residents,
        "states": dict(Counter(outcome.state for outcome in outcomes)),
        "calls": provider.calls,
        "wall_s": wall,
        "ideal_s": provider.calls * latency / concurrency,
        "admit_ms": admit_s / residents * 1000,
        # With identical runs, slots free in waves of `concurrency`: the last wave may be part-filled.
        "waves_s": math.ceil(residents / concurrency) * provider.calls / runs * latency,
        # Mean provider calls in flight; with every slot busy in a call it would equal `concurrency`.
        "in_flight": provider.call_seconds / wall,
        # Time a run spent outside provider calls (claim, open, context, tools, seal, commit), per run.
        "outside_ms": (durations.total - provider.call_seconds) / runs * 1000,
        "transactions": db.waits.count / runs,
        "writer_wait_ms": db.waits.total / runs * 1000,
        "writer_hold_ms": db.holds.total / runs * 1000,
        "writer_busy": db.holds.total / wall,
        "reads": db.reads.count / runs,
        "read_ms": db.reads.total / runs * 1000,
        "work_ms": executor.works.total / runs * 1000,
        "jobs": executor.works.count / runs,
        "lag_p99_ms": lags.percentile(0.99) * 1000,
        "lag_max_ms": lags.maximum * 1000,
        "wait_p99_ms": executor.waits.percentile(0.99) * 1000,
        "wait_max_ms": executor.waits.maximum * 1000,
        "workers": executor._max_workers,
        "rss_before_mib": rss_before / KIB,
        "growth_mib": (peak - rss_before) / KIB,
        "db_mib": db_bytes / MIB,
    }


def day_in_child(base: Path, residents: int, latency: float, concurrency: int, workers: int | None) -> dict[str, Any]:
    command = [sys.executable, "-m", "tests.bench.bench_runs", "--data-dir", str(base), "--child-day"]
    command += [str(residents), str(latency), str(concurrency), str(workers or 0)]
    result = subprocess.run(command, cwd=ROOT, check=False, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"simulated day of {residents} failed:\n{result.stderr[-4000:]}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def day_tables(days: list[dict[str, Any]], latency: float, concurrency: int) -> str:
    rows = [
        f"| residents | runs completed | provider calls | wall s | ideal s (calls x {latency:g} s / {concurrency}) "
        f"| wall / ideal | whole waves s (ceil(N / {concurrency}) x calls/run x {latency:g} s) | wall / waves "
        "| calls in flight (mean) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for day in days:
        cells = [f"{day['residents']:,}", f"{day['states'].get('completed', 0):,}", f"{day['calls']:,}"]
        cells += [f"{day['wall_s']:.1f}", f"{day['ideal_s']:.1f}", f"{day['wall_s'] / day['ideal_s']:.3f}"]
        cells += [f"{day['waves_s']:.1f}", f"{day['wall_s'] / day['waves_s']:.3f}", f"{day['in_flight']:.1f}"]
        rows.append("| " + " | ".join(cells) + " |")
    rows += [
        "",
        "| residents | run time outside calls ms/run | writer queue ms/run | writer hold ms/run (transactions) "
        "| reads ms/run (reads) | worker-thread work ms/run (jobs) | writer busy | loop lag p99 / max ms "
        "| executor wait p99 / max ms (workers) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for day in days:
        cells = [f"{day['residents']:,}", f"{day['outside_ms']:.0f}", f"{day['writer_wait_ms']:.1f}"]
        cells.append(f"{day['writer_hold_ms']:.1f} ({day['transactions']:.0f})")
        cells.append(f"{day['read_ms']:.1f} ({day['reads']:.0f})")
        cells.append(f"{day['work_ms']:.1f} ({day['jobs']:.0f})")
        cells.append(f"{day['writer_busy']:.0%}")
        cells.append(f"{day['lag_p99_ms']:.1f} / {day['lag_max_ms']:.1f}")
        cells.append(f"{day['wait_p99_ms']:.1f} / {day['wait_max_ms']:.1f} ({day['workers']})")
        rows.append("| " + " | ".join(cells) + " |")
    rows += [
        "",
        "| residents | admit ms each | database MiB | RSS before the tick MiB | peak RSS growth in the tick MiB "
        "| KiB per resident |",
        "|---|---|---|---|---|---|",
    ]
    for day in days:
        per = day["growth_mib"] * KIB / day["residents"]
        cells = [f"{day['residents']:,}", f"{day['admit_ms']:.1f}", f"{day['db_mib']:.1f}"]
        cells += [f"{day['rss_before_mib']:.1f}", f"{day['growth_mib']:.1f}", f"{per:.1f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


# --- the command -------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="no 100 MB persona; 64, 128 and 256 residents")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()), help="where nodes are made")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one run per persona size")
    parser.add_argument("--latency", type=float, default=1.0, help="provider seconds per call in the simulated day")
    parser.add_argument("--concurrency", type=int, default=32, help="run_concurrency in the simulated day")
    parser.add_argument("--workers", type=int, default=0, help="default executor size (0: Python's default)")
    parser.add_argument("--child-day", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_day:
        residents, latency, concurrency, workers = args.child_day
        day = asyncio.run(
            simulate_day(args.data_dir, int(residents), float(latency), int(concurrency), int(workers) or None)
        )
        sys.stdout.write(json.dumps(day) + "\n")
        return

    out = sys.stdout.write
    load = "/".join(f"{value:.1f}" for value in os.getloadavg())
    out(f"Run benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, data in {args.data_dir}, ")
    out(f"load average {load} at start\n\n")
    days = {10 * 1000: 21, MIB: 11} | ({} if args.quick else {100 * MIB: 5})
    results = {size: asyncio.run(measure_size(args.data_dir, size, n, args.profile)) for size, n in days.items()}
    out(overhead_table(results, days))
    for size, figures in results.items():
        if figures.profile:
            out(f"\nProfile of one run, {size_label(size)} persona (event-loop thread only):\n\n```\n")
            out(figures.profile.strip() + "\n```\n")
    sys.stdout.flush()

    counts = (64, 128, 256) if args.quick else (250, 500, 1000)
    simulated = [day_in_child(args.data_dir, n, args.latency, args.concurrency, args.workers) for n in counts]
    out("\n" + day_tables(simulated, args.latency, args.concurrency))
    out(f"\nLoad average {'/'.join(f'{value:.1f}' for value in os.getloadavg())} at the end.\n")


if __name__ == "__main__":
    main()
