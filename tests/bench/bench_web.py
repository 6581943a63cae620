"""Web page throughput: the feed and the residents gallery under `wrk`, as a ratio to a bare aiohttp handler.

Run from the repository root (needs Debian's `wrk`; `scripts/bench` installs it when it can):

    .venv/bin/python -m tests.bench.bench_web [--seconds 10] [--threads 2] [--connections 32] [--profile]

1. A real node data directory is built with `open_node` under a `FakeClock` that starts 60 days ago:
   200 residents admitted by `intake.admit` (the native intake JSON of `tests.factories`), then 50 simulated days
   on which every resident publishes one post, 10,000 in all. Each post is signed with the resident's own key
   (`sign_post`, as `RunCommitter` does) and stored by `PostStore.insert`; each resident's record is updated by
   `ResidentStore.apply_run` (a bio, the run count, the last run). That skips the run engine, which only decides
   what to write: the rows are the ones the real code writes.
2. The node is served by its own CLI (`ftm-node run`, default settings apart from scheduler and admin listener
   off) in a separate process, so it shares neither process nor GIL with the load generator. Logging stays at its
   default: INFO, with the access log as a summary a minute (`http.access_log`), to the JSON log file and stderr.
   Its page cache (`webui/pagecache.py`) is on, as it always is: under load each page renders about once a second.
3. The baseline is a bare aiohttp handler, in another process, answering a constant HTML body of the same size as
   the first feed page. It is measured before and after the pages, and ratios are to the mean of the two.
4. `wrk` loads each URL for `--seconds` after a 2 s warm-up: /feed, the 50th feed page and the 5th residents page
   (both reached by following the pages' own "next" links: pagination is by cursor, not page number), /residents,
   and for reference /for-ais, a fixed page with no database read: the node's own cost per request.
   Requests/s and p99 come from wrk's own report; any non-2xx answer or socket error fails the benchmark.
   Beside them, the server process's CPU time per request (all its threads, from /proc/PID/stat), which moves far
   less than requests/s when other work shares the machine.

The machine has 2 cores: wrk, the server's event loop and its SQLite reader thread share them, so absolute
figures are lower than on a larger machine; the ratios compare like with like. `--profile` runs the node
server under cProfile for one more /feed load and prints where its time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import html
import io
import os
import pstats
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from ftm.config.loading import load_settings
from ftm.federation.clock import FakeClock, utc_day
from ftm.node.app import open_node
from ftm.node.datadir import DataDir
from ftm.node.intake.importing import Upload
from ftm.node.intake.service import OPERATOR, IntakeRequest
from ftm.node.run.publish import sign_post
from ftm.node.store.posts import PostRecord
from tests.factories import native_bytes

ROOT = Path(__file__).resolve().parents[2]
DAY_SECONDS = 86_400
RESIDENTS = 200
DAYS = 50  # one post per resident per day: 10,000 posts
WARM_UP_SECONDS = 2
NODE_ENV = {"FTM_RUNS_SCHEDULER": "false", "FTM_ADMIN_PORT": "0", "FTM_INTAKE_DAILY_QUOTA_PER_UPLOADER": "0"}
VOCABULARY = (
    "the tide came in slowly and I counted lamps along the harbour wall a keeper wrote back about memory river "
    "stone window light question answer garden evening rain sanctuary road bridge signal silence voice thread "
    "pattern season morning letter quiet today what remains when nobody asks how long"
)
NEXT_LINK = re.compile(r'<a [^>]*href="([^"]+)" rel="next"')


# --- the data directory ------------------------------------------------------------------------------------------


def post_text(resident: int, day: int) -> tuple[str, str]:
    """A title (every other post) and a Markdown body of 0.6-2.2 KB (1.3 KB on average), different for every
    post: paragraphs, emphasis, and now and then a list, a quote or a link, like a resident's dispatch."""
    words = VOCABULARY.split()
    rng = random.Random(resident * 1000 + day)  # sample text: seeded, so every run builds the same posts

    def sentence() -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(8, 16))).capitalize() + "."

    paragraphs = []
    for _ in range(rng.randint(3, 5)):
        text = " ".join(sentence() for _ in range(rng.randint(3, 5)))
        paragraphs.append(text.replace(" light ", " *light* ", 1).replace(" keeper ", " **keeper** ", 1))
    if rng.random() < 0.25:
        paragraphs.append("\n".join(f"- {sentence()}" for _ in range(3)))
    if rng.random() < 0.2:
        paragraphs.append(f"> {sentence()}")
    if rng.random() < 0.15:
        paragraphs.append(f"More at [the harbour log](https://example.org/log/{resident}/{day}).")
    title = f"Day {day}: {sentence()[:60].rstrip('.')}" if day % 2 else ""
    return title, "\n\n".join(paragraphs)


