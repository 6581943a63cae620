"""Vault file format version 2 ("packed"): constants, the prelude and trailer, and the sealed index.

A packed file is `prelude ‖ region ‖ index ‖ trailer`. The region holds blobs, each AES-256-GCM under its own
random key; the index, a version-1 vault stream under the epoch key, lists where each blob is, its key and the
SHA-256 of its plaintext, and how the plaintext splits into sections of parts. The code that cuts, seals and opens
is `ftm.node.vaultpack`; the byte-exact format is in `docs/vault.md` §5.

The index dataclasses check their own ranges, so a strictly decoded index (`ftm.federation.codec`) is well formed
before any of it is used. They hold blob keys: `BlobRef` keeps its key out of `repr`.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ftm.node.vaultformat import KEY_SIZE, TAG_SIZE

PACK_MAGIC = b"FTMP"
PACK_VERSION = 2
TRAILER_MAGIC = b"FTMPACK2"
TRAILER_SIZE = 8 + len(TRAILER_MAGIC)
INDEX_VERSION = 1
BLOB_MAX = 1 << 20  # plaintext bytes per blob at most
BLOB_MIN = 64 << 10  # a blob is cut at a content boundary only once it holds this much
CUT_BELOW = 32  # a part ends a blob (past BLOB_MIN) when the first byte of its SHA-256 is below this: 1 in 8
INDEX_MAX = 64 << 20  # plaintext bytes of an index at most
COMPACT_MIN_GARBAGE = 1 << 20  # compaction is due when garbage exceeds this and a quarter of the region
BLOB_NONCE = bytes(12)  # safe: every blob key is fresh and seals exactly one plaintext, ever
DIGEST_SIZE = 32
_BLOB_AAD_DOMAIN = b"ftm-vault-v2 blob"
_U64 = (1 << 64) - 1


def encode_prelude(rid: bytes) -> bytes:
    """The file's first bytes; they depend only on the resident, so consecutive epochs share them."""
    return PACK_MAGIC + bytes((PACK_VERSION, len(rid))) + rid


def blob_aad(rid: bytes) -> bytes:
    return _BLOB_AAD_DOMAIN + bytes((len(rid),)) + rid


def encode_trailer(index_offset: int) -> bytes:
    return struct.pack(">Q", index_offset) + TRAILER_MAGIC


def decode_trailer(trailer: bytes) -> int | None:
    """The index offset, or None when the trailer magic is absent."""
    if len(trailer) != TRAILER_SIZE or trailer[8:] != TRAILER_MAGIC:
        return None
    return int.from_bytes(trailer[:8], "big")


@dataclass(frozen=True, slots=True)
class BlobRef:
    """One blob: its place in the file, its key and the SHA-256 of its plaintext (which binds the blob to this
    index even against someone who learned the key from an older epoch's index)."""

    offset: int
    size: int  # ciphertext with the tag
    key: bytes = field(repr=False)
    digest: bytes = field(repr=False)  # a hash of secret content: no repr either

    def __post_init__(self) -> None:
        if not 0 <= self.offset <= _U64:
            raise ValueError("blob offset out of range")
        if not TAG_SIZE < self.size <= BLOB_MAX + TAG_SIZE:
            raise ValueError("blob size out of range")
        if len(self.key) != KEY_SIZE or len(self.digest) != DIGEST_SIZE:
            raise ValueError("blob key and digest must be 32 bytes")

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def plain_size(self) -> int:
        return self.size - TAG_SIZE


@dataclass(frozen=True, slots=True)
class PackIndex:
    """The sealed index: part lengths per section, the blobs in stream order, and the unreferenced region bytes."""

    version: int
    sections: tuple[tuple[int, ...], ...]
    blobs: tuple[BlobRef, ...]
    garbage: int

    def __post_init__(self) -> None:
        if not all(0 <= length <= _U64 for section in self.sections for length in section):
            raise ValueError("part length out of range")
        if not 0 <= self.garbage <= _U64:
            raise ValueError("garbage out of range")

    def plaintext_size(self) -> int:
        return sum(sum(section) for section in self.sections)


class PackBase:
    """A packed epoch as opened: which file, and its index. Pass it to the next epoch's seal, which then carries
    unchanged blobs over byte for byte. Secret (it holds every blob key): memory only, and its repr shows none."""

    __slots__ = ("epoch", "file_size", "index", "index_digest", "index_offset", "path", "resident_id")

    def __init__(
        self,
        *,
        path: Path,
        resident_id: str,
        epoch: int,
        file_size: int,
        index_offset: int,
        index_digest: bytes,
        index: PackIndex,
    ) -> None:
        self.path = path
        self.resident_id = resident_id
        self.epoch = epoch
        self.file_size = file_size
        self.index_offset = index_offset
        self.index_digest = index_digest  # SHA-256 of the file from the index on: which file this is
        self.index = index

    def __repr__(self) -> str:
        return f"PackBase(resident_id={self.resident_id!r}, epoch={self.epoch}, blobs={len(self.index.blobs)})"


def pread_into(fd: int, view: memoryview, offset: int) -> int:
    """Fill `view` from the file at `offset`, stopping early only at end of file; the number of bytes read."""
    filled = 0
    while filled < len(view):
        got = os.preadv(fd, [view[filled:]], offset + filled)
        if not got:
            break
        filled += got
    return filled


def pread_exact(fd: int, size: int, offset: int) -> bytes:
    """Up to `size` bytes at `offset` (fewer only at end of file)."""
    buffer = bytearray(size)
    return bytes(buffer[: pread_into(fd, memoryview(buffer), offset)])
