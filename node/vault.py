"""The vault: the only code that encrypts and decrypts persona packages, and the format of a sealed file.

A vault file is a plaintext header followed by a STREAM of AES-256-GCM chunks (Tink/age style): 1 MiB of
plaintext per chunk, a nonce made of a per-file random prefix, the chunk counter and a last-chunk flag, and
associated data binding the resident, the key epoch, the chunk index and a hash of the whole header. GCM is
not key-committing, so the header carries a commitment derived from the key, checked before anything is
decrypted. The byte-exact format is in `docs/vault.md`.

The sync core (`VaultWriter`, `VaultReader`) streams with memory bounded by a few chunks whatever the size;
iterating a `VaultReader` is how a caller streams a package too large to hold whole. The async functions run one
whole operation per worker thread, so crypto never blocks the event loop. Sealing to a path is atomic
(`ftm.node.atomicfile`). Nothing here writes plaintext anywhere: opening returns it in memory or streams it to
the caller. Where residents' files live is `ftm.node.vaultstore`.

Errors: a file that fails any check raises `VaultIntegrityError`, whose `reason` says which check and whose
message names the reason and chunk index, never content. Caller mistakes (a malformed resident id, a key of
the wrong length) raise `ValueError`.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

from cryptography.exceptions import InvalidTag

from ftm.node.atomicfile import write_atomically
from ftm.node.errors import LimitExceeded
from ftm.node.vaultformat import (
    CHUNK_SIZE,
    FIRST_READ,
    KEY_SIZE,
    MAX_CHUNKS,
    MAX_EPOCH,
    NONCE_PREFIX_SIZE,
    SALT_SIZE,
    TAG_SIZE,
    ChunkStream,
    ReadableBinary,
    VaultFailure,
    VaultIntegrityError,
    WritableBinary,
    check_epoch_and_key,
    derive_keys,
    encode_header,
    new_epoch_key,
    parse_header,
    read_exact_into,
    refused,
    resident_id_bytes,
)

# The vault is the one door for sealing and opening; these format names are part of its surface.
__all__ = [
    "CHUNK_SIZE",
    "KEY_SIZE",
    "MAX_EPOCH",
    "VaultFailure",
    "VaultIntegrityError",
    "VaultReader",
    "VaultWriter",
    "new_epoch_key",
    "open_bytes",
    "read_plaintext",
    "resident_id_bytes",
    "seal_bytes",
    "seal_file",
]


class VaultWriter:
    """Seal a stream into `sink`: the header at once, chunks as data arrives, the last chunk on `close()`.

    Leaving the `with` block by an exception does not write the last chunk, so an interrupted stream can never
    pass for a complete one (a reader reports it as truncated). The sink is not closed; its owner closes it.
    `randbytes` exists only to reproduce the documented test vector.
    """

    def __init__(
        self,
        sink: WritableBinary,
        resident_id: str,
        epoch: int,
        key: bytes,
        *,
        randbytes: Callable[[int], bytes] = secrets.token_bytes,
        _chunk_size: int = CHUNK_SIZE,
    ) -> None:
        rid = resident_id_bytes(resident_id)
        check_epoch_and_key(epoch, key)
        salt, prefix = randbytes(SALT_SIZE), randbytes(NONCE_PREFIX_SIZE)
        aead_key, commitment = derive_keys(key, salt)
        header = encode_header(rid, epoch, salt, prefix, commitment)
        self._sink = sink
        self._stream = ChunkStream(header, rid, epoch, aead_key, prefix)
        self._chunk_size = _chunk_size
        # Plaintext not yet sealed (the first `_fill` bytes): a full chunk waits here until more data proves it
        # is not the last. Buffers grow on demand up to a chunk, so a small package never pays for 1 MiB ones.
        self._pending = bytearray()
        self._fill = 0
        self._spare = bytearray()  # second read buffer, only for copy_from
        self._out = bytearray()
        self._index = 0
        self._closed = False
        sink.write(header)

    def _seal(self, chunk: memoryview, last: bool) -> None:
        if self._index >= MAX_CHUNKS or (not last and self._index == MAX_CHUNKS - 1):
            raise LimitExceeded(f"a vault file holds at most {MAX_CHUNKS} chunks")
        if len(self._out) < len(chunk) + TAG_SIZE:
            self._out = bytearray(len(chunk) + TAG_SIZE)
        out = memoryview(self._out)[: len(chunk) + TAG_SIZE]
        stream = self._stream
        stream.aead.encrypt_into(stream.nonce(self._index, last), chunk, stream.aad(self._index), out)
        self._sink.write(out)
        self._index += 1

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Add plaintext. Full chunks are sealed as soon as more data proves they are not the last."""
        if self._closed:
            raise ValueError("write to a closed VaultWriter")
        size = self._chunk_size
        view = memoryview(data).cast("B")
        while view:
            if self._fill == size:
                self._seal(memoryview(self._pending)[:size], last=False)
                self._fill = 0
            if self._fill == 0 and len(view) > size:
                # Seal straight from the caller's buffer: a chunk that has data after it needs no copy.
                self._seal(view[:size], last=False)
                view = view[size:]
                continue
            take = min(size - self._fill, len(view))
            end = self._fill + take
            if end > len(self._pending):
                grown = min(size, max(end, 2 * len(self._pending)))
                self._pending.extend(bytes(grown - len(self._pending)))
            self._pending[self._fill : end] = view[:take]
            self._fill = end
            view = view[take:]

    def copy_from(self, source: ReadableBinary) -> None:
        """Seal everything `source` yields until end of file, reading straight into the chunk buffers."""
        if self._closed:
            raise ValueError("write to a closed VaultWriter")
        size = self._chunk_size
        for buffer in (self._pending, self._spare):
            buffer.extend(bytes(size - len(buffer)))
        while True:
            if self._fill < size:
                got = read_exact_into(source, memoryview(self._pending)[self._fill :])
                self._fill += got
                if self._fill < size:
                    return
            # A full pending chunk is sealed only once the next read shows more data follows.
            got = read_exact_into(source, memoryview(self._spare))
            if got == 0:
                return
            self._seal(memoryview(self._pending), last=False)
            self._pending, self._spare = self._spare, self._pending
            self._fill = got

    def close(self) -> None:
        """Seal the pending plaintext as the last chunk (empty only if the whole stream was empty)."""
        if self._closed:
            return
        self._seal(memoryview(self._pending)[: self._fill], last=True)
        self._closed = True

    def __enter__(self) -> VaultWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._closed = True


