"""Ciphertext roots and sampled proofs of possession (Sia-style), for keepers that replicate a resident's sealed
package. docs/custody.md ("Ciphertext roots and sampled proofs") is the specification.

The host commits to the exact bytes of a sealed file by a 32-byte root that also binds its length (`merkle_root`,
`stream_root`, `file_root`; the tree is in `ftm.keeper.merkletree`). To check that a keeper still holds them, the
host sends a fresh nonce; `challenge_indices` turns it into distinct random 4 KiB leaves, the keeper answers with
each leaf and its audit path (`prove_file`, `build_proof`), and `verify_proof` checks the answer with the root and
the length alone. A proof of s samples is about s · (4 KiB + 32 · log2 n) bytes and costs the verifier s leaf
hashes and s · log2 n node hashes: about a millisecond for 48 samples, so one may run on the event loop (a host
checking many at once hands them to a thread).
Sampling leaves 48 at a time catches a keeper that lost 10 % of the leaves with probability above 99 %
(`detection_probability`).

The prover keeps a level file next to its copy (written while the root is computed): the tree's levels from 4 up,
one hash per 64 KiB of ciphertext (about 1 MiB per GiB, half of it level 4). A sample reads its aligned group of
16 leaves (64 KiB) to rebuild the bottom of its path and 32-byte nodes from the level file for the rest, so the
cost of answering does not grow with the package beyond log n. A prover checks its own proof before sending it
and reports a damaged copy as `ProverError` naming the leaf, rather than sending an answer it knows is wrong.

Hashing large inputs runs in worker threads: `stream_root` hands the work over a batch of at least 1 MiB at a
time, `file_root` and `prove_file` hand over the whole operation.

Errors (see `ftm.keeper.merkletree`, re-exported here):

    ValueError
    ├── MerkleError           unusable tree material; the message names the leaf or field, never content
    │   ├── ProofFailed       a proof that does not prove possession; `.leaf` names the leaf, `.reason` says why
    │   ├── ProverError       a keeper's copy cannot answer; `.leaf` names a damaged leaf, if one
    │   └── LevelFileError    a level file that is malformed or does not match its root
    └── codec.DecodeError     bytes that are not a valid `Proof` (malformed, oversized, out of bounds)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from ftm.federation import codec
from ftm.keeper.merkletree import (
    DEFAULT_FROM_LEVEL,
    HASH_SIZE,
    LEAF_SIZE,
    MAX_LEAVES,
    MAX_PATH,
    Buffer,
    LevelFileError,
    MerkleError,
    ProofFailed,
    ProofFailure,
    ProverError,
    TreeBuilder,
    TreeLevels,
    bind_length,
    group_path,
    leaf_count,
    leaf_hash,
    leaf_size,
    root_from_path,
)

__all__ = [
    "DEFAULT_SAMPLES",
    "LEAF_SIZE",
    "FileLeaves",
    "LeafSource",
    "LevelFileError",
    "MerkleError",
    "MerkleRoot",
    "Proof",
    "ProofFailed",
    "ProofFailure",
    "ProofSample",
    "ProverError",
    "TreeLevels",
    "build_proof",
    "challenge_indices",
    "detection_probability",
    "file_root",
    "leaf_count",
    "max_proof_bytes",
    "merkle_root",
    "prove_file",
    "samples_needed",
    "stream_root",
    "verify_proof",
]

DEFAULT_SAMPLES = 48  # 1 - 0.9^48 > 0.99: a keeper missing 10 % of the leaves fails a challenge 99 % of the time
MAX_SAMPLES = 256
MIN_NONCE_BYTES = 16  # a challenge a keeper could guess is one it could answer from a partial copy
MAX_NONCE_BYTES = 64
PROOF_VERSION = 1
CHALLENGE_DOMAIN = b"ftm-merkle-challenge-v1\x00"
BATCH_BYTES = 1 << 20  # the least `stream_root` hashes per thread hand-off (but at the end)
# msgpack framing of one sample (map header, the three keys, index, two bin16 headers) and of the proof map.
MAX_SAMPLE_BYTES = LEAF_SIZE + MAX_PATH * HASH_SIZE + 32
_PROOF_FRAMING_BYTES = 32
MAX_PROOF_BYTES = MAX_SAMPLES * MAX_SAMPLE_BYTES + _PROOF_FRAMING_BYTES
_WORD = 1 << 64


@dataclass(frozen=True, slots=True)
class MerkleRoot:
    """What a host records for a sealed file, and all a verifier needs: the 32-byte root and the byte length."""

    root: bytes
    length: int


def merkle_root(data: Buffer) -> bytes:
    """The root of `data`, hashed here: async callers pass large buffers through `asyncio.to_thread`."""
    builder = TreeBuilder()
    builder.update(data)
    return builder.finish()


def _start(levels_path: Path | None, from_level: int) -> tuple[BinaryIO | None, TreeBuilder]:
    levels = None if levels_path is None else open(levels_path, "w+b")  # noqa: SIM115 - closed by the caller
    try:
        return levels, TreeBuilder(levels, from_level)
    except BaseException:
        if levels is not None:
            levels.close()
        raise


def _update(builder: TreeBuilder, *parts: Buffer) -> None:
    for data in parts:
        builder.update(data)


def _finish(builder: TreeBuilder, *tail: Buffer) -> MerkleRoot:
    _update(builder, *tail)
    return MerkleRoot(builder.finish(), builder.length)


async def stream_root(
    chunks: AsyncIterable[Buffer], *, levels_path: Path | None = None, from_level: int = DEFAULT_FROM_LEVEL
) -> MerkleRoot:
    """The root and length of a stream of chunks of any sizes (the vault store's are 1 MiB), with memory
    O(log n) plus one batch. With `levels_path`, also writes the prover's level file there (created or
    truncated, flushed but not fsynced: write it under a temporary name and make it durable with the copy).

    A chunk may be a view into a buffer the producer reuses: each is hashed or copied before the next is asked
    for. Small chunks are gathered into 1 MiB batches so a thread hand-off is never the larger cost. If the task
    is cancelled, the batch in its thread still finishes, against a level file that is then incomplete.
    """
    levels, builder = await asyncio.to_thread(_start, levels_path, from_level)
    try:
        pending = bytearray()
        async for chunk in chunks:
            view = memoryview(chunk).cast("B")
            if len(pending) + len(view) < BATCH_BYTES:
                pending += view
                continue
            await asyncio.to_thread(_update, builder, pending, view)
            pending = bytearray()
        return await asyncio.to_thread(_finish, builder, pending)
    finally:
        if levels is not None:
            await asyncio.to_thread(levels.close)


def _file_root_sync(path: Path, levels_path: Path | None, from_level: int) -> MerkleRoot:
    with open(path, "rb", buffering=0) as source:  # first: a missing file must not leave a level file behind
        levels, builder = _start(levels_path, from_level)
        with levels if levels is not None else contextlib.nullcontext():
            buffer = bytearray(BATCH_BYTES)
            view = memoryview(buffer)
            while size := source.readinto(buffer):
                builder.update(view[:size])
            return _finish(builder)


async def file_root(path: Path, *, levels_path: Path | None = None, from_level: int = DEFAULT_FROM_LEVEL) -> MerkleRoot:
    """The root and length of the file at `path`, read 1 MiB at a time in one worker thread; with `levels_path`,
    also writes the level file (to rebuild a damaged one, or for a copy that arrived without one)."""
    return await asyncio.to_thread(_file_root_sync, path, levels_path, from_level)


def _check_challenge(nonce: bytes, samples: int) -> None:
    if type(nonce) is not bytes or not MIN_NONCE_BYTES <= len(nonce) <= MAX_NONCE_BYTES:
        raise ValueError(f"a challenge nonce is {MIN_NONCE_BYTES} to {MAX_NONCE_BYTES} bytes")
    if type(samples) is not int or not 1 <= samples <= MAX_SAMPLES:
        raise ValueError(f"a challenge asks for 1 to {MAX_SAMPLES} samples")


def challenge_indices(nonce: bytes, leaf_count: int, samples: int = DEFAULT_SAMPLES) -> list[int]:
    """The leaves a challenge asks for, ascending: `samples` distinct indices below `leaf_count` (every leaf when
    there are no more than `samples`), drawn without replacement from a SHA-256 counter stream over the nonce.

    Each 8-byte big-endian word of SHA-256(domain ‖ u8(len(nonce)) ‖ nonce ‖ u64(counter)), counter = 0, 1, …,
    is a draw; words at or above the largest multiple of `leaf_count` below 2^64 are rejected (no modulo bias),
    the others give `word mod leaf_count`, repeats are skipped, and drawing stops at `samples` distinct indices.
    """
    _check_challenge(nonce, samples)
    if type(leaf_count) is not int or not 0 <= leaf_count <= MAX_LEAVES:
        raise ValueError("a leaf count is 0 to 2^52")
    if samples >= leaf_count:
        return list(range(leaf_count))
    limit = _WORD - _WORD % leaf_count
    prefix = CHALLENGE_DOMAIN + bytes((len(nonce),)) + nonce
    chosen: set[int] = set()
    counter = 0
    while True:  # ends: each draw is a new index with probability >= 1/2 * (1 - samples/leaf_count) > 0
        block = hashlib.sha256(prefix + counter.to_bytes(8, "big")).digest()
        counter += 1
        for offset in range(0, HASH_SIZE, 8):
            word = int.from_bytes(block[offset : offset + 8], "big")
            if word < limit:
                chosen.add(word % leaf_count)
                if len(chosen) == samples:
                    return sorted(chosen)


@dataclass(frozen=True, slots=True)
class ProofSample:
    """One challenged leaf: its bytes and its audit path (sibling hashes bottom up, 32 bytes each, joined)."""

    index: int
    leaf: bytes
    path: bytes

    def __post_init__(self) -> None:
        if type(self.index) is not int or not 0 <= self.index < MAX_LEAVES:
            raise MerkleError("a sample's index is 0 to 2^52 - 1")
        if type(self.leaf) is not bytes or not 1 <= len(self.leaf) <= LEAF_SIZE:
            raise MerkleError(f"sample for leaf {self.index}: a leaf is 1 to {LEAF_SIZE} bytes")
        if type(self.path) is not bytes or len(self.path) % HASH_SIZE or len(self.path) > MAX_PATH * HASH_SIZE:
            raise MerkleError(f"sample for leaf {self.index}: a path is at most {MAX_PATH} hashes of 32 bytes")


@dataclass(frozen=True, slots=True)
class Proof:
    """A keeper's answer to a challenge: one sample per challenged index, ascending, no index twice."""

    version: int
    samples: tuple[ProofSample, ...]

    def __post_init__(self) -> None:
        if type(self.version) is not int or self.version != PROOF_VERSION:
            raise MerkleError(f"proof version must be {PROOF_VERSION}")
        if type(self.samples) is not tuple or len(self.samples) > MAX_SAMPLES:
            raise MerkleError(f"a proof holds a tuple of at most {MAX_SAMPLES} samples")
        if any(type(sample) is not ProofSample for sample in self.samples):
            raise MerkleError("a proof's samples are ProofSample values")
        for before, after in zip(self.samples, self.samples[1:], strict=False):
            if before.index >= after.index:
                raise MerkleError(f"samples must be in ascending index order (leaf {after.index})")

    def encode(self) -> bytes:
        return codec.encode(self)

    @classmethod
    def decode(cls, data: bytes, *, max_bytes: int = MAX_PROOF_BYTES) -> Proof:
        """Strictly decode; a verifier passes `max_proof_bytes(samples)` for the challenge it sent."""
        return codec.decode(cls, data, max_bytes=max_bytes)


