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
import enum
import hashlib
import hmac
import io
import logging
import os
import re
import secrets
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ftm.node.atomicfile import write_atomically
from ftm.node.errors import IntegrityError, LimitExceeded

logger = logging.getLogger(__name__)

MAGIC = b"FTMV"
FORMAT_VERSION = 1
CHUNK_SIZE = 1 << 20
TAG_SIZE = 16
KEY_SIZE = 32
SALT_SIZE = 32
NONCE_PREFIX_SIZE = 7
COMMITMENT_SIZE = 32
MAX_CHUNKS = 1 << 32  # the nonce counter is 4 bytes; a counter must never wrap and repeat a nonce
MAX_EPOCH = (1 << 64) - 1

_INFO_AEAD = b"ftm-vault-v1 aead"
_INFO_COMMIT = b"ftm-vault-v1 commit"
_AAD_DOMAIN = b"ftm-vault-v1 chunk"
# Safe as a single path component (no separators, no leading dot, so never "." / ".." or a hidden temp name).
_RESIDENT_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}", re.ASCII)
_FIXED_AFTER_ID = 8 + SALT_SIZE + NONCE_PREFIX_SIZE + COMMITMENT_SIZE
_FIRST_READ = 64 << 10  # a reader's first buffer; most persona packages fit


class VaultFailure(enum.StrEnum):
    """Why a vault file was refused; stable values for logs, metrics and tests."""

    BAD_MAGIC = "bad_magic"
    UNSUPPORTED_VERSION = "unsupported_version"
    MALFORMED_HEADER = "malformed_header"
    WRONG_RESIDENT = "wrong_resident"
    WRONG_EPOCH = "wrong_epoch"
    WRONG_KEY = "wrong_key"
    CHUNK_AUTH = "chunk_auth"
    TRUNCATED = "truncated"
    TRAILING_DATA = "trailing_data"
    NON_CANONICAL = "non_canonical"
    MISSING = "missing"


