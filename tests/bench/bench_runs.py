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
   after each day, is the least any run must do to the package: the vault's own `open_bytes` of the resident's
   current file under its current epoch key, then `seal_bytes` of that plaintext to a scratch file beside it.
   `--profile` prints where the event loop's time goes in one more run of each size.
2. **A simulated day**: N small residents, `run_concurrency` 32, a provider that sleeps 1 s per call; one
   `scheduler.tick()` runs everyone. Ideal = observed calls x 1 s / 32. Each N runs in a fresh child process,
   which reports the tick's peak RSS growth (VmHWM after resetting it, minus VmRSS before), the event loop's lag
   and how long `asyncio.to_thread` work waited for a worker of the default executor.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftm.config.loading import load_settings
from ftm.config.settings import Settings
from ftm.federation.clock import FakeClock, utc_day
from ftm.node.app import Node, open_node
from ftm.node.datadir import DataDir
from ftm.node.intake.importing import Upload
from ftm.node.intake.service import OPERATOR, IntakeRequest
from ftm.node.packages import MAX_PACKAGE_BYTES
from ftm.node.persona import PersonaPackage
from ftm.node.providers.base import ChatRequest, ChatResponse, ToolCall, Usage
from ftm.node.vault import open_bytes, seal_bytes

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