def max_proof_bytes(samples: int = DEFAULT_SAMPLES) -> int:
    """The largest encoding a valid answer to a challenge of `samples` samples can have."""
    return samples * MAX_SAMPLE_BYTES + _PROOF_FRAMING_BYTES


def verify_proof(root: bytes, length: int, nonce: bytes, proof: Proof, samples: int = DEFAULT_SAMPLES) -> None:
    """Check `proof` answers the challenge (`nonce`, `samples`) for the file of `root` and `length`; raises
    `ProofFailed` naming the first challenged leaf that is not proven. Needs nothing else from anyone."""
    if type(root) is not bytes or len(root) != HASH_SIZE:
        raise ValueError("a root is 32 bytes")
    count = leaf_count(length)
    expected = challenge_indices(nonce, count, samples)
    answered = proof.samples
    for position, index in enumerate(expected):
        if position >= len(answered):
            raise ProofFailed(index, ProofFailure.MISSING_SAMPLE, "the proof has no sample for it")
        sample = answered[position]
        if sample.index != index:
            raise ProofFailed(index, ProofFailure.WRONG_INDEX, f"the proof answers leaf {sample.index} instead")
        if len(sample.leaf) != leaf_size(index, length):
            message = f"the leaf has {len(sample.leaf)} bytes, not {leaf_size(index, length)}"
            raise ProofFailed(index, ProofFailure.WRONG_LEAF_SIZE, message)
        tree = root_from_path(index, count, leaf_hash(sample.leaf), sample.path)
        if tree is None:
            raise ProofFailed(index, ProofFailure.BAD_PATH, "the audit path has the wrong length for the tree")
        if bind_length(length, tree) != root:
            raise ProofFailed(index, ProofFailure.WRONG_ROOT, "the leaf and its audit path do not lead to the root")
    if len(answered) > len(expected):
        extra = answered[len(expected)].index
        raise ProofFailed(extra, ProofFailure.UNEXPECTED_SAMPLE, "the challenge did not ask for this leaf")