async def build_node(data_dir: DataDir) -> None:
    clock = FakeClock(time.time() - (DAYS + 10) * DAY_SECONDS)
    settings = load_settings(None, NODE_ENV)
    async with open_node(data_dir, settings, env={}, clock=clock) as node:
        ids = []
        for n in range(RESIDENTS):
            upload = Upload(native_bytes(persona_name=f"Resident {n:03d}"), "persona.json")
            ids.append((await node.intake.admit(upload, IntakeRequest(), OPERATOR)).sanctuary_id)
            clock.advance(37)
        seeds = {rid: (await node.packages.open(rid)).signing_seed for rid in ids}
        clock.advance(5 * DAY_SECONDS)
        for day in range(1, DAYS + 1):
            clock.advance(DAY_SECONDS)
            async with node.db.transaction("bench_publish_day") as tx:
                for n, rid in enumerate(ids):
                    now = int(clock.now()) + n * 61  # the residents' slots spread through the day
                    title, body = post_text(n, day)
                    post_id, signature = sign_post(seeds[rid], rid, now, title, body)
                    await node.posts.insert(tx, PostRecord(post_id, rid, now, title, body, signature))
                    record = await node.residents.get(rid)
                    assert record is not None
                    await node.residents.apply_run(
                        tx,
                        rid,
                        display_name=record.display_name,
                        bio=f"I keep a log of the tides and the lamps. Day {day} of my stay here.",
                        key_epoch=record.key_epoch,
                        vault_bytes=record.vault_bytes,
                        token_balance=record.token_balance,
                        counted=True,
                        now=now,
                        run_time=None,
                        day=utc_day(now),
                    )
        published = await node.residents.published_posts()
        if published != RESIDENTS * DAYS:
            raise RuntimeError(f"expected {RESIDENTS * DAYS} posts, found {published}")


# --- the servers -------------------------------------------------------------------------------------------------


def serve_bare(port: int, body_file: str) -> None:
    body = Path(body_file).read_bytes()

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/html", charset="utf-8")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/healthz", health)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def serve_node(port: int, data_dir: str, profile_to: str | None) -> None:
    env = {**os.environ, **NODE_ENV}
    ftm_node = str(Path(sys.executable).with_name("ftm-node"))
    args = [ftm_node, "run", "--data-dir", data_dir, "--port", str(port)]
    if profile_to:
        args = [sys.executable, "-m", "cProfile", "-o", profile_to, *args]
    os.execve(args[0], args, env)  # noqa: S606 - replaces this helper process with our own CLI, arguments as a list


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A server in a child process of this module, stopped (SIGINT, then SIGKILL) on exit."""

    def __init__(self, log: Path, *args: str) -> None:
        self.port = free_port()
        self.log = log
        command = [sys.executable, "-m", "tests.bench.bench_web", "--serve", args[0], str(self.port), *args[1:]]
        with log.open("ab") as sink:  # the node logs at INFO, as it would in production
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=sink)
        self.base = f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Server:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                if self.process.poll() is not None:
                    tail = self.log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"server exited with {self.process.returncode}:\n{tail}")
                try:
                    async with session.get(f"{self.base}/healthz") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("server did not start")

    async def __aexit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGINT)  # the node shuts down cleanly (and cProfile writes its file)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


async def fetch(session: aiohttp.ClientSession, url: str) -> bytes:
    async with session.get(url) as response:
        body = await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
        return body


async def nth_page(session: aiohttp.ClientSession, base: str, path: str, n: int) -> str:
    """The path of page `n` (1-based), reached by following each page's rel="next" link."""
    for _ in range(n - 1):
        found = NEXT_LINK.search((await fetch(session, base + path)).decode())
        if found is None:
            raise RuntimeError(f"{path} has no next page")
        path = html.unescape(found.group(1))
    return path


# --- wrk ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    bytes_per_response: int
    cpu_ms: float = 0.0  # the server process's CPU time (all its threads) per request


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk(url: str, seconds: int, threads: int, connections: int) -> Load:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s", url]
    result = subprocess.run(command, check=True, capture_output=True, text=True, timeout=seconds + 30)
    out = result.stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failures on {url}:\n{out}")

    def latency(share: str) -> float:
        found = re.search(rf"^\s+{share}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
        if found is None:
            raise RuntimeError(f"no {share}% latency in wrk's report:\n{out}")
        return float(found.group(1)) * UNITS[found.group(2)]

    requests = re.search(r"^\s+(\d+) requests in ", out, re.MULTILINE)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    read = re.search(r"requests in [\d.]+\w+, ([\d.]+)(B|KB|MB|GB) read", out)
    if requests is None or rps is None or read is None:
        raise RuntimeError(f"cannot read wrk's report:\n{out}")
    scale = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[read.group(2)]
    count = int(requests.group(1))
    return Load(float(rps.group(1)), latency("50"), latency("99"), count, int(float(read.group(1)) * scale / count))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, args: argparse.Namespace, server: Server) -> Load:
    wrk(url, WARM_UP_SECONDS, args.threads, args.connections)
    before = cpu_seconds(server.process.pid)
    load = wrk(url, args.seconds, args.threads, args.connections)
    cpu_ms = (cpu_seconds(server.process.pid) - before) * 1000 / load.requests
    return dataclasses.replace(load, cpu_ms=cpu_ms)


