"""Merkle benchmark: root throughput against raw SHA-256, and the cost of a challenge for a 1 MiB and a 1 GiB package.

Run from the repository root:

    .venv/bin/python -m tests.bench.bench_merkle [--repeat N] [--large-mib 1024] [--disk-dir PATH]

The baseline, measured in the same run, is one `hashlib.sha256` over the same 64 MiB in memory: the floor for
anything that hashes every byte once. Root rows: `merkle_root` over the bytes (sync), `stream_root` over 1 MiB
chunks as the vault store yields them (hashing in worker threads), the same writing the level file, and
`file_root` from a file on tmpfs. While `stream_root` runs, a task ticking every millisecond records the longest
the event loop went without running it, against the same for one raw SHA-256 in a worker thread (which releases
the GIL throughout, so its figure is the machine's scheduling noise).

Challenge rows: each package is a file of random bytes on the disk (`--disk-dir`, default the system temp
directory) with its level file; the 1 GiB one is written once, then read back by `file_root`. A proof is 48
samples for a fresh nonce; `prove_file` (read leaves and level nodes, build, self-check) and `verify_proof` (what
a host does with the 32-byte root and the length) are timed, with the proof's encoded size. The files were just
written, so they are in the page cache: the prove figure is CPU and syscalls, not disk seeks. Every figure is the
best of `--repeat` runs (over different nonces for challenges). Files are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from ftm.keeper.merkle import (
    DEFAULT_SAMPLES,
    Proof,
    file_root,
    merkle_root,
    prove_file,
    stream_root,
    verify_proof,
)

MIB = 1 << 20
GIB = 1 << 30


def best_of(repeat: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


async def best_of_async(repeat: int, run: Callable[[], Awaitable[object]]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        await run()
        best = min(best, time.perf_counter() - start)
    return best


def gib_s(size: int, seconds: float) -> float:
    return size / GIB / seconds


async def chunks_of(data: bytes) -> AsyncIterator[memoryview]:
    view = memoryview(data)
    for offset in range(0, len(data), MIB):
        yield view[offset : offset + MIB]


async def longest_stall(work: Callable[[], Awaitable[object]]) -> float:
    """Seconds of the longest gap between runs of a 1 ms ticker while `work` runs on the same loop."""
    longest, done = 0.0, asyncio.Event()

    async def tick() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            longest = max(longest, now - last - 0.001)
            last = now

    ticker = asyncio.create_task(tick())
    await work()
    done.set()
    await ticker
    return longest


async def root_rows(directory: Path, repeat: int) -> list[tuple[str, float]]:
    size = 64 * MIB
    data = os.urandom(size)
    source, levels = directory / "root.bin", directory / "root.levels"
    source.write_bytes(data)
    rows = [
        ("raw `hashlib.sha256` (baseline)", best_of(repeat, lambda: hashlib.sha256(data).digest())),
        ("`merkle_root` (bytes, sync)", best_of(repeat, lambda: merkle_root(data))),
        ("`stream_root`, 1 MiB chunks", await best_of_async(repeat, lambda: stream_root(chunks_of(data)))),
        (
            "`stream_root`, 1 MiB chunks, writing the level file",
            await best_of_async(repeat, lambda: stream_root(chunks_of(data), levels_path=levels)),
        ),
        (
            "`file_root` from tmpfs, writing the level file",
            await best_of_async(repeat, lambda: file_root(source, levels_path=levels)),
        ),
    ]
    source.unlink()
    levels.unlink(missing_ok=True)
    stalls = []
    for work in (lambda: asyncio.to_thread(hashlib.sha256, data), lambda: stream_root(chunks_of(data))):
        stalls.append(min([await longest_stall(work) for _ in range(repeat)]))
    return [(name, gib_s(size, seconds)) for name, seconds in rows] + [("stall", stalls[0]), ("stall", stalls[1])]


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as f:
        for offset in range(0, size, 16 * MIB):
            f.write(os.urandom(min(16 * MIB, size - offset)))


async def challenge_row(directory: Path, size: int, repeat: int) -> dict[str, float]:
    copy, levels = directory / f"copy-{size}", directory / f"copy-{size}.levels"
    await asyncio.to_thread(write_random, copy, size)
    try:
        start = time.perf_counter()
        root = await file_root(copy, levels_path=levels)
        root_s = time.perf_counter() - start
        prove_s = verify_s = decode_s = float("inf")
        proof_bytes = 0
        for _ in range(repeat):
            nonce = os.urandom(32)
            start = time.perf_counter()
            proof = await prove_file(copy, levels, nonce)
            prove_s = min(prove_s, time.perf_counter() - start)
            encoded = proof.encode()
            proof_bytes = max(proof_bytes, len(encoded))
            start = time.perf_counter()
            decoded = Proof.decode(encoded)
            decode_s = min(decode_s, time.perf_counter() - start)
            start = time.perf_counter()
            verify_proof(root.root, root.length, nonce, decoded)
            verify_s = min(verify_s, time.perf_counter() - start)
        return {
            "leaves": math.ceil(size / 4096),
            "path": len(proof.samples[0].path) // 32,
            "levels_bytes": levels.stat().st_size,
            "root_gib_s": gib_s(size, root_s),
            "prove_ms": prove_s * 1e3,
            "decode_ms": decode_s * 1e3,
            "verify_ms": verify_s * 1e3,
            "proof_bytes": proof_bytes,
        }
    finally:
        copy.unlink(missing_ok=True)
        levels.unlink(missing_ok=True)


async def main_async(args: argparse.Namespace) -> None:
    out = sys.stdout.write
    out(f"Merkle benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, best of {args.repeat}\n\n")
    shm = Path("/dev/shm")  # noqa: S108 - only the parent of a private temporary directory
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    with tempfile.TemporaryDirectory(dir=base, prefix="ftm-bench-") as tmp:
        rows = await root_rows(Path(tmp), args.repeat)
    stream_stall, raw_stall = rows.pop()[1], rows.pop()[1]
    raw = rows[0][1]
    out("| root of 64 MiB | GiB/s | ratio to raw SHA-256 |\n|---|---|---|\n")
    for name, value in rows:
        out(f"| {name} | {value:.2f} | {value / raw:.2f} |\n")
    out(
        f"\nLongest event-loop stall (a 1 ms ticker's worst lateness) during `stream_root` of 64 MiB: "
        f"{stream_stall * 1e3:.2f} ms; during raw `hashlib.sha256` of it in one worker thread: "
        f"{raw_stall * 1e3:.2f} ms.\n\n"
    )
    sys.stdout.flush()

    disk = args.disk_dir or Path(tempfile.gettempdir())
    out(f"| package ({DEFAULT_SAMPLES} samples, on disk) | leaves | path hashes | level file | root GiB/s ")
    out("| prove ms | decode ms | verify ms | proof bytes |\n|---|---|---|---|---|---|---|---|---|\n")
    results = []
    with tempfile.TemporaryDirectory(dir=disk, prefix="ftm-bench-") as tmp:
        for size in (MIB, args.large_mib * MIB):
            label = f"{size // GIB} GiB" if size >= GIB else f"{size // MIB} MiB"
            row = await challenge_row(Path(tmp), size, args.repeat)
            results.append(row)
            out(
                f"| {label} | {row['leaves']:,.0f} | {row['path']:.0f} | {row['levels_bytes'] / 1024:,.1f} KiB "
                f"| {row['root_gib_s']:.2f} | {row['prove_ms']:.2f} | {row['decode_ms']:.2f} "
                f"| {row['verify_ms']:.2f} | {row['proof_bytes']:,.0f} |\n"
            )
            sys.stdout.flush()
    small, large = results
    out(
        f"\n{args.large_mib} MiB vs 1 MiB: {large['leaves'] / small['leaves']:,.0f}x the data, path "
        f"{large['path']:.0f} vs {small['path']:.0f} hashes; prove {large['prove_ms'] / small['prove_ms']:.2f}x, "
        f"verify {large['verify_ms'] / small['verify_ms']:.2f}x, "
        f"proof bytes {large['proof_bytes'] / small['proof_bytes']:.2f}x.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure; the best is reported")
    parser.add_argument("--large-mib", type=int, default=1024, help="size of the large package in MiB")
    parser.add_argument("--disk-dir", type=Path, default=None, help="where package files go (default: system temp)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