class LeafSource(Protocol):
    """Random access to a keeper's copy: `read_leaf(i)` returns bytes [4096·i, 4096·i + 4096) as the copy holds
    them (short or empty where it ends). The tree's shape comes from the level file, never from the copy, so a
    truncated copy cannot pass for a shorter package; an unreadable leaf may raise OSError."""

    def read_leaf(self, index: int, /) -> bytes: ...


class FileLeaves:
    """The leaves of a file, read with `os.pread`: one descriptor, any order, no shared file position."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()/__exit__

    def read_leaf(self, index: int, /) -> bytes:
        return os.pread(self._file.fileno(), LEAF_SIZE, index * LEAF_SIZE)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> FileLeaves:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _prove_leaf(leaves: LeafSource, levels: TreeLevels, index: int) -> ProofSample:
    """Leaf `index` with its path: the bottom of it rebuilt from the leaf's aligned group, the rest read."""
    first = index >> levels.first_level << levels.first_level
    last = min(first + (1 << levels.first_level), levels.leaf_count)
    group = []
    for position in range(first, last):
        try:
            leaf = leaves.read_leaf(position)
        except OSError as error:
            raise ProverError(position, f"the copy cannot be read ({type(error).__name__})") from error
        expected = leaf_size(position, levels.length)
        if len(leaf) != expected:
            raise ProverError(position, f"the copy holds {len(leaf)} bytes of it, not {expected}")
        group.append(leaf)
    lower = group_path(index, first, [leaf_hash(leaf) for leaf in group], levels.first_level)
    return ProofSample(index, group[index - first], b"".join(lower + levels.upper_path(index)))