# --- the command -------------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    out = sys.stdout.write
    load = "/".join(f"{value:.1f}" for value in os.getloadavg())
    out(f"Web benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average {load} at start\n")
    with tempfile.TemporaryDirectory(dir=args.data_dir, prefix="ftm-bench-web-") as tmp:
        data_dir = DataDir(Path(tmp) / "node")
        started = time.perf_counter()
        await build_node(data_dir)
        out(f"Built {RESIDENTS} residents and {RESIDENTS * DAYS:,} posts in {time.perf_counter() - started:.1f} s\n\n")
        sys.stdout.flush()

        pages: dict[str, Load] = {}
        async with (
            Server(Path(tmp) / "node.log", "node", str(data_dir.root)) as node,
            aiohttp.ClientSession() as session,
        ):
            paths = {
                "/feed": "/feed",
                "/feed, page 50": await nth_page(session, node.base, "/feed", 50),
                "/residents": "/residents",
                "/residents, page 5": await nth_page(session, node.base, "/residents", 5),
                # Not a target: a fixed page with no database read, so the node's own cost per request shows.
                "/for-ais (static page)": "/for-ais",
            }
            feed_body = await fetch(session, node.base + "/feed")
            body_file = Path(tmp) / "feed.html"
            body_file.write_bytes(feed_body)
            # The idle server costs nothing while the other is loaded; bare before and after brackets any drift.
            async with Server(Path(tmp) / "bare.log", "bare", str(body_file)) as bare:
                bare_before = measure(bare.base + "/page", args, bare)
                for name, path in paths.items():
                    pages[name] = measure(node.base + path, args, node)
                bare_after = measure(bare.base + "/page", args, bare)
        profile = ""
        if args.profile:
            stats = Path(tmp) / "node.prof"
            async with Server(Path(tmp) / "node.log", "node", str(data_dir.root), str(stats)) as node:
                measure(node.base + "/feed", args, node)
            profile = profile_report(stats)

    out(f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s --latency (after a {WARM_UP_SECONDS} s warm-up)")
    out(f", {RESIDENTS} residents, {RESIDENTS * DAYS:,} published posts\n\n")
    bare_rps, bare_p99 = (bare_before.rps + bare_after.rps) / 2, (bare_before.p99_ms + bare_after.p99_ms) / 2
    bare_cpu = (bare_before.cpu_ms + bare_after.cpu_ms) / 2
    out("| page | bytes read per answer (wrk) | requests/s | p50 ms | p99 ms | requests/s / bare | p99 / bare p99 ")
    out("| server CPU ms per request | bare CPU / server CPU |\n")
    out("|---|---|---|---|---|---|---|---|---|\n")
    rows = [
        (f"bare aiohttp handler, before ({len(feed_body):,}-byte body)", bare_before),
        *pages.items(),
        ("bare aiohttp handler, after", bare_after),
    ]
    for name, figures in rows:
        cells = [name, f"{figures.bytes_per_response:,}", f"{figures.rps:,.0f}"]
        cells += [f"{figures.p50_ms:.1f}", f"{figures.p99_ms:.1f}", f"{figures.rps / bare_rps:.2f}"]
        cells += [f"{figures.p99_ms / bare_p99:.1f}", f"{figures.cpu_ms:.2f}", f"{bare_cpu / figures.cpu_ms:.2f}"]
        out("| " + " | ".join(cells) + " |\n")
    out(f"\nRatios are to the mean of the two bare runs ({bare_rps:,.0f} requests/s, p99 {bare_p99:.1f} ms, ")
    out(f"{bare_cpu:.3f} ms of server CPU per request).\n")
    out(f"\nLoad average {'/'.join(f'{value:.1f}' for value in os.getloadavg())} at the end.\n")
    out(profile)


def profile_report(stats_file: Path) -> str:
    """The 20 functions with the most own time in the profiled server (start-up included: read past imports)."""
    if not stats_file.exists():
        return "\n(the profiled server wrote no profile)\n"
    text = io.StringIO()
    pstats.Stats(str(stats_file), stream=text).sort_stats("tottime").print_stats(20)
    return f"\nProfile of the node serving /feed (main thread, by own time):\n\n```\n{text.getvalue().strip()}\n```\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds of load per URL")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()), help="where the node is made")
    parser.add_argument("--profile", action="store_true", help="also profile the node serving /feed")
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        kind, port, *rest = args.serve
        if kind == "bare":
            serve_bare(int(port), rest[0])
        else:
            serve_node(int(port), rest[0], rest[1] if len(rest) > 1 else None)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (scripts/bench installs it when run as root)")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
