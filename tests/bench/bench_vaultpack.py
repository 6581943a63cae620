"""Packed vault (format version 2) benchmark: sealing a package from scratch against sealing its next epoch.

Run from the repository root:

    .venv/bin/python -m tests.bench.bench_vaultpack [--quick] [--repeat N] [--dir PATH]

The package is 256 MiB (`--quick`: 64 MiB) in three sections, like a persona: a 4 KB head, 2,000 archival entries
of about 2 KB, and conversations of about 128 KB (about 2,000 of them). The next epoch appends one 50 KB
conversation. It prints a markdown table (copied into docs/benchmarks.md): for each operation the bytes newly
encrypted, the bytes copied from the previous epoch's file, the wall time, and that time as a ratio to raw AES-GCM
(`encrypt_into` on 1 MiB chunks in memory) and to SHA-256 over the same bytes, both measured in the same run. Also
the byte prefix the two epoch files share. Files go to tmpfs (/dev/shm) when there is one, so the figures are the
vault's cost rather than the disk's; each seal includes its fsyncs. Every figure is the best of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ftm.node.vault import seal_bytes
from ftm.node.vaultpack import SealStats, open_sync, seal_sync

MIB = 1 << 20
KEY = bytes(range(32))
NEXT_KEY = bytes(range(1, 33))


def best_of(repeat: int, run: Callable[[], object]) -> tuple[float, object]:
    """Fastest wall time of `repeat` runs, in seconds, and the last run's result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def make_package(size: int) -> list[list[bytes]]:
    """Head, archival entries, then conversations until the package holds `size` bytes."""
    rng = random.Random(1)
    block = os.urandom(4 * MIB)  # parts are slices of random data: AES and SHA-256 do not care, setup stays fast

    def part(length: int) -> bytes:
        start = rng.randrange(0, len(block) - length)
        return rng.randbytes(32) + block[start : start + length - 32]  # distinct parts, distinct digests

    head = [part(4_000)]
    archival = [part(rng.randrange(1_000, 3_000)) for _ in range(2_000)]
    used = sum(map(len, head + archival))
    conversations = []
    while used < size:
        conversations.append(part(min(rng.randrange(64_000, 192_000), max(size - used, 64))))
        used += len(conversations[-1])
    return [head, archival, conversations]


def raw_aes(size: int, repeat: int) -> float:
    """Seconds for AES-256-GCM `encrypt_into` over `size` bytes in 1 MiB chunks, in memory."""
    aead, chunk, out = AESGCM(KEY), os.urandom(MIB), bytearray(MIB + 16)

    def run() -> None:
        for _ in range(size // MIB):
            aead.encrypt_into(bytes(12), chunk, None, out)

    return best_of(repeat, run)[0]


def raw_sha256(size: int, repeat: int) -> float:
    chunk = memoryview(os.urandom(MIB))

    def run() -> None:
        hasher = hashlib.sha256()
        for _ in range(size // MIB):
            hasher.update(chunk)

    return best_of(repeat, run)[0]


def common_prefix(a: Path, b: Path) -> int:
    one, two = a.read_bytes(), b.read_bytes()
    low, high = 0, min(len(one), len(two))
    while low < high:  # binary search on equal prefixes: the files are large
        middle = (low + high + 1) // 2
        if one[:middle] == two[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 64 MiB package instead of 256 MiB")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is reported")
    parser.add_argument("--dir", type=Path, default=None, help="where files go (default: /dev/shm, else temp)")
    args = parser.parse_args()
    size = (64 if args.quick else 256) * MIB
    shm = Path("/dev/shm")  # noqa: S108 - only the parent of a private mkdtemp directory
    base_dir = args.dir or (shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir()))
    sections = make_package(size)
    total = sum(len(part) for section in sections for part in section)
    grown = [sections[0], sections[1], [*sections[2], os.urandom(50_000)]]
    aes_s, sha_s = raw_aes(total, args.repeat), raw_sha256(total, args.repeat)
    out = sys.stdout.write
    out(f"Packed vault benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, best of {args.repeat}, ")
    out(f"files on {base_dir}\n\n")
    out(f"Package: {total / MIB:.1f} MiB, {len(sections[2])} conversations, {len(sections[1])} archival entries.\n")
    out(f"Raw AES-256-GCM over {total / MIB:.0f} MiB: {aes_s * 1000:.0f} ms; SHA-256: {sha_s * 1000:.0f} ms.\n\n")
    out("| operation | newly encrypted | copied from epoch e | wall time | / raw AES | / SHA-256 |\n")
    out("|---|---|---|---|---|---|\n")

    def row(name: str, encrypted: int, copied: int, seconds: float) -> None:
        out(f"| {name} | {encrypted / MIB:.2f} MiB | {copied / MIB:.2f} MiB | {seconds * 1000:.0f} ms ")
        out(f"| {seconds / aes_s:.1f} | {seconds / sha_s:.1f} |\n")
        sys.stdout.flush()

    with tempfile.TemporaryDirectory(dir=base_dir, prefix="ftm-bench-") as tmp:
        directory = Path(tmp)
        e1, e2, v1 = directory / "e1", directory / "e2", directory / "v1"
        seconds, stats = best_of(args.repeat, lambda: seal_sync(e1, "bench", 1, KEY, sections))
        assert isinstance(stats, SealStats)
        row("seal epoch e from scratch", stats.encrypted_bytes, stats.copied_bytes, seconds)
        open_s, opened = best_of(args.repeat, lambda: open_sync(e1, "bench", 1, KEY, 2 * total))
        base = opened.base  # type: ignore[attr-defined]
        row("open epoch e", 0, 0, open_s)
        seconds, stats = best_of(args.repeat, lambda: seal_sync(e2, "bench", 2, NEXT_KEY, grown, base=base))
        assert isinstance(stats, SealStats) and stats.base_used
        row(
            "seal epoch e+1 from e (one 50 KB conversation appended)",
            stats.encrypted_bytes,
            stats.copied_bytes,
            seconds,
        )
        reused, new_blobs, blobs = stats.reused_blobs, stats.new_blobs, stats.blobs
        prefix, e1_size, e2_size = common_prefix(e1, e2), e1.stat().st_size, e2.stat().st_size
        whole = b"".join(part for section in sections for part in section)
        seconds, _ = best_of(args.repeat, lambda: asyncio.run(seal_bytes(v1, "bench", 1, KEY, whole)))
        row("control: version-1 `seal_bytes` of the same bytes", len(whole), 0, seconds)
        shutil.rmtree(directory, ignore_errors=True)
    out(f"\nEpoch e+1: {blobs} blobs, {reused} reused, {new_blobs} new. Files: e {e1_size / MIB:.2f} MiB, ")
    out(f"e+1 {e2_size / MIB:.2f} MiB; common prefix {prefix / MIB:.2f} MiB ")
    out(f"({prefix / e2_size:.4f} of e+1): a keeper receives {(e2_size - prefix) / MIB:.2f} MiB.\n")


if __name__ == "__main__":
    main()