def build_proof(leaves: LeafSource, levels: TreeLevels, nonce: bytes, samples: int = DEFAULT_SAMPLES) -> Proof:
    """Answer a challenge from a copy and its level file; checks the answer against the level file's root and
    raises `ProverError` naming the leaf if the copy (or the level file) is damaged. Blocking: see `prove_file`."""
    indices = challenge_indices(nonce, levels.leaf_count, samples)
    proof = Proof(PROOF_VERSION, tuple(_prove_leaf(leaves, levels, index) for index in indices))
    try:
        verify_proof(levels.root, levels.length, nonce, proof, samples)
    except ProofFailed as failure:
        raise ProverError(failure.leaf, "the copy or the level file does not match the root here") from failure
    return proof


def _prove_file_sync(ciphertext: Path, levels_path: Path, nonce: bytes, samples: int) -> Proof:
    with FileLeaves(ciphertext) as leaves, TreeLevels(levels_path) as levels:
        return build_proof(leaves, levels, nonce, samples)


async def prove_file(ciphertext: Path, levels_path: Path, nonce: bytes, samples: int = DEFAULT_SAMPLES) -> Proof:
    """Answer a challenge for the sealed file `ciphertext` with its level file, in one worker thread."""
    _check_challenge(nonce, samples)
    return await asyncio.to_thread(_prove_file_sync, ciphertext, levels_path, nonce, samples)


def detection_probability(lost_fraction: float, samples: int = DEFAULT_SAMPLES) -> float:
    """The chance that one challenge of `samples` leaves hits a lost one when `lost_fraction` of the leaves are
    gone: 1 - (1 - f)^s. Exact for draws with replacement; challenges draw distinct leaves, which only helps, so
    for them it is a lower bound. 48 samples and 10 % lost: 0.9936."""
    if not 0.0 <= lost_fraction <= 1.0 or samples < 0:
        raise ValueError("lost_fraction is in [0, 1] and samples is not negative")
    return 1.0 - (1.0 - lost_fraction) ** samples


def samples_needed(lost_fraction: float, confidence: float) -> int:
    """The fewest samples that catch a loss of `lost_fraction` of the leaves with at least `confidence`."""
    if not 0.0 < lost_fraction < 1.0 or not 0.0 < confidence < 1.0:
        raise ValueError("lost_fraction and confidence are in (0, 1)")
    samples = math.ceil(math.log1p(-confidence) / math.log1p(-lost_fraction))
    while samples > 1 and detection_probability(lost_fraction, samples - 1) >= confidence:
        samples -= 1  # the logarithms may round the quotient up past a whole number
    return samples
