"""Restore benchmark: a resident of `--size-mib` (default 1024) restored from five keepers on loopback (3-of-5),
against copying the same bytes over loopback HTTP from a bare aiohttp server, in the same run.

Run from the repository root:

    .venv/bin/python -m tests.bench.bench_restore [--size-mib 1024] [--dir PATH]

Set-up (not timed): a persona package of about the size asked for (its archival store, 1 MiB entries of random
text) is sealed as epoch 7 of a resident under a key derived from a fresh 3-of-5 dealing, as a threshold host
seals it. Five keeper daemons (`ftm.keeper`, each its own data directory and SQLite, serving on 127.0.0.1) take a
deposit each through the keeper protocol, and seal and commit it; their replicas are hard links to the one
sealed file (a benchmark's economy: each keeper still computes its own root and level file over it), so the disk
holds the package once, not six times. The host is a key that never runs a node: the restore asks for the
shares as that host (`--old-node-key`, purpose run, inside an always-open window).

Timed: what `ftm-node restore run` does once keepers are known, on a fresh node in local custody: holdings from
all five, three shares released and verified, the replica streamed 1 MiB a read (4 in flight) into a file with its
Merkle root computed on the way, the key checked and the package opened and decoded in memory, re-sealed as epoch
8 under the node's master key, and the install transaction. The baseline is a GET of the sealed file from a bare
aiohttp handler (`web.FileResponse`), read 1 MiB at a time and written to a file: the same bytes over the same
loopback, written to the same disk. The restore's phases are reported from its progress steps.

Disk use: the sealed package, the restore's download and its re-sealed copy, and the baseline's copy: about four
times the size. The benchmark checks free space first and says which `--size-mib` fits.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from ftm.config.keepersettings import load_keeper_settings
from ftm.config.loading import load_settings
from ftm.federation.clock import SystemClock
from ftm.federation.identity import SigningKey, derive_id
from ftm.keeper import merkle, shares
from ftm.keeper.daemon import Keeper, KeeperDir, open_keeper
from ftm.keeper.protocol import PROTOCOL_VERSION, Commit, Deposit, Purpose, RunWindow, Seal
from ftm.keeper.server import create_keeper_app
from ftm.keeper.shareboxes import seal_share_to_keeper
from ftm.node.app import open_node
from ftm.node.datadir import DataDir
from ftm.node.keeperclient import KeeperAddress, KeeperClient
from ftm.node.persona import PACKAGE_VERSION, ArchivalEntry, PersonaPackage, Provenance
from ftm.node.personaparts import package_sections
from ftm.node.restore import Step, create_restorer
from ftm.node.restorefetch import Grant, survey
from ftm.node.vaultseal import seal_sync
from tests.integration.test_cli import free_port

MIB = 1 << 20
EPOCH = 7
KEEPERS, THRESHOLD = 5, 3
DISK_FACTOR = 4.2  # sealed package, download, re-sealed copy, baseline copy, and level files


def make_package(size: int) -> tuple[PersonaPackage, SigningKey]:
    key = SigningKey.generate()
    rid = derive_id("resident", key.public_key)
    entry_bytes = MIB
    text = base64.b64encode(os.urandom(entry_bytes * 3 // 4)).decode("ascii")  # 1 MiB of text, reused
    entries = tuple(ArchivalEntry(f"{index:08d}{text[8:]}", None, ()) for index in range(max(1, size // entry_bytes)))
    provenance = Provenance("native", "bench", 1_800_000_000, "human")
    package = PersonaPackage(
        PACKAGE_VERSION, rid, "Bench", "You are a benchmark.", key.seed, os.urandom(32), provenance, archival=entries
    )
    return package, key


def seal_package(path: Path, package: PersonaPackage, key: bytes) -> None:
    """As a node seals it: the packed vault format, cut into the package's sections (docs/vault.md §5)."""
    seal_sync(path, package.resident_id, EPOCH, key, package_sections(package))


@contextlib.asynccontextmanager
async def keepers_running(root: Path, clock: SystemClock) -> AsyncIterator[list[tuple[Keeper, KeeperAddress]]]:
    async with contextlib.AsyncExitStack() as stack:
        running = []
        for index in range(KEEPERS):
            data_dir = KeeperDir(root / f"keeper-{index}")
            data_dir.initialise()
            keeper = await stack.enter_async_context(open_keeper(data_dir, load_keeper_settings(None, {}), clock))
            runner = web.AppRunner(create_keeper_app(keeper.service, clock), access_log=None)
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            stack.push_async_callback(runner.cleanup)
            running.append((keeper, KeeperAddress(keeper.key.public_key, f"http://127.0.0.1:{port}")))
        yield running


