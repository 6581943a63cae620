"""The Merkle tree over a ciphertext: leaf and node hashes, the length-bound root, audit paths, the streaming
builder, and the prover's level file. `ftm.keeper.merkle` is the door the rest of the code uses; this module is the
tree itself. docs/custody.md ("Ciphertext roots and sampled proofs") is the specification.

The tree is RFC 6962's Merkle Tree Hash (§2.1) over 4 KiB leaves with its 0x00/0x01 domain separation, and the
root binds the byte length as well: `SHA-256(0x02 ‖ u64(length) ‖ MTH)`. RFC 6962's split at the largest power of
two below n builds the same tree as pairing nodes level by level and promoting an unpaired last node unchanged,
so level `l` holds `ceil(n / 2^l)` nodes and node `j` covers leaves `[j·2^l, min((j+1)·2^l, n))`. That level
view is what the level file stores and what audit paths walk; the tests check it against a recursive MTH.

Errors:

    ValueError
    └── MerkleError           unusable tree material; the message names the leaf or field, never content
        ├── ProofFailed       a proof that does not prove possession; `.leaf` names the leaf, `.reason` says why
        ├── ProverError       a prover cannot prove from what it holds; `.leaf` names a damaged leaf, if one
        └── LevelFileError    a level file that is malformed or does not match its root
"""

from __future__ import annotations

import enum
import hashlib
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

Buffer = bytes | bytearray | memoryview