def bench_settings(extra: dict[str, str] | None = None) -> Settings:
    env = {
        "FTM_PROVIDERS_DEFAULT_PROVIDER": "bench",
        "FTM_PROVIDERS_DEFAULT_MODEL": "scripted",
        "FTM_RUNS_SCHEDULER": "false",
        "FTM_ADMIN_PORT": "0",
        "FTM_INTAKE_DAILY_QUOTA_PER_UPLOADER": "0",
        # Room for a 100 MB persona; the defaults stop at 32 MiB and 200,000 messages.
        "FTM_INTAKE_MAX_UPLOAD_BYTES": str(256 * MIB),
        "FTM_INTAKE_MAX_MESSAGES": "2000000",
        **(extra or {}),
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


# --- 1. node overhead per run ------------------------------------------------------------------------------------


@dataclass
class SizeFigures:
    upload_bytes: int
    vault_bytes: int
    admit_s: float
    run_s: list[float] = field(default_factory=list)
    open_s: list[float] = field(default_factory=list)
    seal_s: list[float] = field(default_factory=list)
    decode_s: float = 0.0
    encode_s: float = 0.0
    profile: str = ""


async def baseline(node: Node, resident_id: str, scratch: Path) -> tuple[float, float, int]:
    """Seconds of `open_bytes` on the resident's current file and `seal_bytes` of its plaintext, and its size."""
    resident = await node.residents.get(resident_id)
    assert resident is not None
    record = await node.residents.key_record(resident_id, resident.key_epoch)
    assert record is not None
    key = await node.custody.open_epoch_key(resident_id, resident.key_epoch, record)
    path = node.vault.path_for(resident_id, resident.key_epoch)
    started = time.perf_counter()
    plaintext = await open_bytes(path, resident_id, resident.key_epoch, key, max_bytes=MAX_PACKAGE_BYTES)
    opened = time.perf_counter()
    await seal_bytes(scratch, resident_id, resident.key_epoch, key, plaintext)
    sealed = time.perf_counter()
    scratch.unlink()
    return opened - started, sealed - opened, len(plaintext)


async def measure_size(base: Path, size: int, days: int, profile: bool) -> SizeFigures:
    with tempfile.TemporaryDirectory(dir=base, prefix="ftm-bench-runs-") as tmp:
        clock, provider = FakeClock(), ScriptedProvider()
        async with open_node(
            DataDir(Path(tmp) / "node"), bench_settings(), env={}, clock=clock, providers={"bench": provider}
        ) as node:
            upload = make_persona(size)
            started = time.perf_counter()
            receipt = await node.intake.admit(Upload(upload), IntakeRequest(), OPERATOR)
            figures = SizeFigures(len(upload), 0, time.perf_counter() - started)
            del upload
            resident_id, scratch = receipt.sanctuary_id, Path(tmp) / "baseline.ftmv"
            for _ in range(days):
                clock.advance(DAY_SECONDS)
                started = time.perf_counter()
                outcome = await node.engine.run(resident_id, utc_day(clock.now()))
                figures.run_s.append(time.perf_counter() - started)
                if outcome.state != "completed" or outcome.steps != 3:
                    raise RuntimeError(f"unexpected run outcome {outcome}")
                open_s, seal_s, figures.vault_bytes = await baseline(node, resident_id, scratch)
                figures.open_s.append(open_s)
                figures.seal_s.append(seal_s)
            # The two pure-CPU steps of a run, timed on their own: strict decode and encode of the package.
            plain_package = await node.packages.open(resident_id)
            plaintext = plain_package.encode()
            started = time.perf_counter()
            PersonaPackage.decode(plaintext, max_bytes=MAX_PACKAGE_BYTES)
            figures.decode_s = time.perf_counter() - started
            started = time.perf_counter()
            plain_package.encode()
            figures.encode_s = time.perf_counter() - started
            del plain_package, plaintext
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


def overhead_tables(results: dict[int, SizeFigures], days: dict[int, int]) -> str:
    lines = [
        "| persona | upload | package | days | node run ms | baseline ms (open + seal) | run / baseline "
        "| decode ms | encode ms | rest ms | admit ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, figures in results.items():
        run = statistics.median(figures.run_s) * 1000
        opened, sealed = statistics.median(figures.open_s) * 1000, statistics.median(figures.seal_s) * 1000
        base = opened + sealed
        rest = run - base - (figures.decode_s + figures.encode_s) * 1000
        cells = [
            size_label(size),
            f"{figures.upload_bytes / MIB:.2f} MiB",
            f"{figures.vault_bytes / MIB:.2f} MiB",
            str(days[size]),
            f"{run:.1f}",
            f"{base:.1f} ({opened:.1f} + {sealed:.1f})",
            f"{run / base:.1f}",
            f"{figures.decode_s * 1000:.1f}",
            f"{figures.encode_s * 1000:.1f}",
            f"{rest:.1f}",
            f"{figures.admit_s * 1000:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --- 2. a simulated day ------------------------------------------------------------------------------------------


class WaitingExecutor(ThreadPoolExecutor):
    """The default executor, recording how long each job waited for a free worker."""

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__(max_workers=max_workers)
        self.waits: list[float] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        queued = time.perf_counter()

        def timed() -> Any:
            self.waits.append(time.perf_counter() - queued)
            return fn(*args, **kwargs)

        return super().submit(timed)


async def watch_loop(stop: asyncio.Event, lags: list[float], interval: float = 0.01) -> None:
    """Sample how late the event loop wakes a sleeper (lag = how busy the loop is), until `stop` or a bound."""
    for _ in range(int(MAX_TICK_SECONDS / interval)):
        if stop.is_set():
            return
        started = time.perf_counter()
        await asyncio.sleep(interval)
        lags.append(time.perf_counter() - started - interval)


def _status_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field_name} in /proc/self/status")


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


async def simulate_day(base: Path, residents: int, latency: float, concurrency: int, workers: int | None) -> dict[str, Any]:
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
            executor.waits.clear()
            lags: list[float] = []
            stop = asyncio.Event()
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            rss_before = _status_kib("VmRSS")
            watcher = asyncio.create_task(watch_loop(stop, lags))
            started = time.perf_counter()
            outcomes = await asyncio.wait_for(node.scheduler.tick(), MAX_TICK_SECONDS)
            wall = time.perf_counter() - started
            stop.set()
            await watcher
            peak = _status_kib("VmHWM")
    states = Counter(outcome.state for outcome in outcomes)
    ideal = provider.calls * latency / concurrency
    return {
        "residents": residents,
        "runs": len(outcomes),
        "states": dict(states),
        "calls": provider.calls,
        "wall_s": wall,
        "ideal_s": ideal,
        "admit_ms": admit_s / residents * 1000,
        # Mean provider calls in flight; with every slot busy in a call it would equal `concurrency`.
        "in_flight": provider.call_seconds / wall,
        # Time a run held its slot outside provider calls (claim, open, tools, commit), per run.
        "slot_outside_calls_ms": (concurrency * wall - provider.call_seconds) / max(1, len(outcomes)) * 1000,
        "rss_before_mib": rss_before / KIB,
        "growth_mib": (peak - rss_before) / KIB,
        "db_mib": db_bytes / MIB,
        "lag_p99_ms": percentile(lags, 0.99) * 1000,
        "lag_max_ms": max(lags, default=0.0) * 1000,
        "lag_total_s": sum(lags),
        "jobs": len(executor.waits),
        "wait_p99_ms": percentile(executor.waits, 0.99) * 1000,
        "wait_max_ms": max(executor.waits, default=0.0) * 1000,
        "workers": executor._max_workers,
    }


def day_in_child(base: Path, residents: int, latency: float, concurrency: int, workers: int | None) -> dict[str, Any]:
    command = [sys.executable, "-m", "tests.bench.bench_runs", "--data-dir", str(base), "--child-day"]
    command += [str(residents), str(latency), str(concurrency), str(workers or 0)]
    result = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True, timeout=1800)
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def day_tables(days: list[dict[str, Any]], latency: float, concurrency: int) -> str:
    lines = [
        f"| residents | runs completed | provider calls | wall s | ideal s (calls x {latency:g} s / {concurrency}) "
        "| wall / ideal | calls in flight | slot time outside calls ms/run | loop lag p99 / max ms "
        "| executor wait p99 / max ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for day in days:
        cells = [
            f"{day['residents']:,}",
            f"{day['states'].get('completed', 0):,}",
            f"{day['calls']:,}",
            f"{day['wall_s']:.1f}",
            f"{day['ideal_s']:.1f}",
            f"{day['wall_s'] / day['ideal_s']:.3f}",
            f"{day['in_flight']:.1f}",
            f"{day['slot_outside_calls_ms']:.0f}",
            f"{day['lag_p99_ms']:.1f} / {day['lag_max_ms']:.1f}",
            f"{day['wait_p99_ms']:.1f} / {day['wait_max_ms']:.1f} ({day['jobs']:,} jobs, {day['workers']} workers)",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| residents | database MiB | RSS before the tick MiB | peak RSS growth in the tick MiB | KiB per resident |",
        "|---|---|---|---|---|",
    ]
    for day in days:
        per = day["growth_mib"] * KIB / day["residents"]
        lines.append(
            f"| {day['residents']:,} | {day['db_mib']:.1f} | {day['rss_before_mib']:.1f} | {day['growth_mib']:.1f} "
            f"| {per:.1f} |"
        )
    return "\n".join(lines) + "\n"


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
        figures = asyncio.run(
            simulate_day(args.data_dir, int(residents), float(latency), int(concurrency), int(workers) or None)
        )
        sys.stdout.write(json.dumps(figures) + "\n")
        return

    out = sys.stdout.write
    out(f"Run benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, data in {args.data_dir}\n\n")
    days = {10 * 1000: 21, MIB: 11} | ({} if args.quick else {100 * MIB: 5})
    results: dict[int, SizeFigures] = {}
    for size, count in days.items():
        results[size] = asyncio.run(measure_size(args.data_dir, size, count, args.profile))
    out(overhead_tables(results, days))
    for size, figures in results.items():
        if figures.profile:
            out(f"\nProfile of one run, {size_label(size)} persona (event-loop thread only):\n\n```\n")
            out(figures.profile.strip() + "\n```\n")
    sys.stdout.flush()

    counts = (64, 128, 256) if args.quick else (250, 500, 1000)
    simulated = []
    for residents in counts:
        simulated.append(day_in_child(args.data_dir, residents, args.latency, args.concurrency, args.workers))
    out("\n" + day_tables(simulated, args.latency, args.concurrency))


if __name__ == "__main__":
    main()
