"""Vault file format version 2 ("packed"): opening, resealing, and the async API over sealing.

A persona package is sections of parts (`Contents.sections`). Sealed packed, it is cut into blobs, each
encrypted once under its own random key; the next epoch's seal carries every unchanged blob over byte for byte
at the front of its file (`ftm.node.vaultseal`), so consecutive epoch files share a long common prefix and
keepers only receive what changed. A small index sealed under the epoch key (a version-1 vault stream) holds
the blob keys: destroying an epoch key makes every blob only that epoch referenced unreadable.

Opening verifies everything before returning anything: trailer, prelude, index (under the epoch key, so a file
of another epoch or resident is refused), bounds of every blob, sizes against `max_bytes` before decrypting, then
each blob's tag and SHA-256. Version-1 files (`ftm.node.vault`) still open, as one section of one part, and
reseal as version 1. Every failure is a `VaultIntegrityError` naming the check, never content. Each async
operation runs whole in one worker thread. The byte-exact format is in `docs/vault.md` §5.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ftm.federation import codec
from ftm.node.errors import LimitExceeded
from ftm.node.vault import VaultReader, VaultWriter, read_plaintext, resident_id_bytes
from ftm.node.vaultformat import (
    RESIDENT_ID_PATTERN,
    TAG_SIZE,
    VaultFailure,
    WritableBinary,
    check_epoch_and_key,
    refused,
)
from ftm.node.vaultindex import (
    BLOB_MAX,
    BLOB_NONCE,
    INDEX_MAX,
    INDEX_VERSION,
    PACK_MAGIC,
    PACK_VERSION,
    TRAILER_SIZE,
    BlobRef,
    PackBase,
    PackIndex,
    blob_aad,
    decode_trailer,
    encode_prelude,
    pread_exact,
    pread_into,
)
from ftm.node.vaultseal import PackWriter, SealStats, seal_sync

__all__ = [
    "Contents",
    "PackBase",
    "SealStats",
    "open_contents",
    "open_sync",
    "reseal_sync",
    "seal_contents",
    "seal_sync",
]

# An index stream of INDEX_MAX plaintext: header (at most 149 bytes), a tag per MiB chunk, and slack.
_INDEX_WINDOW_MAX = INDEX_MAX + 4096


@dataclass(frozen=True, slots=True)
class Contents:
    """An opened epoch. `sections` is the plaintext (a version-1 file gives `((plaintext,),)`), kept out of repr."""

    sections: tuple[tuple[bytes, ...], ...] = field(repr=False)
    packed: bool  # False for a version-1 file
    base: PackBase | None = field(repr=False)  # for the next epoch's seal; None for a version-1 file


@dataclass(frozen=True, slots=True)
class _Layout:
    prelude_size: int
    index_offset: int
    index_digest: bytes
    index: PackIndex


def _read_layout(fd: int, size: int, resident_id: str, epoch: int, key: bytes) -> _Layout:
    """Check the prelude and trailer, open the index under the epoch key, and check every blob lies in the region."""
    rid = resident_id_bytes(resident_id)
    start = pread_exact(fd, 6, 0)
    if len(start) < 6:
        raise refused(VaultFailure.TRUNCATED, "vault file is truncated inside the prelude")
    if start[4] != PACK_VERSION:
        raise refused(VaultFailure.UNSUPPORTED_VERSION, f"unsupported vault format version {start[4]}")
    prelude = pread_exact(fd, 6 + start[5], 0)
    if len(prelude) < 6 + start[5] or size < len(prelude) + TRAILER_SIZE:
        raise refused(VaultFailure.TRUNCATED, "vault file is too short for its prelude and trailer")
    if not RESIDENT_ID_PATTERN.fullmatch(prelude[6:].decode("ascii", errors="replace")):
        raise refused(VaultFailure.MALFORMED_HEADER, "vault prelude holds a malformed resident id")
    if prelude != encode_prelude(rid):
        raise refused(VaultFailure.WRONG_RESIDENT, f"vault file belongs to another resident, not {resident_id}")
    index_offset = decode_trailer(pread_exact(fd, TRAILER_SIZE, size - TRAILER_SIZE))
    if index_offset is None or not len(prelude) <= index_offset <= size - TRAILER_SIZE:
        raise refused(VaultFailure.BAD_TRAILER, "no valid pack trailer (cut short, appended to, or altered)")
    window = size - TRAILER_SIZE - index_offset
    if window > _INDEX_WINDOW_MAX:
        raise refused(VaultFailure.MALFORMED_INDEX, "vault index is larger than the format allows")
    tail = pread_exact(fd, window + TRAILER_SIZE, index_offset)
    try:
        encoded = read_plaintext(io.BytesIO(tail[:window]), window, resident_id, epoch, key, INDEX_MAX)
        index = codec.decode(PackIndex, encoded, max_bytes=INDEX_MAX)
    except LimitExceeded:
        raise refused(VaultFailure.MALFORMED_INDEX, "vault index is larger than the format allows") from None
    except codec.DecodeError as exc:  # the message names the field, never a value
        raise refused(VaultFailure.MALFORMED_INDEX, f"vault index does not decode: {exc}") from None
    if index.version != INDEX_VERSION:
        raise refused(VaultFailure.UNSUPPORTED_VERSION, f"unsupported vault index version {index.version}")
    for number, ref in enumerate(index.blobs):
        if ref.offset < len(prelude) or ref.end > index_offset:
            raise refused(VaultFailure.MALFORMED_INDEX, f"blob {number} lies outside the region", chunk=number)
    if sum(ref.plain_size for ref in index.blobs) != index.plaintext_size():
        raise refused(VaultFailure.MALFORMED_INDEX, "vault index blob sizes do not add up to its part lengths")
    if index.garbage > index_offset - len(prelude):
        raise refused(VaultFailure.MALFORMED_INDEX, "vault index counts more garbage than the region holds")
    return _Layout(len(prelude), index_offset, hashlib.sha256(tail).digest(), index)


class _BlobReader:
    """Reads, authenticates and checks blobs one at a time, into buffers reused from blob to blob."""

    def __init__(self, fd: int, rid: bytes) -> None:
        self._fd = fd
        self._aad = blob_aad(rid)
        self._sealed = bytearray()
        self._plain = bytearray()

    def read(self, number: int, ref: BlobRef) -> memoryview:
        """The blob's verified plaintext; valid until the next call."""
        if len(self._sealed) < ref.size:
            self._sealed = bytearray(min(BLOB_MAX, max(ref.plain_size, 2 * len(self._plain))) + TAG_SIZE)
            self._plain = bytearray(len(self._sealed) - TAG_SIZE)
        sealed = memoryview(self._sealed)[: ref.size]
        plain = memoryview(self._plain)[: ref.plain_size]
        if pread_into(self._fd, sealed, ref.offset) != ref.size:
            raise refused(VaultFailure.TRUNCATED, "vault file changed while it was being read", chunk=number)
        try:
            AESGCM(ref.key).decrypt_into(BLOB_NONCE, sealed, self._aad, plain)
        except InvalidTag:
            raise refused(VaultFailure.BLOB_AUTH, f"blob {number} failed authentication", chunk=number) from None
        if hashlib.sha256(plain).digest() != ref.digest:
            raise refused(VaultFailure.BLOB_DIGEST, f"blob {number} does not match its digest", chunk=number)
        return plain