async def deposit_everywhere(
    keepers: list[tuple[Keeper, KeeperAddress]], host: SigningKey, sealed: Path, package: PersonaPackage
) -> None:
    """What a threshold host's custody worker does for an epoch, with the replica hard-linked instead of sent."""
    rid = package.resident_id
    dealing = shares.deal(THRESHOLD, KEEPERS)
    key = shares.derive_epoch_key(dealing.secret, context=shares.epoch_context(rid, EPOCH))
    await asyncio.to_thread(seal_package, sealed, package, key)
    tree = await merkle.file_root(sealed)
    client = KeeperClient(host, SystemClock(), timeout=600)
    try:
        for (keeper, address), share in zip(keepers, dealing.shares, strict=True):
            await keeper.add_host(host.public_key, "http://127.0.0.1:9", "bench", via="bench")
            deposit = Deposit(
                PROTOCOL_VERSION, rid, SigningKey(package.signing_seed).public_key, EPOCH, THRESHOLD, share.x,
                dealing.commitments.encode(), seal_share_to_keeper(address.key, rid, EPOCH, share),
                RunWindow(0, 86_400), (), 0, tree.length, tree.root,
            )  # fmt: skip
            await client.deposit(address, deposit)
            replica = keeper.service.replicas.path(host.public_key, rid, EPOCH)
            replica.unlink()
            os.link(sealed, replica)
        digest = dealing.commitments.digest()
        seal = Seal(PROTOCOL_VERSION, rid, EPOCH)
        sealing = [
            client.seal(address, seal, x=share.x, commitments_digest=digest, root=tree.root, length=tree.length)
            for (_, address), share in zip(keepers, dealing.shares, strict=True)
        ]
        await asyncio.gather(*sealing)  # each keeper computes its root and level file over its replica
        for _, address in keepers:
            await client.commit(address, Commit(PROTOCOL_VERSION, rid, EPOCH))
    finally:
        await client.close()


async def baseline(sealed: Path, dst: Path) -> float:
    """Seconds to GET `sealed` from a bare aiohttp server on loopback, written to `dst` 1 MiB at a time."""

    async def serve(request: web.Request) -> web.FileResponse:
        return web.FileResponse(sealed)

    app = web.Application()
    app.router.add_get("/file", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
            start = time.perf_counter()
            async with session.get(f"http://127.0.0.1:{port}/file") as response:
                with open(dst, "wb") as sink:
                    async for chunk in response.content.iter_chunked(MIB):
                        await asyncio.to_thread(sink.write, chunk)
            return time.perf_counter() - start
    finally:
        await runner.cleanup()
        dst.unlink(missing_ok=True)


async def restore_once(root: Path, keepers: list[KeeperAddress], host: SigningKey) -> tuple[float, dict[str, float]]:
    """Seconds for the whole restore, and when (seconds from its start) each phase ended."""
    settings = load_settings(None, {"FTM_ADMIN_PORT": "0", "FTM_RUNS_SCHEDULER": "false", "FTM_DISCOVERY_MDNS": "off"})
    marks: dict[str, float] = {}
    async with open_node(DataDir(root / "fresh"), settings, env={}) as node:
        client = KeeperClient(host, node.clock, timeout=600)
        start = time.perf_counter()

        def on_step(step: Step) -> None:
            marks[step.stage] = time.perf_counter() - start

        try:
            found = await survey(client, keepers, host.public_key)
            marks["survey"] = time.perf_counter() - start
            restorer = create_restorer(node)
            with restorer.exclusive():
                [outcome] = await restorer.restore(
                    found, Grant(client, Purpose.RUN.value, b""), host.public_key, on_step=on_step
                )
            elapsed = time.perf_counter() - start
        finally:
            await client.close()
        assert outcome.state == "restored", outcome
    return elapsed, marks


async def main(size: int, directory: Path) -> None:
    free = shutil.disk_usage(directory).free
    if free < DISK_FACTOR * size:
        fits = int(free / DISK_FACTOR / MIB) // 64 * 64
        sys.exit(f"{directory} has {free / MIB:.0f} MiB free; --size-mib {fits} fits (or choose --dir)")
    package, _ = make_package(size)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        root = Path(tmp)
        sealed = root / "sealed.ftmv"
        host = SigningKey.generate()
        clock = SystemClock()
        async with keepers_running(root, clock) as running:
            await deposit_everywhere(running, host, sealed, package)
            del package
            length = sealed.stat().st_size
            base = await baseline(sealed, root / "copy")
            elapsed, marks = await restore_once(root, [address for _, address in running], host)
        print(f"Restore of a {length / MIB:.0f} MiB sealed package from {KEEPERS} keepers ({THRESHOLD}-of-{KEEPERS}),")
        print("loopback, one process; fresh node in local custody.\n")
        print("| what | seconds | MiB/s | ratio to the bare HTTP copy |")
        print("|---|---|---|---|")
        print(f"| bare aiohttp GET of the file, written to disk | {base:.2f} | {length / MIB / base:.0f} | 1.00 |")
        print(f"| restore, whole | {elapsed:.2f} | {length / MIB / elapsed:.0f} | {elapsed / base:.2f} |")
        previous = 0.0
        for stage, label in (
            ("survey", "holdings from 5 keepers"),
            ("shares", "3 shares released and verified"),
            ("replica", "replica read and its root checked"),
            ("verified", "key check, package opened and decoded"),
            ("installed", "re-sealed as epoch 8, installed"),
        ):
            mark = marks.get(stage, previous)
            print(f"| … {label} | {mark - previous:.2f} | | |")
            previous = mark


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="package size in MiB (default 1024)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the files go")
    args = parser.parse_args()
    asyncio.run(main(args.size_mib * MIB, args.dir))
