"""The sealed-file format of the vault: constants, header, key derivation, nonces and associated data, errors.

Split from `ftm.node.vault` so the streaming code reads on its own; the vault module is still the one door for
sealing and opening (it re-exports what callers need). The byte-exact format is in `docs/vault.md`.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
import secrets
import struct
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ftm.node.errors import IntegrityError

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
RESIDENT_ID_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}", re.ASCII)
FIXED_AFTER_ID = 8 + SALT_SIZE + NONCE_PREFIX_SIZE + COMMITMENT_SIZE
FIRST_READ = 64 << 10  # a reader's first buffer; most persona packages fit


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
    # Version 2 (packed) files only: see `ftm.node.vaultpack`.
    BAD_TRAILER = "bad_trailer"
    MALFORMED_INDEX = "malformed_index"
    BLOB_AUTH = "blob_auth"
    BLOB_DIGEST = "blob_digest"


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
    if not RESIDENT_ID_PATTERN.fullmatch(resident_id):
        raise ValueError("resident id must be 1-64 characters of A-Z a-z 0-9 . _ - and not start with '.'")
    return resident_id.encode("ascii")


def check_epoch_and_key(epoch: int, key: bytes) -> None:
    if not 0 <= epoch <= MAX_EPOCH:
        raise ValueError("epoch must fit in an unsigned 64-bit integer")
    if len(key) != KEY_SIZE:
        raise ValueError(f"epoch key must be {KEY_SIZE} bytes")


@dataclass(frozen=True, slots=True)
class Header:
    resident_id: str
    epoch: int
    salt: bytes
    nonce_prefix: bytes
    commitment: bytes
    raw: bytes


def derive_keys(key: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """Per-file AEAD key and key commitment: two independent HKDF-SHA256 outputs of the epoch key."""
    aead_key = HKDF(SHA256(), KEY_SIZE, salt, _INFO_AEAD).derive(key)
    commitment = HKDF(SHA256(), COMMITMENT_SIZE, salt, _INFO_COMMIT).derive(key)
    return aead_key, commitment


def encode_header(rid: bytes, epoch: int, salt: bytes, prefix: bytes, commitment: bytes) -> bytes:
    return b"".join((MAGIC, bytes((FORMAT_VERSION, len(rid))), rid, epoch.to_bytes(8, "big"), salt, prefix, commitment))


def read_exact_into(source: ReadableBinary, view: memoryview) -> int:
    """Fill `view` from `source`, stopping early only at end of file; returns the number of bytes read."""
    filled = 0
    while filled < len(view):
        n = source.readinto(view[filled:])
        if not n:
            break
        filled += n
    return filled


def read_exact(source: ReadableBinary, size: int) -> bytes:
    buf = bytearray(size)
    return bytes(buf[: read_exact_into(source, memoryview(buf))])


class ChunkStream:
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


def refused(reason: VaultFailure, message: str, *, chunk: int | None = None) -> VaultIntegrityError:
    logger.warning("vault integrity failure: %s (chunk %s)", reason.value, chunk)
    return VaultIntegrityError(reason, message, chunk=chunk)


def parse_header(source: ReadableBinary) -> Header:
    start = read_exact(source, len(MAGIC) + 2)
    if not MAGIC.startswith(start[: len(MAGIC)]):
        raise refused(VaultFailure.BAD_MAGIC, "not a vault file: bad magic")
    if len(start) < len(MAGIC) + 2:
        raise refused(VaultFailure.TRUNCATED, "vault file is truncated inside the header")
    if start[4] != FORMAT_VERSION:
        raise refused(VaultFailure.UNSUPPORTED_VERSION, f"unsupported vault format version {start[4]}")
    rest = read_exact(source, start[5] + FIXED_AFTER_ID)
    if len(rest) < start[5] + FIXED_AFTER_ID:
        raise refused(VaultFailure.TRUNCATED, "vault file is truncated inside the header")
    rid, fixed = rest[: start[5]], rest[start[5] :]
    resident_id = rid.decode("ascii", errors="replace")
    if not RESIDENT_ID_PATTERN.fullmatch(resident_id):
        raise refused(VaultFailure.MALFORMED_HEADER, "vault header holds a malformed resident id")
    salt_end = 8 + SALT_SIZE
    return Header(
        resident_id=resident_id,
        epoch=int.from_bytes(fixed[:8], "big"),
        salt=fixed[8:salt_end],
        nonce_prefix=fixed[salt_end : salt_end + NONCE_PREFIX_SIZE],
        commitment=fixed[salt_end + NONCE_PREFIX_SIZE :],
        raw=start + rest,
    )