LEAF_SIZE = 4096
HASH_SIZE = 32
MAX_LENGTH = (1 << 64) - 1  # the length is bound into the root as a u64
MAX_LEAVES = -(-MAX_LENGTH // LEAF_SIZE)  # 2^52
MAX_PATH = (MAX_LEAVES - 1).bit_length()  # 52 sibling hashes at most
DEFAULT_FROM_LEVEL = 4  # the level file keeps levels >= 4: a sample re-reads 16 leaves (64 KiB)
MAX_FROM_LEVEL = 16

LEVEL_MAGIC = b"FTMT"
LEVEL_VERSION = 1
_HEADER = struct.Struct(">4sBBQ32s")  # magic, version, first stored level, length, root
LEVEL_HEADER_SIZE = _HEADER.size  # 46
_BLOCK_NODES = 2048  # nodes read per step while building upper levels: 64 KiB, an even count

_LEAF = hashlib.sha256(b"\x00")
_NODE = hashlib.sha256(b"\x01")
EMPTY_TREE = hashlib.sha256(b"").digest()  # RFC 6962: MTH({}) is the hash of the empty string


class MerkleError(ValueError):
    """Tree material that cannot be used; the message names the leaf index or the field, never leaf content."""


class ProofFailure(enum.StrEnum):
    """Why a proof was refused; stable values for logs, metrics and a keeper's public proof history."""

    MISSING_SAMPLE = "missing_sample"
    WRONG_INDEX = "wrong_index"
    UNEXPECTED_SAMPLE = "unexpected_sample"
    WRONG_LEAF_SIZE = "wrong_leaf_size"
    BAD_PATH = "bad_path"
    WRONG_ROOT = "wrong_root"


class ProofFailed(MerkleError):
    """A proof that does not prove possession of leaf `leaf` (the challenged index it failed on)."""

    def __init__(self, leaf: int, reason: ProofFailure, message: str) -> None:
        super().__init__(f"leaf {leaf}: {message}")
        self.leaf = leaf
        self.reason = reason


class ProverError(MerkleError):
    """The prover's copy cannot answer: `leaf` is a damaged or unreadable leaf (None if not one leaf's fault)."""

    def __init__(self, leaf: int | None, message: str) -> None:
        super().__init__(message if leaf is None else f"leaf {leaf}: {message}")
        self.leaf = leaf


class LevelFileError(MerkleError):
    """A level file that is malformed, incomplete or does not bind to its root: rebuild it from the ciphertext."""


def leaf_hash(leaf: Buffer) -> bytes:
    h = _LEAF.copy()
    h.update(leaf)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    h = _NODE.copy()
    h.update(left)
    h.update(right)
    return h.digest()


def bind_length(length: int, tree: bytes) -> bytes:
    """The 32-byte root: the tree hash bound to the byte length, so a truncated copy has another root."""
    return hashlib.sha256(b"\x02" + length.to_bytes(8, "big") + tree).digest()


def leaf_count(length: int) -> int:
    if not 0 <= length <= MAX_LENGTH:
        raise ValueError("a length is an unsigned 64-bit integer")
    return -(-length // LEAF_SIZE)


def leaf_size(index: int, length: int) -> int:
    """How many bytes leaf `index` of a `length`-byte stream holds (4096, or less for the last)."""
    return min(LEAF_SIZE, length - index * LEAF_SIZE)


def tree_height(count: int) -> int:
    """The level of the root: 0 for one leaf (or none), ceil(log2(count)) otherwise."""
    return max(count - 1, 0).bit_length()


def level_size(count: int, level: int) -> int:
    return -(-count // (1 << level))


def parents(nodes: Sequence[bytes]) -> list[bytes]:
    """One level up: each pair hashed, an unpaired last node promoted unchanged."""
    up = [node_hash(nodes[i], nodes[i + 1]) for i in range(0, len(nodes) - 1, 2)]
    if len(nodes) % 2:
        up.append(nodes[-1])
    return up


def fold(nodes: Sequence[bytes]) -> bytes:
    """MTH from the roots of the perfect subtrees that tile the leaves, largest (leftmost) first."""
    tree = nodes[-1]
    for left in reversed(nodes[:-1]):
        tree = node_hash(left, tree)
    return tree


def group_path(index: int, first: int, digests: Sequence[bytes], levels: int) -> list[bytes]:
    """The bottom `levels` entries of leaf `index`'s audit path, from the leaf hashes of its aligned group of
    2^levels leaves starting at `first` (fewer at the end of the tree). Siblings outside the tree are skipped."""
    path, nodes, j = [], list(digests), index - first
    for _ in range(levels):
        if j ^ 1 < len(nodes):
            path.append(nodes[j ^ 1])
        nodes, j = parents(nodes), j >> 1
    return path


def root_from_path(index: int, count: int, digest: bytes, path: Buffer) -> bytes | None:
    """The tree hash an audit path leads to from leaf `index`'s hash (RFC 9162 §2.1.3.2), or None when the path
    does not have the shape a tree of `count` leaves requires. `path` is 32-byte sibling hashes, bottom up."""
    if not 0 <= index < count or len(path) % HASH_SIZE:
        return None
    fn, sn, tree = index, count - 1, digest
    view = memoryview(path)
    for offset in range(0, len(view), HASH_SIZE):
        sibling = bytes(view[offset : offset + HASH_SIZE])
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            tree = node_hash(sibling, tree)
            while not fn & 1 and fn:  # a right-edge node with no right sibling: climb past promoted levels
                fn, sn = fn >> 1, sn >> 1
        else:
            tree = node_hash(tree, sibling)
        fn, sn = fn >> 1, sn >> 1
    return tree if sn == 0 else None


class TreeBuilder:
    """Computes the root of a byte stream fed in slices of any size; optionally writes the level file as it goes.

    Memory is one partial leaf and one hash per level (the roots of the perfect subtrees seen so far, as in
    RFC 9162's compact range). With `levels`, an empty file opened for reading and writing, nodes of level
    `from_level` go to it as they are made and `finish` adds the levels above by re-reading it, so the level
    file costs no memory either. CPU-bound: async callers run it in a thread (`ftm.keeper.merkle`).
    """

    def __init__(self, levels: BinaryIO | None = None, from_level: int = DEFAULT_FROM_LEVEL) -> None:
        if not 0 <= from_level <= MAX_FROM_LEVEL:
            raise ValueError(f"from_level is 0 to {MAX_FROM_LEVEL}")
        self.length = 0
        self._levels = levels
        self._from = from_level
        self._partial = bytearray()
        self._stack: list[bytes] = []  # stack[i] has the height of the i-th set bit of _count, highest first
        self._count = 0
        self._root: bytes | None = None
        if levels is not None:
            levels.write(bytes(LEVEL_HEADER_SIZE))  # an all-zero header marks the file incomplete until finish

    def update(self, data: Buffer) -> None:
        if self._root is not None:
            raise ValueError("update after finish")
        view = memoryview(data).cast("B")
        if self.length + len(view) > MAX_LENGTH:
            raise ValueError("a stream is at most 2^64 - 1 bytes")
        self.length += len(view)
        if self._partial:
            take = min(LEAF_SIZE - len(self._partial), len(view))
            self._partial += view[:take]
            view = view[take:]
            if len(self._partial) < LEAF_SIZE:
                return
            self._push(leaf_hash(self._partial))
            self._partial.clear()
        full = len(view) - len(view) % LEAF_SIZE
        copy, push = _LEAF.copy, self._push
        for offset in range(0, full, LEAF_SIZE):
            h = copy()
            h.update(view[offset : offset + LEAF_SIZE])
            push(h.digest())
        self._partial += view[full:]

    def _push(self, digest: bytes) -> None:
        # Adding leaf number `count` completes one subtree per trailing 1 bit of `count`: merge them.
        levels, stack, count, height = self._levels, self._stack, self._count, 0
        if levels is not None and self._from == 0:
            levels.write(digest)
        while count & 1:
            digest = node_hash(stack.pop(), digest)
            count >>= 1
            height += 1
            if height == self._from and levels is not None:
                levels.write(digest)
        stack.append(digest)
        self._count += 1

    def finish(self) -> bytes:
        """The 32-byte root; with a level file, also completes it (and leaves it flushed, not closed)."""
        if self._root is None:
            if self._partial:
                self._push(leaf_hash(self._partial))
                self._partial.clear()
            tree = fold(self._stack) if self._stack else EMPTY_TREE
            self._root = bind_length(self.length, tree)
            if self._levels is not None:
                self._finish_levels(self._levels, tree, self._root)
        return self._root

    def _finish_levels(self, out: BinaryIO, tree: bytes, root: bytes) -> None:
        count, first = self._count, self._from
        if count <= 1 << first:
            # The whole tree lies at or below the first level to keep: store its root alone, at the top level.
            first = tree_height(count)
            out.seek(LEVEL_HEADER_SIZE)
            out.truncate()
            if count:
                out.write(tree)
        else:
            low = bin(count & ((1 << first) - 1)).count("1")
            if low:  # the last group is partial: its node is the fold of the small subtrees at the end
                out.write(fold(self._stack[-low:]))
            _write_upper_levels(out, level_size(count, first))
        out.seek(0)
        out.write(_HEADER.pack(LEVEL_MAGIC, LEVEL_VERSION, first, self.length, root))
        out.flush()


def _write_upper_levels(out: BinaryIO, size: int) -> None:
    """Append each level above the one of `size` nodes that starts right after the header, reading it back in
    blocks: memory stays at one block whatever the tree's size."""
    start = LEVEL_HEADER_SIZE
    while size > 1:
        above = start + size * HASH_SIZE
        written = 0
        for first in range(0, size, _BLOCK_NODES):
            out.seek(start + first * HASH_SIZE)
            block = out.read(min(_BLOCK_NODES, size - first) * HASH_SIZE)
            nodes = [block[i : i + HASH_SIZE] for i in range(0, len(block), HASH_SIZE)]
            out.seek(above + written)
            written += out.write(b"".join(parents(nodes)))
        start, size = above, (size + 1) // 2


class TreeLevels:
    """A prover's level file, opened: reads single nodes with `os.pread`, never the whole file.

    Layout: `"FTMT" ‖ u8 version ‖ u8 first ‖ u64 length ‖ root (32)`, then levels `first`..top, each
    `ceil(n / 2^level)` 32-byte hashes in order. Opening checks the header, the size and that the top node binds
    to the root, so a torn or foreign file is refused; a damaged lower node shows up when a proof fails.
    """

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        try:
            self._load()
        except BaseException:
            os.close(self._fd)
            raise

    def _load(self) -> None:
        header = os.pread(self._fd, LEVEL_HEADER_SIZE, 0)
        if len(header) < LEVEL_HEADER_SIZE:
            raise LevelFileError("level file is shorter than its header")
        magic, version, first, length, root = _HEADER.unpack(header)
        if magic != LEVEL_MAGIC or version != LEVEL_VERSION:
            raise LevelFileError("not a complete level file of version 1 (bad magic or version)")
        count = leaf_count(length)
        top = tree_height(count)
        if first > min(top, MAX_FROM_LEVEL):
            raise LevelFileError("level file's first stored level does not fit its tree")
        self.length, self.leaf_count, self.first_level, self.top_level, self.root = length, count, first, top, root
        self._offsets: dict[int, int] = {}
        offset = LEVEL_HEADER_SIZE
        for level in range(first, top + 1 if count else first):
            self._offsets[level] = offset
            offset += level_size(count, level) * HASH_SIZE
        if os.fstat(self._fd).st_size != offset:
            raise LevelFileError("level file's size does not match its tree")
        tree = self.node(top, 0) if count else EMPTY_TREE
        if bind_length(length, tree) != root:
            raise LevelFileError("level file's top node does not bind to its root")

    def node(self, level: int, index: int) -> bytes:
        if level not in self._offsets or not 0 <= index < level_size(self.leaf_count, level):
            raise ValueError(f"no node {index} at level {level} in this level file")
        data = os.pread(self._fd, HASH_SIZE, self._offsets[level] + index * HASH_SIZE)
        if len(data) != HASH_SIZE:
            raise LevelFileError("level file was truncated while open")
        return data

    def upper_path(self, index: int) -> list[bytes]:
        """The audit path entries of leaf `index` from the first stored level up to the root."""
        path, j = [], index >> self.first_level
        for level in range(self.first_level, self.top_level):
            if j ^ 1 < level_size(self.leaf_count, level):
                path.append(self.node(level, j ^ 1))
            j >>= 1
        return path

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> TreeLevels:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
