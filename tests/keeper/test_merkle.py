"""Ciphertext roots and sampled proofs: roots against a recursive RFC 6962 reference, streaming against bytes,
level files node by node, proofs that verify and every way one can fail, detection of a lossy keeper, decoding.

`mth`, `reference_path`, `reference_root` and `reference_indices` are written from the specification (RFC 6962
§2.1 and docs/custody.md), not from `ftm.keeper.merkle`, so expected values are computed, never copied.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import random
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftm.federation import codec
from ftm.keeper.merkle import (
    DEFAULT_SAMPLES,
    LEAF_SIZE,
    MAX_SAMPLES,
    LevelFileError,
    MerkleError,
    MerkleRoot,
    Proof,
    ProofFailed,
    ProofFailure,
    ProofSample,
    ProverError,
    TreeLevels,
    build_proof,
    challenge_indices,
    detection_probability,
    file_root,
    max_proof_bytes,
    merkle_root,
    prove_file,
    samples_needed,
    stream_root,
    verify_proof,
)
from ftm.keeper.merkletree import MAX_LEAVES, MAX_PATH, TreeBuilder

DOCS = Path(__file__).resolve().parents[2] / "docs"
SECTION = "## Ciphertext roots and sampled proofs"
NONCE = bytes(range(32))
OTHER_NONCE = bytes(range(1, 33))


# The reference: RFC 6962 §2.1 written out recursively, over 4 KiB leaves, plus the length binding.


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def split(data: bytes) -> list[bytes]:
    return [data[i : i + LEAF_SIZE] for i in range(0, len(data), LEAF_SIZE)]


def largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return sha256(b"\x00" + leaves[0])
    k = largest_power_of_two_below(len(leaves))
    return sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def reference_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n])."""
    if len(leaves) == 1:
        return []
    k = largest_power_of_two_below(len(leaves))
    if m < k:
        return [*reference_path(m, leaves[:k]), mth(leaves[k:])]
    return [*reference_path(m - k, leaves[k:]), mth(leaves[:k])]


def reference_root(data: bytes) -> bytes:
    return sha256(b"\x02" + len(data).to_bytes(8, "big") + mth(split(data)))


def reference_sample(data: bytes, index: int) -> ProofSample:
    leaves = split(data)
    return ProofSample(index, leaves[index], b"".join(reference_path(index, leaves)))