class VaultReader:
    """Open a vault stream: the constructor checks the header against the caller's expectations and the key.

    Iterating yields verified plaintext chunks. Each chunk is authentic when yielded, but the stream is known
    to be complete (not truncated, nothing appended) only when iteration ends without an error, so consumers
    must not act on the content before that.
    """

    def __init__(
        self,
        source: ReadableBinary,
        resident_id: str,
        epoch: int,
        key: bytes,
        *,
        _chunk_size: int = CHUNK_SIZE,
    ) -> None:
        rid = resident_id_bytes(resident_id)
        check_epoch_and_key(epoch, key)
        header = parse_header(source)
        # Identity comes from the caller, never from the header: the header is only checked against it.
        if header.resident_id != resident_id:
            raise refused(VaultFailure.WRONG_RESIDENT, f"vault file belongs to another resident, not {resident_id}")
        if header.epoch != epoch:
            raise refused(VaultFailure.WRONG_EPOCH, f"vault file is not sealed for key epoch {epoch}")
        aead_key, commitment = derive_keys(key, header.salt)
        if not hmac.compare_digest(commitment, header.commitment):
            raise refused(VaultFailure.WRONG_KEY, "wrong key: the key commitment does not match (or was altered)")
        self._source = source
        self.header_size = len(header.raw)
        self._stream = ChunkStream(header.raw, rid, epoch, aead_key, header.nonce_prefix)
        self._chunk_size = _chunk_size
        self._started = False

    def plaintext_bound(self, file_size: int) -> int:
        """The plaintext size a well-formed file of `file_size` bytes holds: lets callers refuse early."""
        body = max(file_size - self.header_size, 0)
        enc = self._chunk_size + TAG_SIZE
        return max(body - TAG_SIZE * max(-(-body // enc), 1), 0)

    def _segments(self) -> Iterator[tuple[memoryview, int, bool]]:
        """Ciphertext chunks with their index and whether they are last; each view is valid until the next."""
        if self._started:
            raise ValueError("a VaultReader can be read only once")
        self._started = True
        enc = self._chunk_size + TAG_SIZE
        current, following = bytearray(), bytearray()
        length = self._read_segment(current)
        if length == 0:
            raise refused(VaultFailure.TRUNCATED, "vault file is truncated: no chunks after the header")
        index = 0
        while True:
            # Only a full chunk can have another after it; peek to learn whether this one is the last.
            after = self._read_segment(following) if length == enc else 0
            if length < TAG_SIZE:
                raise refused(VaultFailure.TRUNCATED, f"vault file is truncated inside chunk {index}", chunk=index)
            if after and index == MAX_CHUNKS - 1:
                raise refused(VaultFailure.TRAILING_DATA, "vault file has more chunks than the format allows")
            yield memoryview(current)[:length], index, after == 0
            if after == 0:
                return
            current, following, length = following, current, after
            index += 1

    def _read_segment(self, buffer: bytearray) -> int:
        """Read one encrypted chunk into `buffer`, growing it up to a full chunk only as the data requires."""
        enc = self._chunk_size + TAG_SIZE
        got = read_exact_into(self._source, memoryview(buffer))
        while got == len(buffer) < enc:
            # Full so far but not a whole chunk: there may be more. Small files keep small buffers; a buffer
            # only grows before its first full chunk, so no view handed out can pin it.
            buffer.extend(bytes(min(enc, max(FIRST_READ, 2 * len(buffer))) - len(buffer)))
            got += read_exact_into(self._source, memoryview(buffer)[got:])
        return got

    def _diagnose(self, segment: memoryview, index: int, last: bool) -> VaultIntegrityError:
        """Name the failure: a chunk that verifies under the other last-flag was cut off or appended to."""
        stream = self._stream
        try:
            stream.aead.decrypt(stream.nonce(index, not last), segment, stream.aad(index))
        except InvalidTag:
            return refused(
                VaultFailure.CHUNK_AUTH,
                f"chunk {index} failed authentication (tampered, swapped, reordered, cut or appended to)",
                chunk=index,
            )
        if last:
            return refused(VaultFailure.TRUNCATED, f"vault file is truncated: it ends after chunk {index}", chunk=index)
        return refused(VaultFailure.TRAILING_DATA, f"trailing data after the last chunk {index}", chunk=index)

    def _decrypt(self, into: memoryview | None) -> Iterator[memoryview]:
        """Verified plaintext chunks, decrypted into consecutive slices of `into` or one reused buffer."""
        stream = self._stream
        scratch = memoryview(bytearray())
        offset = 0
        for segment, index, last in self._segments():
            size = len(segment) - TAG_SIZE
            overflow = into is not None and offset + size > len(into)
            if into is None or overflow:
                # Also when `into` is too small: authenticate first, so a damaged file reports the damage.
                if len(scratch) < size:  # sized to the largest chunk so far: small files stay small
                    scratch = memoryview(bytearray(size))
                view = scratch[:size]
            else:
                view = into[offset : offset + size]
            try:
                stream.aead.decrypt_into(stream.nonce(index, last), segment, stream.aad(index), view)
            except InvalidTag:
                raise self._diagnose(segment, index, last) from None
            if overflow:
                raise LimitExceeded("vault file holds more plaintext than the space given for it")
            if last and index > 0 and size == 0:
                raise refused(VaultFailure.NON_CANONICAL, f"empty last chunk {index} after data", chunk=index)
            offset += size
            yield view

    def __iter__(self) -> Iterator[bytes]:
        for view in self._decrypt(None):
            yield bytes(view)

    def views(self) -> Iterator[memoryview]:
        """Iteration without copies: each view points into one reused buffer and is valid until the next."""
        return self._decrypt(None)

    def read_into(self, out: memoryview) -> int:
        """Decrypt the whole stream straight into `out`; the plaintext size (`LimitExceeded` if larger)."""
        total = 0
        for view in self._decrypt(out):
            total += len(view)
        return total


def _seal_bytes_sync(path: Path, resident_id: str, epoch: int, key: bytes, plaintext: bytes) -> int:
    def produce(sink: WritableBinary) -> None:
        with VaultWriter(sink, resident_id, epoch, key) as writer:
            writer.write(plaintext)

    return write_atomically(path, produce)


def _seal_file_sync(src: Path, dst: Path, resident_id: str, epoch: int, key: bytes) -> int:
    def produce(sink: WritableBinary) -> None:
        # Unbuffered: the writer reads whole chunks itself, so a buffer would only add a copy.
        with open(src, "rb", buffering=0) as source, VaultWriter(sink, resident_id, epoch, key) as writer:
            writer.copy_from(source)

    return write_atomically(dst, produce)


def read_plaintext(
    source: ReadableBinary, size: int, resident_id: str, epoch: int, key: bytes, max_bytes: int
) -> bytes:
    """Verify and decrypt the whole vault stream `source` (`size` bytes of it) into one bytes object.

    `LimitExceeded`, before decrypting, if the stream holds more than `max_bytes` of plaintext. The sync core of
    `open_bytes`; `ftm.node.vaultpack` also reads version-1 files and its sealed index through it.
    """
    reader = VaultReader(source, resident_id, epoch, key)
    bound = reader.plaintext_bound(size)
    if bound > max_bytes:
        raise LimitExceeded(f"vault file holds more than the {max_bytes} bytes allowed")
    # Decrypt straight into the bytes object that is returned: BytesIO adopts `bytes(bound)` (calloc'd, so not
    # touched yet) and getvalue() hands it back without a copy once the view is released. Building it from
    # chunks instead costs a second pass over fresh memory, which halves throughput on 64 MiB.
    result = io.BytesIO(bytes(bound))
    with result.getbuffer() as out:
        filled = reader.read_into(out)
    if filled != bound:  # only a file that changed while being read can disagree with its size
        raise refused(VaultFailure.TRUNCATED, "vault file changed while it was being read")
    return result.getvalue()


def _open_bytes_sync(path: Path, resident_id: str, epoch: int, key: bytes, max_bytes: int) -> bytes:
    with open(path, "rb", buffering=0) as source:
        return read_plaintext(source, os.fstat(source.fileno()).st_size, resident_id, epoch, key, max_bytes)


async def seal_bytes(path: Path, resident_id: str, epoch: int, key: bytes, plaintext: bytes) -> int:
    """Seal `plaintext` for (resident, epoch) into `path`, atomically replacing any file; returns its size."""
    # One thread hand-off for the whole operation: per-chunk hand-offs would cost more than they free.
    # If the awaiting task is cancelled the thread still finishes: the file exists but nothing refers to it.
    return await asyncio.to_thread(_seal_bytes_sync, path, resident_id, epoch, key, plaintext)


async def open_bytes(path: Path, resident_id: str, epoch: int, key: bytes, *, max_bytes: int) -> bytes:
    """Verify and decrypt the whole file; `LimitExceeded` if it holds more than `max_bytes` of plaintext."""
    return await asyncio.to_thread(_open_bytes_sync, path, resident_id, epoch, key, max_bytes)


async def seal_file(src_path: Path, dst_path: Path, resident_id: str, epoch: int, key: bytes) -> int:
    """Seal the file `src_path` into `dst_path`, streaming (a few chunks of memory); returns the sealed size."""
    return await asyncio.to_thread(_seal_file_sync, src_path, dst_path, resident_id, epoch, key)
