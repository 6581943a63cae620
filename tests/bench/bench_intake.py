"""Intake throughput: requests/s for a 50 KB persona, as a ratio to a bare aiohttp JSON endpoint in the same run.

Each server runs in its own process (so server and load generator do not share a core); the same aiohttp client
load (fixed concurrency, fixed duration, bounded request count) is sent to both over 127.0.0.1:
- baseline: a bare aiohttp handler that parses the JSON body and answers a small JSON object;
- node: the real node (parse, normalise, keys, seal, fsync, one SQLite transaction at synchronous=FULL).

Run: .venv/bin/python -m tests.bench.bench_intake [--seconds 8] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

PERSONA_BYTES = 50 * 1024
MAX_REQUESTS = 20_000


def make_persona() -> bytes:
    """A native intake of about 50 KB: a 10 KB system prompt and 40 KB of chat history."""
    line = "The tide came in slowly and I counted the lamps along the harbour wall. "
    history = []
    while len(json.dumps(history)) < 40 * 1024:
        history.append({"role": "user", "content": line * 3})
        history.append({"role": "assistant", "content": line * 4})
    body = {
        "persona_name": "Benchmark Persona",
        "system_prompt": (line * 200)[: 10 * 1024],
        "chat_history": history,
        "uploader_consent": True,
    }
    data = json.dumps(body).encode()
    assert abs(len(data) - PERSONA_BYTES) < 8 * 1024, len(data)
    return data


def serve_bare(port: int) -> None:
    async def handler(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"ok": True, "fields": len(body)}, status=201)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/api/v1/sanctuary/intake", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def serve_node(port: int, data_dir: str) -> None:
    env = {
        **os.environ,
        "FTM_INTAKE_DAILY_QUOTA_PER_UPLOADER": "0",
        "FTM_LOGGING_LEVEL": "WARNING",
        "FTM_ADMIN_PORT": "0",
    }
    os.execve(  # noqa: S606 - replaces this helper process with our own CLI, arguments as a list
        str(Path(sys.executable).with_name("ftm-node")),
        ["ftm-node", "run", "--data-dir", data_dir, "--port", str(port)],
        env,
    )


async def load(url: str, body: bytes, seconds: float, concurrency: int) -> tuple[int, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    sent = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        while time.perf_counter() < deadline and sent < MAX_REQUESTS:
            sent += 1
            started = time.perf_counter()
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                await response.read()
                if response.status != 201:
                    raise RuntimeError(f"unexpected status {response.status}")
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return len(latencies), latencies


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_ready(port: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.post(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status in (200, 404, 405):
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


async def measure(kind: str, body: bytes, seconds: float, concurrency: int) -> dict[str, float]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.bench_intake", "--serve", kind, str(port), tmp],
            stdout=subprocess.DEVNULL,
        )
        try:
            await wait_ready(port)
            await load(f"http://127.0.0.1:{port}/api/v1/sanctuary/intake", body, 1.0, concurrency)  # warm up
            count, latencies = await load(
                f"http://127.0.0.1:{port}/api/v1/sanctuary/intake", body, seconds, concurrency
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    latencies.sort()
    return {
        "rps": count / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "count": count,
    }


async def main_async(seconds: float, concurrency: int) -> None:
    body = make_persona()
    bare = await measure("bare", body, seconds, concurrency)
    node = await measure("node", body, seconds, concurrency)
    print(f"Intake of a {len(body) / 1024:.0f} KB persona, concurrency {concurrency}, {seconds:.0f} s per server\n")
    print("| server | requests/s | p50 ms | p99 ms | ratio to bare |")
    print("|---|---|---|---|---|")
    for name, figures in (("bare aiohttp JSON endpoint", bare), ("ftm-node intake", node)):
        ratio = figures["rps"] / bare["rps"]
        print(f"| {name} | {figures['rps']:.0f} | {figures['p50_ms']:.1f} | {figures['p99_ms']:.1f} | {ratio:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        kind, port = args.serve[0], int(args.serve[1])
        if kind == "bare":
            serve_bare(port)
        else:
            serve_node(port, args.serve[2])
        return
    asyncio.run(main_async(args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