def reference_indices(nonce: bytes, n: int, samples: int) -> list[int]:
    if samples >= n:
        return list(range(n))

    def words() -> Iterator[int]:
        counter = 0
        while True:
            block = sha256(b"ftm-merkle-challenge-v1\x00" + bytes([len(nonce)]) + nonce + counter.to_bytes(8, "big"))
            for i in range(4):
                yield int.from_bytes(block[8 * i : 8 * i + 8], "big")
            counter += 1

    limit = (2**64 // n) * n
    chosen: list[int] = []
    for word in words():
        if word < limit and word % n not in chosen:
            chosen.append(word % n)
            if len(chosen) == samples:
                return sorted(chosen)
    raise AssertionError("unreachable")


def pattern(length: int, seed: int = 0) -> bytes:
    """Deterministic bytes that differ from leaf to leaf (a SHA-256 counter stream)."""
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += sha256(seed.to_bytes(4, "big") + counter.to_bytes(8, "big"))
        counter += 1
    return bytes(out[:length])


async def chunked(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    previous = 0
    for cut in [*sorted(cuts), len(data)]:
        yield data[previous:cut]
        previous = cut


async def held(tmp_path: Path, data: bytes, from_level: int = 4) -> tuple[Path, Path, MerkleRoot]:
    """A keeper's copy of `data` with its level file, as `file_root` writes it."""
    copy, levels = tmp_path / "copy.ftmv", tmp_path / "copy.levels"
    copy.write_bytes(data)
    root = await file_root(copy, levels_path=levels, from_level=from_level)
    return copy, levels, root


class MemoryLeaves:
    """A copy held in memory that may have lost leaves: reads of a lost leaf fail, or return zeros."""

    def __init__(self, data: bytes, lost: frozenset[int] = frozenset(), mode: str = "fail") -> None:
        self.data, self.lost, self.mode = data, lost, mode

    def read_leaf(self, index: int, /) -> bytes:
        leaf = self.data[index * LEAF_SIZE : (index + 1) * LEAF_SIZE]
        if index in self.lost:
            if self.mode == "fail":
                raise OSError("the sector is gone")
            return bytes(len(leaf))
        return leaf


# Roots.

ROOT_LENGTHS = [0, 1, 4095, 4096, 4097, 8192, 3 * 4096, 3 * 4096 + 1, 5 * 4096 - 1, 7 * 4096, 13 * 4096 + 99, 33 * 4096]


@pytest.mark.parametrize("length", ROOT_LENGTHS)
def test_root_matches_the_recursive_definition(length: int) -> None:
    data = pattern(length)
    root = merkle_root(data)
    assert len(root) == 32
    assert root == reference_root(data)


def test_empty_and_single_leaf_roots_spelled_out() -> None:
    assert merkle_root(b"") == sha256(b"\x02" + bytes(8) + sha256(b""))
    assert merkle_root(b"x") == sha256(b"\x02" + (1).to_bytes(8, "big") + sha256(b"\x00x"))
    two = pattern(4097)
    tree = sha256(b"\x01" + sha256(b"\x00" + two[:4096]) + sha256(b"\x00" + two[4096:]))
    assert merkle_root(two) == sha256(b"\x02" + (4097).to_bytes(8, "big") + tree)


def test_root_binds_the_length_and_every_byte() -> None:
    data = pattern(3 * 4096)
    roots = {merkle_root(data), merkle_root(data[:-1]), merkle_root(data + b"\x00"), merkle_root(data[:8192])}
    flipped = bytearray(data)
    flipped[5000] ^= 1
    roots.add(merkle_root(bytes(flipped)))
    assert len(roots) == 5
    # The same tree hash under another length is another root: a verifier told the wrong length refuses.
    assert sha256(b"\x02" + (len(data) - 1).to_bytes(8, "big") + mth(split(data))) != merkle_root(data)


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    # Two leaves whose concatenation, read as one 65-byte leaf, would collide without the prefixes.
    left, right = sha256(b"\x00a"), sha256(b"\x00b")
    assert merkle_root(b"\x01" + left + right) != merkle_root(b"a" + bytes(4095) + b"b")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    length=st.integers(min_value=0, max_value=12 * LEAF_SIZE + 17),
    cut_points=st.lists(st.integers(min_value=0, max_value=12 * LEAF_SIZE + 17), max_size=12),
    seed=st.integers(min_value=0, max_value=3),
)
async def test_streaming_root_equals_bytes_root_for_any_chunking(length: int, cut_points: list[int], seed: int) -> None:
    data = pattern(length, seed)
    cuts = [cut for cut in cut_points if cut <= length]
    streamed = await stream_root(chunked(data, cuts))
    assert streamed == MerkleRoot(merkle_root(data), length)
    assert streamed.root == reference_root(data)
    builder = TreeBuilder()
    previous = 0
    for cut in [*sorted(cuts), length]:
        builder.update(memoryview(data)[previous:cut])
        previous = cut
    assert builder.finish() == streamed.root


async def test_streaming_root_over_a_reused_buffer_and_large_chunks(tmp_path: Path) -> None:
    """Producers like `VaultReader.views()` hand out views of one buffer they overwrite; big and small chunks mix."""
    data = pattern(5 * (1 << 20) + 12345)
    sizes = [1 << 20, 10, 4096, 3 << 20, 999, 70000]

    async def reused() -> AsyncIterator[memoryview]:
        buffer = bytearray(max(sizes))
        offset, turn = 0, 0
        while offset < len(data):
            size = min(sizes[turn % len(sizes)], len(data) - offset)
            buffer[:size] = data[offset : offset + size]
            yield memoryview(buffer)[:size]
            buffer[:size] = bytes(size)  # scribble over what was handed out: nothing may read it later
            offset, turn = offset + size, turn + 1

    levels = tmp_path / "levels"
    streamed = await stream_root(reused(), levels_path=levels)
    assert streamed == MerkleRoot(reference_root(data), len(data))
    assert levels.read_bytes() == await _levels_of_file(tmp_path, data)


async def _levels_of_file(tmp_path: Path, data: bytes) -> bytes:
    directory = tmp_path / "from-file"
    directory.mkdir()
    _, levels, _ = await held(directory, data)
    return levels.read_bytes()


# Level files: every stored node against the recursive definition, and refusals.


@pytest.mark.parametrize("from_level", [0, 1, 2, 4])
async def test_level_file_nodes_and_paths_match_the_definition(tmp_path: Path, from_level: int) -> None:
    for n in [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 70]:
        data = pattern(max(n * LEAF_SIZE - 37, 0) if n else 0)
        leaves = split(data)
        assert len(leaves) == n
        copy, levels_path, root = await held(tmp_path, data, from_level)
        with TreeLevels(levels_path) as levels:
            top = max(n - 1, 0).bit_length()
            assert (levels.leaf_count, levels.top_level, levels.root) == (n, top, root.root)
            assert levels.first_level == min(from_level, top)
            for level in range(levels.first_level, top + 1 if n else 0):
                span = 1 << level
                for j in range(-(-n // span)):
                    assert levels.node(level, j) == mth(leaves[j * span : (j + 1) * span]), (n, level, j)
            # A challenge asking for more samples than there are leaves takes every leaf: all paths checked.
            proof = build_proof(_FileReader(copy), levels, NONCE, samples=MAX_SAMPLES)
        assert [sample.index for sample in proof.samples] == list(range(n))
        for sample in proof.samples:
            assert sample.leaf == leaves[sample.index]
            assert sample.path == b"".join(reference_path(sample.index, leaves)), (n, sample.index)


class _FileReader:
    def __init__(self, path: Path) -> None:
        self.data = path.read_bytes()

    def read_leaf(self, index: int, /) -> bytes:
        return self.data[index * LEAF_SIZE : (index + 1) * LEAF_SIZE]


async def test_level_file_size_is_bounded_by_the_first_kept_level(tmp_path: Path) -> None:
    data = pattern(300 * LEAF_SIZE)
    _, levels_path, _ = await held(tmp_path, data, from_level=4)
    stored = (levels_path.stat().st_size - 46) // 32
    assert stored == sum(-(-300 // (1 << level)) for level in range(4, 10))
    groups, levels_above = -(-300 // 16), 9 - 4
    assert stored <= 2 * groups + levels_above  # about 2 hashes per 16 leaves: 1 MiB per GiB


async def test_level_file_refused_when_torn_or_foreign(tmp_path: Path) -> None:
    data = pattern(100 * LEAF_SIZE)
    _, levels_path, _ = await held(tmp_path, data)
    good = levels_path.read_bytes()
    broken = {
        "incomplete": bytes(46) + good[46:],
        "bad magic": b"XXXX" + good[4:],
        "truncated": good[:-1],
        "appended": good + bytes(32),
        "short header": good[:20],
        "tampered top": good[:-1] + bytes([good[-1] ^ 1]),
        "tampered length": good[:6] + (100 * LEAF_SIZE + 1).to_bytes(8, "big") + good[14:],
        "first level too high": good[:5] + bytes([17]) + good[6:],
    }
    for name, content in broken.items():
        levels_path.write_bytes(content)
        try:
            TreeLevels(levels_path).close()
        except LevelFileError:
            continue
        pytest.fail(f"a level file with {name} was accepted")


# Proofs.


async def test_proof_verifies_and_survives_the_wire(tmp_path: Path) -> None:
    data = pattern(300 * LEAF_SIZE + 1234)
    copy, levels, root = await held(tmp_path, data)
    proof = await prove_file(copy, levels, NONCE)
    assert [sample.index for sample in proof.samples] == reference_indices(NONCE, 301, DEFAULT_SAMPLES)
    encoded = proof.encode()
    assert len(encoded) <= max_proof_bytes(DEFAULT_SAMPLES)
    decoded = Proof.decode(encoded, max_bytes=max_proof_bytes(DEFAULT_SAMPLES))
    assert decoded == proof
    verify_proof(root.root, root.length, NONCE, decoded)
    for sample in proof.samples:
        assert sample == reference_sample(data, sample.index)


async def test_proofs_for_tiny_and_empty_packages(tmp_path: Path) -> None:
    for length in (0, 1, 4096, 4097, 47 * LEAF_SIZE):
        data = pattern(length)
        copy, levels, root = await held(tmp_path, data)
        proof = await prove_file(copy, levels, NONCE)
        assert len(proof.samples) == min(-(-length // LEAF_SIZE), DEFAULT_SAMPLES)
        verify_proof(root.root, length, NONCE, proof)
    intruder = Proof(1, (ProofSample(0, b"x", b""),))
    with pytest.raises(ProofFailed) as failed:
        verify_proof(merkle_root(b""), 0, NONCE, intruder)
    assert (failed.value.leaf, failed.value.reason) == (0, ProofFailure.UNEXPECTED_SAMPLE)


@pytest.fixture
async def package(tmp_path: Path) -> tuple[bytes, Path, Path, MerkleRoot, Proof]:
    data = pattern(300 * LEAF_SIZE + 1234)
    copy, levels, root = await held(tmp_path, data)
    return data, copy, levels, root, await prove_file(copy, levels, NONCE)


def replace_sample(proof: Proof, position: int, sample: ProofSample) -> Proof:
    samples = list(proof.samples)
    samples[position] = sample
    return Proof(proof.version, tuple(samples))


def fails(root: MerkleRoot, proof: Proof, nonce: bytes = NONCE, length: int | None = None) -> ProofFailed:
    with pytest.raises(ProofFailed) as failed:
        verify_proof(root.root, root.length if length is None else length, nonce, proof)
    assert f"leaf {failed.value.leaf}:" in str(failed.value)
    return failed.value


def test_tampered_leaf_fails_naming_it(package: tuple[bytes, Path, Path, MerkleRoot, Proof]) -> None:
    _, _, _, root, proof = package
    sample = proof.samples[7]
    flipped = bytes([sample.leaf[0] ^ 1]) + sample.leaf[1:]
    failure = fails(root, replace_sample(proof, 7, dataclasses.replace(sample, leaf=flipped)))
    assert (failure.leaf, failure.reason) == (sample.index, ProofFailure.WRONG_ROOT)


def test_wrong_index_fails_naming_the_challenged_leaf(package: tuple[bytes, Path, Path, MerkleRoot, Proof]) -> None:
    data, _, _, root, proof = package
    position = next(i for i in range(1, 47) if proof.samples[i].index + 1 < proof.samples[i + 1].index)
    wanted = proof.samples[position].index
    # A perfectly valid sample, of the leaf next door: it proves that leaf, not the one asked for.
    failure = fails(root, replace_sample(proof, position, reference_sample(data, wanted + 1)))
    assert (failure.leaf, failure.reason) == (wanted, ProofFailure.WRONG_INDEX)
    assert f"answers leaf {wanted + 1}" in str(failure)


def test_wrong_path_fails_naming_the_leaf(package: tuple[bytes, Path, Path, MerkleRoot, Proof]) -> None:
    _, _, _, root, proof = package
    sample = proof.samples[11]
    for cut in range(0, len(sample.path), 32):
        path = sample.path[:cut] + bytes(32) + sample.path[cut + 32 :]
        failure = fails(root, replace_sample(proof, 11, dataclasses.replace(sample, path=path)))
        assert (failure.leaf, failure.reason) == (sample.index, ProofFailure.WRONG_ROOT)
    for path in (sample.path[:-32], sample.path + bytes(32), b""):
        failure = fails(root, replace_sample(proof, 11, dataclasses.replace(sample, path=path)))
        assert (failure.leaf, failure.reason) == (sample.index, ProofFailure.BAD_PATH)


def test_missing_and_extra_samples_fail(package: tuple[bytes, Path, Path, MerkleRoot, Proof]) -> None:
    data, _, _, root, proof = package
    failure = fails(root, Proof(1, proof.samples[:-1]))
    assert (failure.leaf, failure.reason) == (proof.samples[-1].index, ProofFailure.MISSING_SAMPLE)
    extra = reference_sample(data, 300)
    assert extra.index > proof.samples[-1].index
    failure = fails(root, Proof(1, (*proof.samples, extra)))
    assert (failure.leaf, failure.reason) == (300, ProofFailure.UNEXPECTED_SAMPLE)


def test_wrong_nonce_fails_naming_the_first_unanswered_leaf(
    package: tuple[bytes, Path, Path, MerkleRoot, Proof],
) -> None:
    _, _, _, root, proof = package
    asked, answered = reference_indices(OTHER_NONCE, 301, 48), reference_indices(NONCE, 301, 48)
    first = next(a for a, b in zip(asked, answered, strict=True) if a != b)
    failure = fails(root, proof, nonce=OTHER_NONCE)
    assert (failure.leaf, failure.reason) == (first, ProofFailure.WRONG_INDEX)


def test_wrong_length_or_root_fails(package: tuple[bytes, Path, Path, MerkleRoot, Proof]) -> None:
    _, _, _, root, proof = package
    failure = fails(root, proof, length=root.length - 1)  # same leaves, same shape: only the binding differs
    assert (failure.leaf, failure.reason) == (proof.samples[0].index, ProofFailure.WRONG_ROOT)
    with pytest.raises(ProofFailed):
        verify_proof(bytes(32), root.length, NONCE, proof)


async def test_truncated_copy_is_reported_by_the_prover_and_refused_by_the_verifier(
    package: tuple[bytes, Path, Path, MerkleRoot, Proof],
) -> None:
    data, copy, levels, root, proof = package
    copy.write_bytes(data[: 150 * LEAF_SIZE + 100])  # leaf 150 is cut short, the rest are gone
    with pytest.raises(ProverError) as refused:
        await prove_file(copy, levels, NONCE)
    first_hit = next(s.index for s in proof.samples if (s.index | 15) >= 150)
    assert refused.value.leaf == max(first_hit & ~15, 150)
    assert f"leaf {refused.value.leaf}:" in str(refused.value)
    # A keeper that sends what it has anyway: the short leaf is named by the verifier.
    cut = next(i for i, s in enumerate(proof.samples) if s.index >= 150)
    sample = proof.samples[cut]
    short = dataclasses.replace(sample, leaf=sample.leaf[:100])
    failure = fails(root, replace_sample(proof, cut, short))
    assert (failure.leaf, failure.reason) == (sample.index, ProofFailure.WRONG_LEAF_SIZE)


async def test_damaged_level_file_is_reported_by_the_prover(
    package: tuple[bytes, Path, Path, MerkleRoot, Proof],
) -> None:
    _, copy, levels, _, _ = package
    content = bytearray(levels.read_bytes())
    for node in range(19):  # every level-4 node: 301 leaves make 19 groups of 16
        content[46 + 32 * node] ^= 0xFF
    levels.write_bytes(bytes(content))
    with pytest.raises(ProverError) as refused:
        await prove_file(copy, levels, NONCE)
    assert refused.value.leaf is not None


# A keeper that lost 10 % of its leaves, 200 seeded trials.

TRIALS = 200
TRIAL_LEAVES = 500


@pytest.fixture(scope="module")
def trial_package(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    data = pattern(TRIAL_LEAVES * LEAF_SIZE)
    directory = tmp_path_factory.mktemp("trials")
    asyncio.run(held(directory, data))
    return data, directory / "copy.levels"


def lose_tenth(trial: int) -> tuple[random.Random, frozenset[int]]:
    rng = random.Random(trial)
    return rng, frozenset(rng.sample(range(TRIAL_LEAVES), TRIAL_LEAVES // 10))


def caught_within(nonces: list[bytes], answer: Callable[[bytes], object]) -> int | None:
    """The challenge (1-based) at which the keeper failed, or None."""
    for number, nonce in enumerate(nonces, 1):
        try:
            answer(nonce)
        except (ProverError, ProofFailed):
            return number
    return None


def forged_answer(data: bytes, levels: TreeLevels, lost: frozenset[int], nonce: bytes) -> None:
    """A keeper that kept the level file answers with zeros for the leaves it lost; the verifier checks it."""
    honest = build_proof(MemoryLeaves(data), levels, nonce)
    forged = tuple(dataclasses.replace(s, leaf=bytes(len(s.leaf))) if s.index in lost else s for s in honest.samples)
    verify_proof(merkle_root(data), len(data), nonce, Proof(1, forged))


@pytest.mark.parametrize("mode", ["fail", "zeros"])
def test_honest_keeper_with_lost_leaves_cannot_answer(trial_package: tuple[bytes, Path], mode: str) -> None:
    """Reads of lost leaves fail, or return zeros: the keeper's self-check refuses to answer, naming a leaf. It
    reads 16 leaves per sample, so it notices more often than the sampling model alone would predict."""
    data, levels_path = trial_package
    caught = []
    with TreeLevels(levels_path) as levels:
        for trial in range(TRIALS):
            rng, lost = lose_tenth(trial)
            nonces = [rng.randbytes(32) for _ in range(3)]
            caught.append(caught_within(nonces, functools.partial(build_proof, MemoryLeaves(data, lost, mode), levels)))
    assert sum(number is not None for number in caught) >= 0.99 * TRIALS


def test_lying_keeper_with_lost_leaves_is_caught_by_the_verifier(trial_package: tuple[bytes, Path]) -> None:
    """Only the sampled leaves can give such a keeper away, so this is the pure sampling model: 1 - 0.9^48 per
    challenge."""
    data, levels_path = trial_package
    caught = []
    with TreeLevels(levels_path) as levels:
        for trial in range(TRIALS):
            rng, lost = lose_tenth(trial)
            nonces = [rng.randbytes(32) for _ in range(3)]
            caught.append(caught_within(nonces, functools.partial(forged_answer, data, levels, lost)))
    assert sum(number is not None for number in caught) >= 0.99 * TRIALS
    # One challenge alone is expected to catch 1 - 0.9^48 = 99.4 % (a little more: samples are distinct).
    assert sum(number == 1 for number in caught) >= 0.97 * TRIALS


def test_detection_arithmetic() -> None:
    assert detection_probability(0.1, 48) >= 0.99
    assert detection_probability(0.1, 48) == pytest.approx(1 - 0.9**48)
    assert detection_probability(0.0, 48) == 0.0
    assert detection_probability(1.0, 1) == 1.0
    assert samples_needed(0.1, 0.99) == 44
    assert samples_needed(0.5, 0.75) == 2  # exactly 0.75 at 2: the logarithms must not round it up to 3
    assert samples_needed(0.01, 0.99) == 459
    with pytest.raises(ValueError, match="lost_fraction"):
        detection_probability(1.5, 48)
    with pytest.raises(ValueError, match="lost_fraction"):
        samples_needed(0.0, 0.99)


# Challenges.


@pytest.mark.parametrize("count", [1, 2, 47, 48, 49, 50, 301, 4096, 10**6, MAX_LEAVES])
@pytest.mark.parametrize("samples", [1, 48, 256])
def test_challenge_indices_follow_the_specification(count: int, samples: int) -> None:
    indices = challenge_indices(NONCE, count, samples)
    assert indices == reference_indices(NONCE, count, samples)
    assert indices == sorted(set(indices))
    assert len(indices) == min(samples, count)
    assert all(0 <= i < count for i in indices)
    assert challenge_indices(NONCE, count, samples) == indices
    if count > 2 * samples:
        assert challenge_indices(OTHER_NONCE, count, samples) != indices


def test_challenge_indices_refuse_bad_arguments() -> None:
    assert challenge_indices(NONCE, 0) == []
    for nonce, count, samples in [
        (bytes(15), 10, 48),
        (bytes(65), 10, 48),
        (NONCE, 10, 0),
        (NONCE, 10, MAX_SAMPLES + 1),
        (NONCE, -1, 48),
        (NONCE, MAX_LEAVES + 1, 48),
        (NONCE, True, 48),
    ]:
        with pytest.raises(ValueError, match=r"nonce|samples|leaf count"):
            challenge_indices(nonce, count, samples)


# Decoding.


def raw_proof(samples: list[dict[str, object]], version: object = 1, **extra: object) -> bytes:
    packed = msgpack.packb({"version": version, "samples": samples, **extra}, use_bin_type=True)
    assert isinstance(packed, bytes)
    return packed


def sample_map(index: object = 3, leaf: object = b"x" * 4096, path: object = bytes(64)) -> dict[str, object]:
    return {"index": index, "leaf": leaf, "path": path}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        raw_proof([sample_map()], version=2),
        raw_proof([sample_map()], version=True),
        raw_proof([sample_map()], nonce=b"x"),
        raw_proof([{**sample_map(), "root": b"x"}]),
        raw_proof([sample_map(index=True)]),
        raw_proof([sample_map(index="3")]),
        raw_proof([sample_map(index=-1)]),
        raw_proof([sample_map(index=MAX_LEAVES)]),
        raw_proof([sample_map(leaf=b"")]),
        raw_proof([sample_map(leaf=b"x" * 4097)]),
        raw_proof([sample_map(leaf="text")]),
        raw_proof([sample_map(path=bytes(33))]),
        raw_proof([sample_map(path=bytes(32 * (MAX_PATH + 1)))]),
        raw_proof([sample_map(path=[bytes(32)])]),
        raw_proof([sample_map(index=5), sample_map(index=5)]),
        raw_proof([sample_map(index=6), sample_map(index=5)]),
        raw_proof([sample_map(index=i) for i in range(MAX_SAMPLES + 1)]),
        raw_proof(sample_map()),  # type: ignore[arg-type]
        msgpack.packb([1, []]),
        msgpack.packb({"version": 1, "samples": [msgpack.ExtType(1, b"")]}),
    ],
)
def test_decode_refuses_malformed_proofs(data: bytes) -> None:
    with pytest.raises(codec.DecodeError):
        Proof.decode(data)


def test_decode_refuses_oversized_proofs_before_parsing() -> None:
    biggest = Proof(1, tuple(ProofSample(MAX_LEAVES - 60 + i, bytes(4096), bytes(32 * MAX_PATH)) for i in range(60)))
    encoded = biggest.encode()
    assert len(encoded) <= max_proof_bytes(60)  # the bound holds for the largest samples there can be
    assert Proof.decode(encoded) == biggest
    with pytest.raises(codec.DecodeError, match="limit"):
        Proof.decode(encoded, max_bytes=max_proof_bytes(48))
    with pytest.raises(codec.DecodeError, match="limit"):
        Proof.decode(encoded + bytes(2 << 20))


def test_constructing_a_malformed_proof_is_refused() -> None:
    with pytest.raises(MerkleError, match="leaf 9"):
        ProofSample(9, b"", b"")
    with pytest.raises(MerkleError, match="ascending"):
        Proof(1, (ProofSample(2, b"a", b""), ProofSample(1, b"a", b"")))


# The documented test vectors (docs/custody.md).


def documented_section() -> str:
    text = (DOCS / "custody.md").read_text()
    assert SECTION in text, f"no '{SECTION}' section in docs/custody.md"
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end >= 0 else len(text)]


async def test_documented_vectors_hold(tmp_path: Path) -> None:
    section = documented_section()
    roots = re.findall(r"^\| (\d+) \| `([0-9a-f]{64})` \|$", section, re.MULTILINE)
    assert len(roots) >= 5
    for length, root in roots:
        data = bytes(i % 251 for i in range(int(length)))
        assert merkle_root(data).hex() == root == reference_root(data).hex()
    path = re.search(r"^path of leaf 4: ([0-9a-f, ]+)$", section, re.MULTILINE)
    assert path is not None
    data = bytes(i % 251 for i in range(20481))
    assert bytes.fromhex(path.group(1).replace(", ", "")) == b"".join(reference_path(4, split(data)))
    copy, levels_path, _ = await held(tmp_path, data)
    with TreeLevels(levels_path) as levels:
        proof = build_proof(_FileReader(copy), levels, NONCE)
    assert proof.samples[4].path == bytes.fromhex(path.group(1).replace(", ", ""))
    challenge = re.search(r"^indices: ([\d, ]+)$", section, re.MULTILINE)
    assert challenge is not None
    expected = [int(i) for i in challenge.group(1).split(", ")]
    assert challenge_indices(bytes(range(32)), 1000, 8) == expected == reference_indices(bytes(range(32)), 1000, 8)
