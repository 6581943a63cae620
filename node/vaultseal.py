"""Sealing a packed (version 2) vault file, carrying over from the previous epoch what did not change.

Each blob of the cut (`ftm.node.vaultcut`) whose plaintext digest matches a blob of the base (the previous epoch as
opened) is reused as it is: same ciphertext, same key, and, unless compaction is due, the same offset, because the
base file's whole region is copied to the front of the new file byte for byte. Only new blobs are encrypted, each
under a fresh random key, and appended; the index, sealed under the new epoch key, lists the blobs in use. So two
consecutive epoch files share a byte prefix covering every unchanged blob, which is what keepers exploit.

A base is used only when the file on disk is the one that was opened (size, prelude, and a hash of its index and
trailer), and every reused blob is authenticated under its key while it is copied: a base damaged since it was
opened is dropped and the plaintext sealed from scratch, so a new epoch never inherits damage. Sync code, run
whole in a worker thread by `ftm.node.vaultpack`. The format is in `docs/vault.md` §5.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ftm.federation import codec
from ftm.node.atomicfile import write_atomically
from ftm.node.errors import LimitExceeded
from ftm.node.vault import VaultWriter, resident_id_bytes
from ftm.node.vaultcut import PlannedBlob, cut
from ftm.node.vaultformat import KEY_SIZE, TAG_SIZE, WritableBinary, check_epoch_and_key
from ftm.node.vaultindex import (
    BLOB_MAX,
    BLOB_NONCE,
    COMPACT_MIN_GARBAGE,
    INDEX_MAX,
    INDEX_VERSION,
    TRAILER_SIZE,
    BlobRef,
    PackBase,
    PackIndex,
    blob_aad,
    encode_prelude,
    encode_trailer,
    pread_exact,
    pread_into,
)

logger = logging.getLogger(__name__)

_COPY_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class SealStats:
    """What a seal did: how much was carried over from the base and how much was newly encrypted."""

    file_size: int
    blobs: int  # in the index (stream order, duplicates counted)
    reused_blobs: int  # of those, carried over from the base
    new_blobs: int  # encrypted by this seal
    encrypted_bytes: int  # plaintext bytes encrypted by this seal
    copied_bytes: int  # bytes copied from the base file
    garbage: int  # region bytes no blob in the index refers to
    base_used: bool
    compacted: bool


class BaseDamaged(Exception):
    """The base file no longer holds what was opened; the seal starts over without it."""


class PackWriter:
    """Writes a packed file's parts in order to a sink, counting the offset (relative to the file's start)."""

    def __init__(self, sink: WritableBinary, rid: bytes, randbytes: Callable[[int], bytes] = os.urandom) -> None:
        self._sink = sink
        self._randbytes = randbytes
        self.pos = 0
        self.aad = blob_aad(rid)
        self._plain = bytearray()
        self._sealed = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._sink.write(data)
        self.pos += len(data)

    def encrypt_blob(self, pieces: Sequence[bytes | bytearray | memoryview], size: int, digest: bytes) -> BlobRef:
        """Encrypt one blob under a fresh key, append it, and return its reference."""
        if len(pieces) == 1:
            plain = memoryview(pieces[0])
        else:  # gather into one reused buffer: GCM needs the blob contiguous
            if len(self._plain) < size:
                self._plain = bytearray(min(BLOB_MAX, max(size, 2 * len(self._plain))))
            plain, filled = memoryview(self._plain)[:size], 0
            for piece in pieces:
                plain[filled : filled + len(piece)] = piece
                filled += len(piece)
        if len(self._sealed) < size + TAG_SIZE:
            self._sealed = bytearray(min(BLOB_MAX, max(size, 2 * len(self._sealed))) + TAG_SIZE)
        sealed = memoryview(self._sealed)[: size + TAG_SIZE]
        key = self._randbytes(KEY_SIZE)
        AESGCM(key).encrypt_into(BLOB_NONCE, plain, self.aad, sealed)
        ref = BlobRef(self.pos, size + TAG_SIZE, key, digest)
        self.write(sealed)
        return ref

    def finish(self, resident_id: str, epoch: int, key: bytes, index: PackIndex) -> None:
        """The index, sealed under the epoch key, and the trailer that points at it."""
        encoded = codec.encode(index)
        if len(encoded) > INDEX_MAX:
            raise LimitExceeded(f"a packed vault index holds at most {INDEX_MAX} bytes")
        index_offset = self.pos
        with VaultWriter(self, resident_id, epoch, key, randbytes=self._randbytes) as writer:
            writer.write(encoded)
        self.write(encode_trailer(index_offset))


class _BaseCopier:
    """Reads blobs and region bytes out of the base file, authenticating every blob that is reused."""

    def __init__(self, fd: int, aad: bytes) -> None:
        self._fd = fd
        self._aad = aad
        self._buffer = bytearray(BLOB_MAX + TAG_SIZE)
        self._scratch = bytearray(BLOB_MAX)

    def blob(self, ref: BlobRef) -> memoryview:
        view = memoryview(self._buffer)[: ref.size]
        if pread_into(self._fd, view, ref.offset) != ref.size:
            raise BaseDamaged("the base file is shorter than its index says")
        try:
            AESGCM(ref.key).decrypt_into(BLOB_NONCE, view, self._aad, memoryview(self._scratch)[: ref.plain_size])
        except InvalidTag:
            raise BaseDamaged("a reused blob of the base file no longer authenticates") from None
        return view

    def raw(self, out: PackWriter, start: int, end: int) -> None:
        while start < end:
            view = memoryview(self._buffer)[: min(_COPY_SIZE, end - start)]
            if pread_into(self._fd, view, start) != len(view):
                raise BaseDamaged("the base file is shorter than its index says")
            out.write(view)
            start += len(view)


def _base_matches(fd: int, base: PackBase, prelude: bytes) -> bool:
    """Whether the open file is the one `base` was opened from (and the index it holds is that file's)."""
    if os.fstat(fd).st_size != base.file_size or pread_exact(fd, len(prelude), 0) != prelude:
        return False
    tail = pread_exact(fd, base.file_size - base.index_offset, base.index_offset)
    return tail[-TRAILER_SIZE:] == encode_trailer(base.index_offset) and (
        hashlib.sha256(tail).digest() == base.index_digest
    )


def seal_sync(
    path: Path,
    resident_id: str,
    epoch: int,
    key: bytes,
    sections: Sequence[Sequence[bytes]],
    base: PackBase | None = None,
    *,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> SealStats:
    """Seal `sections` as a packed file at `path` (atomically), reusing what it can of `base`. `randbytes` (blob
    keys, the index's salt and nonce prefix) exists only to reproduce the documented test vector."""
    rid = resident_id_bytes(resident_id)
    check_epoch_and_key(epoch, key)
    plan = cut(sections)
    lengths = tuple(tuple(len(part) for part in section) for section in sections)
    if base is not None and base.resident_id == resident_id:
        try:
            with open(base.path, "rb", buffering=0) as source:
                if _base_matches(source.fileno(), base, encode_prelude(rid)):
                    return _seal(path, resident_id, epoch, key, plan, lengths, (source.fileno(), base), randbytes)
                logger.warning("vault base for resident %s is not the file that was opened; sealing whole", resident_id)
        except FileNotFoundError:
            logger.warning("vault base file for resident %s is gone; sealing whole", resident_id)
        except BaseDamaged as exc:
            logger.warning("vault base for resident %s unusable (%s); sealing whole", resident_id, exc)
    return _seal(path, resident_id, epoch, key, plan, lengths, None, randbytes)


def _seal(
    path: Path,
    resident_id: str,
    epoch: int,
    key: bytes,
    plan: list[PlannedBlob],
    lengths: tuple[tuple[int, ...], ...],
    base: tuple[int, PackBase] | None,
    randbytes: Callable[[int], bytes],
) -> SealStats:
    rid = resident_id_bytes(resident_id)
    prelude = encode_prelude(rid)
    known = {ref.digest: ref for ref in base[1].index.blobs} if base else {}
    # Base blobs this epoch still uses, once each, in file order; overlapping ones mean a base not of our making.
    kept = sorted({known[blob.digest] for blob in plan if blob.digest in known}, key=lambda ref: ref.offset)
    if any(a.end > b.offset for a, b in itertools.pairwise(kept)):
        raise BaseDamaged("the base index has overlapping blobs")
    region = base[1].index_offset - len(prelude) if base else 0
    garbage = region - sum(ref.size for ref in kept)
    fresh = {blob.digest: blob.size + TAG_SIZE for blob in plan if blob.digest not in known}
    compact = garbage > COMPACT_MIN_GARBAGE and 4 * garbage > region + sum(fresh.values())
    counts = {"copied": 0, "encrypted": 0}

    def produce(sink: WritableBinary) -> None:
        out = PackWriter(sink, rid, randbytes)
        out.write(prelude)
        placed: dict[bytes, BlobRef] = {}
        if base is not None:
            copier = _BaseCopier(base[0], out.aad)
            for ref in kept:
                if not compact:  # the whole region stays where it was: copy the garbage before this blob too
                    copier.raw(out, out.pos, ref.offset)
                verified = copier.blob(ref)
                placed[ref.digest] = BlobRef(out.pos, ref.size, ref.key, ref.digest)
                out.write(verified)
            if not compact:
                copier.raw(out, out.pos, base[1].index_offset)
            counts["copied"] = out.pos - len(prelude)
        for blob in plan:
            if blob.digest not in placed:
                placed[blob.digest] = out.encrypt_blob(blob.pieces, blob.size, blob.digest)
                counts["encrypted"] += blob.size
        index = PackIndex(
            INDEX_VERSION, lengths, tuple(placed[blob.digest] for blob in plan), 0 if compact else garbage
        )
        out.finish(resident_id, epoch, key, index)

    size = write_atomically(path, produce)
    stats = SealStats(
        file_size=size,
        blobs=len(plan),
        reused_blobs=sum(1 for blob in plan if blob.digest in known),
        new_blobs=len(fresh),
        encrypted_bytes=counts["encrypted"],
        copied_bytes=counts["copied"],
        garbage=0 if compact else garbage,
        base_used=base is not None,
        compacted=compact,
    )
    logger.debug(
        "sealed resident %s epoch %d: %d bytes encrypted, %d copied from the base, %d blobs reused of %d",
        resident_id,
        epoch,
        stats.encrypted_bytes,
        stats.copied_bytes,
        stats.reused_blobs,
        stats.blobs,
    )
    return stats