class _Parts:
    """Splits the stream of blob plaintexts back into sections of parts, one copy per byte."""

    def __init__(self, sections: tuple[tuple[int, ...], ...]) -> None:
        self._lengths = [(number, length) for number, section in enumerate(sections) for length in section]
        self._next = 0
        self._out: list[list[bytes]] = [[] for _ in sections]
        self._partial: io.BytesIO | None = None  # a part spanning blobs, filled in place
        self._filled = 0

    def feed(self, view: memoryview) -> None:
        while True:
            self._finish_empty()
            if not view:
                return
            section, length = self._lengths[self._next]
            if self._partial is None and len(view) >= length:
                self._out[section].append(bytes(view[:length]))
                self._next += 1
                view = view[length:]
                continue
            if self._partial is None:
                self._partial, self._filled = io.BytesIO(bytes(length)), 0
            take = min(length - self._filled, len(view))
            with self._partial.getbuffer() as target:
                target[self._filled : self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            if self._filled == length:
                self._out[section].append(self._partial.getvalue())  # no copy: the buffer is released
                self._partial = None
                self._next += 1

    def _finish_empty(self) -> None:
        while self._next < len(self._lengths) and self._lengths[self._next][1] == 0 and self._partial is None:
            self._out[self._lengths[self._next][0]].append(b"")
            self._next += 1

    def result(self) -> tuple[tuple[bytes, ...], ...]:
        self._finish_empty()
        if self._next != len(self._lengths):  # unreachable once sizes were checked against the index
            raise refused(VaultFailure.MALFORMED_INDEX, "vault blobs end before the last part")
        return tuple(tuple(section) for section in self._out)


def open_sync(path: Path, resident_id: str, epoch: int, key: bytes, max_bytes: int) -> Contents:
    """Verify and decrypt a vault file of either version; `LimitExceeded` (before decrypting) past `max_bytes`."""
    rid = resident_id_bytes(resident_id)
    check_epoch_and_key(epoch, key)
    with open(path, "rb", buffering=0) as source:
        fd, size = source.fileno(), os.fstat(source.fileno()).st_size
        if pread_exact(fd, len(PACK_MAGIC), 0) != PACK_MAGIC:  # a version-1 file, or no vault file at all
            plaintext = read_plaintext(source, size, resident_id, epoch, key, max_bytes)
            return Contents(((plaintext,),), packed=False, base=None)
        layout = _read_layout(fd, size, resident_id, epoch, key)
        if layout.index.plaintext_size() > max_bytes:
            raise LimitExceeded(f"vault file holds more than the {max_bytes} bytes allowed")
        reader, parts = _BlobReader(fd, rid), _Parts(layout.index.sections)
        for number, ref in enumerate(layout.index.blobs):
            parts.feed(reader.read(number, ref))
        base = PackBase(
            path=path,
            resident_id=resident_id,
            epoch=epoch,
            file_size=size,
            index_offset=layout.index_offset,
            index_digest=layout.index_digest,
            index=layout.index,
        )
        return Contents(parts.result(), packed=True, base=base)


def reseal_sync(
    src: Path, sink: WritableBinary, resident_id: str, epoch: int, key: bytes, new_epoch: int, new_key: bytes
) -> None:
    """Write the vault file `src` (`epoch` under `key`) to `sink` resealed as `new_epoch` under `new_key`, in the
    same version. A packed file goes blob by blob, each under a new random key, garbage dropped; memory stays a
    few blobs whatever the size. Any failed check of `src` raises, possibly after some bytes went to `sink`."""
    rid = resident_id_bytes(resident_id)
    check_epoch_and_key(new_epoch, new_key)
    with open(src, "rb", buffering=0) as source:
        fd, size = source.fileno(), os.fstat(source.fileno()).st_size
        if pread_exact(fd, len(PACK_MAGIC), 0) != PACK_MAGIC:
            with VaultWriter(sink, resident_id, new_epoch, new_key) as out:
                for view in VaultReader(source, resident_id, epoch, key).views():
                    out.write(view)
            return
        layout = _read_layout(fd, size, resident_id, epoch, key)
        reader, writer = _BlobReader(fd, rid), PackWriter(sink, rid)
        writer.write(encode_prelude(rid))
        placed: dict[BlobRef, BlobRef] = {}  # a blob the index lists twice is resealed once
        for number, ref in enumerate(layout.index.blobs):
            if ref not in placed:
                placed[ref] = writer.encrypt_blob((reader.read(number, ref),), ref.plain_size, ref.digest)
        blobs = tuple(placed[ref] for ref in layout.index.blobs)
        writer.finish(resident_id, new_epoch, new_key, PackIndex(INDEX_VERSION, layout.index.sections, blobs, 0))


async def open_contents(path: Path, resident_id: str, epoch: int, key: bytes, *, max_bytes: int) -> Contents:
    """Verify and decrypt the vault file at `path` (either version), in one worker thread."""
    return await asyncio.to_thread(open_sync, path, resident_id, epoch, key, max_bytes)


async def seal_contents(
    path: Path,
    resident_id: str,
    epoch: int,
    key: bytes,
    sections: Sequence[Sequence[bytes]],
    *,
    base: PackBase | None = None,
) -> SealStats:
    """Seal `sections` packed at `path` (atomically), carrying unchanged blobs over from `base`, in one thread."""
    return await asyncio.to_thread(seal_sync, path, resident_id, epoch, key, sections, base)