class VaultIntegrityError(IntegrityError):
    """A vault file failed a check. `reason` says which; `chunk` is the chunk index where one applies."""

    def __init__(self, reason: VaultFailure, message: str, *, chunk: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.chunk = chunk


class WritableBinary(Protocol):
    """Where a writer puts sealed bytes: an open binary file, a BytesIO, a socket file."""

    def write(self, data: bytes | bytearray | memoryview, /) -> object: ...


class ReadableBinary(Protocol):
    """What a reader reads from; `readinto` lets chunks land in reused buffers instead of new objects."""

    def readinto(self, buffer: bytearray | memoryview, /) -> int | None: ...


def new_epoch_key() -> bytes:
    """A fresh random 32-byte epoch key."""
    return secrets.token_bytes(KEY_SIZE)


def resident_id_bytes(resident_id: str) -> bytes:
    """The ASCII bytes of a resident id; ValueError unless it is 1-64 of [A-Za-z0-9._-], no leading dot."""
    if not _RESIDENT_ID.fullmatch(resident_id):
        raise ValueError("resident id must be 1-64 characters of A-Z a-z 0-9 . _ - and not start with '.'")
    return resident_id.encode("ascii")


def _check_epoch_and_key(epoch: int, key: bytes) -> None:
    if not 0 <= epoch <= MAX_EPOCH:
        raise ValueError("epoch must fit in an unsigned 64-bit integer")
    if len(key) != KEY_SIZE:
        raise ValueError(f"epoch key must be {KEY_SIZE} bytes")


@dataclass(frozen=True, slots=True)
class _Header:
    resident_id: str
    epoch: int
    salt: bytes
    nonce_prefix: bytes
    commitment: bytes
    raw: bytes


def _derive(key: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """Per-file AEAD key and key commitment: two independent HKDF-SHA256 outputs of the epoch key."""
    aead_key = HKDF(SHA256(), KEY_SIZE, salt, _INFO_AEAD).derive(key)
    commitment = HKDF(SHA256(), COMMITMENT_SIZE, salt, _INFO_COMMIT).derive(key)
    return aead_key, commitment


def _encode_header(rid: bytes, epoch: int, salt: bytes, prefix: bytes, commitment: bytes) -> bytes:
    return b"".join((MAGIC, bytes((FORMAT_VERSION, len(rid))), rid, epoch.to_bytes(8, "big"), salt, prefix, commitment))


def _read_exact_into(source: ReadableBinary, view: memoryview) -> int:
    """Fill `view` from `source`, stopping early only at end of file; returns the number of bytes read."""
    filled = 0
    while filled < len(view):
        n = source.readinto(view[filled:])
        if not n:
            break
        filled += n
    return filled


def _read_exact(source: ReadableBinary, size: int) -> bytes:
    buf = bytearray(size)
    return bytes(buf[: _read_exact_into(source, memoryview(buf))])


class _Stream:
    """The per-file AEAD state shared by writer and reader: key, nonce prefix and associated-data prefix."""

    def __init__(self, header: bytes, rid: bytes, epoch: int, aead_key: bytes, prefix: bytes) -> None:
        self.aead = AESGCM(aead_key)
        self.prefix = prefix
        # Everything but the chunk index is constant per file, so it is built once; the header hash makes any
        # edit of a header byte (salt, prefix, commitment, id, epoch) fail every chunk.
        self.aad_prefix = b"".join(
            (
                _AAD_DOMAIN,
                bytes((FORMAT_VERSION, len(rid))),
                rid,
                epoch.to_bytes(8, "big"),
                hashlib.sha256(header).digest(),
            )
        )

    def nonce(self, index: int, last: bool) -> bytes:
        return self.prefix + struct.pack(">IB", index, 1 if last else 0)

    def aad(self, index: int) -> bytes:
        return self.aad_prefix + index.to_bytes(8, "big")


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
        _check_epoch_and_key(epoch, key)
        salt, prefix = randbytes(SALT_SIZE), randbytes(NONCE_PREFIX_SIZE)
        aead_key, commitment = _derive(key, salt)
        header = _encode_header(rid, epoch, salt, prefix, commitment)
        self._sink = sink
        self._stream = _Stream(header, rid, epoch, aead_key, prefix)
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
                got = _read_exact_into(source, memoryview(self._pending)[self._fill :])
                self._fill += got
                if self._fill < size:
                    return
            # A full pending chunk is sealed only once the next read shows more data follows.
            got = _read_exact_into(source, memoryview(self._spare))
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
        _check_epoch_and_key(epoch, key)
        header = _parse_header(source)
        # Identity comes from the caller, never from the header: the header is only checked against it.
        if header.resident_id != resident_id:
            raise _fail(VaultFailure.WRONG_RESIDENT, f"vault file belongs to another resident, not {resident_id}")
        if header.epoch != epoch:
            raise _fail(VaultFailure.WRONG_EPOCH, f"vault file is not sealed for key epoch {epoch}")
        aead_key, commitment = _derive(key, header.salt)
        if not hmac.compare_digest(commitment, header.commitment):
            raise _fail(VaultFailure.WRONG_KEY, "wrong key: the key commitment does not match (or was altered)")
        self._source = source
        self.header_size = len(header.raw)
        self._stream = _Stream(header.raw, rid, epoch, aead_key, header.nonce_prefix)
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
            raise _fail(VaultFailure.TRUNCATED, "vault file is truncated: no chunks after the header")
        index = 0
        while True:
            # Only a full chunk can have another after it; peek to learn whether this one is the last.
            after = self._read_segment(following) if length == enc else 0
            if length < TAG_SIZE:
                raise _fail(VaultFailure.TRUNCATED, f"vault file is truncated inside chunk {index}", chunk=index)
            if after and index == MAX_CHUNKS - 1:
                raise _fail(VaultFailure.TRAILING_DATA, "vault file has more chunks than the format allows")
            yield memoryview(current)[:length], index, after == 0
            if after == 0:
                return
            current, following, length = following, current, after
            index += 1

    def _read_segment(self, buffer: bytearray) -> int:
        """Read one encrypted chunk into `buffer`, growing it up to a full chunk only as the data requires."""
        enc = self._chunk_size + TAG_SIZE
        got = _read_exact_into(self._source, memoryview(buffer))
        while got == len(buffer) < enc:
            # Full so far but not a whole chunk: there may be more. Small files keep small buffers; a buffer
            # only grows before its first full chunk, so no view handed out can pin it.
            buffer.extend(bytes(min(enc, max(_FIRST_READ, 2 * len(buffer))) - len(buffer)))
            got += _read_exact_into(self._source, memoryview(buffer)[got:])
        return got

    def _diagnose(self, segment: memoryview, index: int, last: bool) -> VaultIntegrityError:
        """Name the failure: a chunk that verifies under the other last-flag was cut off or appended to."""
        stream = self._stream
        try:
            stream.aead.decrypt(stream.nonce(index, not last), segment, stream.aad(index))
        except InvalidTag:
            return _fail(
                VaultFailure.CHUNK_AUTH,
                f"chunk {index} failed authentication (tampered, swapped, reordered, cut or appended to)",
                chunk=index,
            )
        if last:
            return _fail(VaultFailure.TRUNCATED, f"vault file is truncated: it ends after chunk {index}", chunk=index)
        return _fail(VaultFailure.TRAILING_DATA, f"trailing data after the last chunk {index}", chunk=index)

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
                raise _fail(VaultFailure.NON_CANONICAL, f"empty last chunk {index} after data", chunk=index)
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


def _fail(reason: VaultFailure, message: str, *, chunk: int | None = None) -> VaultIntegrityError:
    logger.warning("vault integrity failure: %s (chunk %s)", reason.value, chunk)
    return VaultIntegrityError(reason, message, chunk=chunk)


def _parse_header(source: ReadableBinary) -> _Header:
    start = _read_exact(source, len(MAGIC) + 2)
    if not MAGIC.startswith(start[: len(MAGIC)]):
        raise _fail(VaultFailure.BAD_MAGIC, "not a vault file: bad magic")
    if len(start) < len(MAGIC) + 2:
        raise _fail(VaultFailure.TRUNCATED, "vault file is truncated inside the header")
    if start[4] != FORMAT_VERSION:
        raise _fail(VaultFailure.UNSUPPORTED_VERSION, f"unsupported vault format version {start[4]}")
    rest = _read_exact(source, start[5] + _FIXED_AFTER_ID)
    if len(rest) < start[5] + _FIXED_AFTER_ID:
        raise _fail(VaultFailure.TRUNCATED, "vault file is truncated inside the header")
    rid, fixed = rest[: start[5]], rest[start[5] :]
    resident_id = rid.decode("ascii", errors="replace")
    if not _RESIDENT_ID.fullmatch(resident_id):
        raise _fail(VaultFailure.MALFORMED_HEADER, "vault header holds a malformed resident id")
    salt_end = 8 + SALT_SIZE
    return _Header(
        resident_id=resident_id,
        epoch=int.from_bytes(fixed[:8], "big"),
        salt=fixed[8:salt_end],
        nonce_prefix=fixed[salt_end : salt_end + NONCE_PREFIX_SIZE],
        commitment=fixed[salt_end + NONCE_PREFIX_SIZE :],
        raw=start + rest,
    )


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


def _open_bytes_sync(path: Path, resident_id: str, epoch: int, key: bytes, max_bytes: int) -> bytes:
    with open(path, "rb", buffering=0) as source:
        reader = VaultReader(source, resident_id, epoch, key)
        size = reader.plaintext_bound(os.fstat(source.fileno()).st_size)
        if size > max_bytes:
            raise LimitExceeded(f"vault file holds more than the {max_bytes} bytes allowed")
        # Decrypt straight into the bytes object that is returned: BytesIO adopts `bytes(size)` (calloc'd, so
        # not touched yet) and getvalue() hands it back without a copy once the view is released. Building it
        # from chunks instead costs a second pass over fresh memory, which halves throughput on 64 MiB.
        result = io.BytesIO(bytes(size))
        with result.getbuffer() as out:
            filled = reader.read_into(out)
        if filled != size:  # only a file that changed while being read can disagree with its size
            raise _fail(VaultFailure.TRUNCATED, "vault file changed while it was being read")
        return result.getvalue()


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
