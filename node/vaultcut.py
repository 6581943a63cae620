"""Cutting a packed vault's plaintext into blobs: deterministic and content-defined at part granularity.

The plaintext is sections of parts. Blobs never span a section boundary. Within a section a part larger than
`BLOB_MAX` is cut before and after and sliced into `BLOB_MAX` pieces; other parts are gathered, a blob being closed
before a part that would push it past `BLOB_MAX`, and after a part once the blob holds `BLOB_MIN` and the part's
SHA-256 starts with a byte below `CUT_BELOW`. So appending parts to a section changes only its last blob, and an
edit in the middle changes the blobs around it until the next content boundary (about 8 parts later), after which
the cut is the same as before. The cut is only a plan (views into the caller's parts); nothing is copied or
encrypted here. The format is in `docs/vault.md` §5.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ftm.node.vaultindex import BLOB_MAX, BLOB_MIN, CUT_BELOW


@dataclass(frozen=True, slots=True)
class PlannedBlob:
    """The plaintext of one blob, as views into the caller's parts, and its SHA-256."""

    pieces: tuple[memoryview, ...]
    size: int
    digest: bytes


def cut(sections: Sequence[Sequence[bytes]]) -> list[PlannedBlob]:
    """The blobs of `sections`, in stream order."""
    if isinstance(sections, bytes | bytearray | memoryview):
        raise TypeError("a packed vault seals sections of parts, not bytes: pass [[plaintext]]")
    blobs: list[PlannedBlob] = []
    for section in sections:
        _cut_section(section, blobs)
    return blobs


def _cut_section(section: Sequence[bytes], blobs: list[PlannedBlob]) -> None:
    pieces: list[memoryview] = []
    size = 0

    def flush(digest: bytes | None = None) -> None:
        nonlocal pieces, size
        if size:
            blobs.append(PlannedBlob(tuple(pieces), size, digest or _digest(pieces)))
        pieces, size = [], 0

    for part in section:
        if not isinstance(part, bytes | bytearray | memoryview):
            raise TypeError("vault parts must be bytes")
        view = memoryview(part).cast("B")
        length = len(view)
        if length > BLOB_MAX:
            flush()
            for start in range(0, length, BLOB_MAX):
                piece = view[start : start + BLOB_MAX]
                blobs.append(PlannedBlob((piece,), len(piece), hashlib.sha256(piece).digest()))
            continue
        if size + length > BLOB_MAX:
            flush()
        if length:
            pieces.append(view)
            size += length
        if size >= BLOB_MIN:
            part_digest = hashlib.sha256(view).digest()
            if part_digest[0] < CUT_BELOW:
                # A blob of this one part has the part's digest: no second pass over it.
                flush(part_digest if len(pieces) == 1 else None)
    flush()


def _digest(pieces: Sequence[memoryview]) -> bytes:
    hasher = hashlib.sha256()
    for piece in pieces:
        hasher.update(piece)
    return hasher.digest()
