"""`VaultStore`: where sealed persona packages live on disk, `root/<resident_id>/epoch-<epoch:010d>.ftmv`.

It owns the layout (directories 0700, files 0600), sealing and opening one epoch of a resident, destroying an
epoch or a whole resident, listing what exists, and the startup sweep that removes what a crash left. Epochs are
sealed packed (format version 2, `ftm.node.vaultpack`: sections of parts, unchanged blobs carried over from the
previous epoch); version-1 files still open and reseal. The file formats and all cryptography are
`ftm.node.vault`'s and `ftm.node.vaultpack`'s; every write is atomic (`ftm.node.atomicfile`), and a newly
created resident directory is fsynced into the root, so a crash leaves the old file or the new one, never a torn
one. Each async operation runs whole in one worker thread, never on the event loop.

Moving a resident to another node streams one epoch out re-sealed under a new key (`export_resealed`), and on the
other node puts the received ciphertext in place as an epoch file (`import_sealed`): chunk by chunk (blob by blob
for a packed file), so a package of any size takes a few chunks of memory.

Errors: a missing file is a `VaultIntegrityError` with `reason` MISSING, like any other file that fails a check;
a malformed resident id or an epoch out of range raises `ValueError`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from ftm.node.atomicfile import TEMP_GLOB, fsync_dir, write_atomically
from ftm.node.vault import CHUNK_SIZE, MAX_EPOCH, VaultFailure, VaultIntegrityError, resident_id_bytes
from ftm.node.vaultpack import Contents, PackBase, SealStats, open_contents, reseal_sync, seal_sync

logger = logging.getLogger(__name__)

FILE_SUFFIX = ".ftmv"
_EPOCH_FILE = re.compile(r"epoch-(\d{10,20})\.ftmv", re.ASCII)


def _is_resident_id(name: str) -> bool:
    try:
        resident_id_bytes(name)
    except ValueError:
        return False
    return True


class VaultStore:
    """The sealed files of every resident under `root`: `root/<resident_id>/epoch-<epoch:010d>.ftmv`.

    Deleting a file is not what makes old data unreadable (copies may survive in backups, on keepers or in
    flash blocks the filesystem remapped): destroying the epoch key is. Unlinking just reclaims the space.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, resident_id: str, epoch: int) -> Path:
        resident_id_bytes(resident_id)  # the id becomes a path component: refuse anything but the safe set
        if not 0 <= epoch <= MAX_EPOCH:
            raise ValueError("epoch must fit in an unsigned 64-bit integer")
        return self.root / resident_id / f"epoch-{epoch:010d}{FILE_SUFFIX}"

    def _prepare(self, resident_id: str, epoch: int) -> Path:
        path = self.path_for(resident_id, epoch)
        if not path.parent.is_dir():
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.parent.mkdir(mode=0o700, exist_ok=True)
            fsync_dir(self.root)  # the new directory entry must survive a crash along with the file in it
        return path

    async def seal(
        self,
        resident_id: str,
        epoch: int,
        key: bytes,
        sections: Sequence[Sequence[bytes]],
        *,
        base: PackBase | None = None,
    ) -> int:
        """Seal one epoch of a resident as a packed (version 2) file, atomically replacing any file of that epoch,
        carrying over unchanged blobs from `base` (the previous epoch's `Contents.base`); returns the file size."""
        return (await self.seal_with_stats(resident_id, epoch, key, sections, base=base)).file_size

    async def seal_with_stats(
        self,
        resident_id: str,
        epoch: int,
        key: bytes,
        sections: Sequence[Sequence[bytes]],
        *,
        base: PackBase | None = None,
    ) -> SealStats:
        """`seal`, returning what it reused and encrypted."""

        def run() -> SealStats:
            return seal_sync(self._prepare(resident_id, epoch), resident_id, epoch, key, sections, base)

        # One thread hand-off for the directory, the crypto and the fsyncs together.
        return await asyncio.to_thread(run)

    async def open(self, resident_id: str, epoch: int, key: bytes, max_bytes: int) -> Contents:
        """Verify and decrypt one epoch (either format version); a missing file is an integrity failure (`reason`
        MISSING)."""
        path = self.path_for(resident_id, epoch)
        try:
            return await open_contents(path, resident_id, epoch, key, max_bytes=max_bytes)
        except FileNotFoundError:
            logger.warning("vault integrity failure: %s", VaultFailure.MISSING.value)
            message = f"no vault file for resident {resident_id} epoch {epoch}"
            raise VaultIntegrityError(VaultFailure.MISSING, message) from None

    async def export_resealed(
        self, resident_id: str, epoch: int, key: bytes, new_epoch: int, new_key: bytes, dst: Path, header: bytes
    ) -> tuple[int, bytes]:
        """Write `header` and then the epoch re-sealed as `new_epoch` under `new_key` to `dst` (atomically), in the
        same format version, decrypting and re-encrypting chunk by chunk or blob by blob; returns the size and
        SHA-256 of the file written. Any failed check of the source file raises before `dst` exists."""
        path = self.path_for(resident_id, epoch)

        def produce(sink: BinaryIO) -> None:
            hashing = _Hashing(sink)
            hashing.write(header)
            reseal_sync(path, hashing, resident_id, epoch, key, new_epoch, new_key)
            digests.append(hashing.digest.digest())

        digests: list[bytes] = []

        def run() -> int:
            try:
                return write_atomically(dst, produce)
            except FileNotFoundError:
                raise VaultIntegrityError(VaultFailure.MISSING, f"no vault file for resident {resident_id}") from None

        size = await asyncio.to_thread(run)
        return size, digests[0]

    async def import_sealed(self, resident_id: str, epoch: int, src: Path, offset: int) -> int:
        """Put the ciphertext of `src` from byte `offset` on in place as the resident's epoch file (atomically,
        copied as it is: the caller opens it to check it); returns the file's size."""

        def produce(sink: BinaryIO) -> None:
            with open(src, "rb") as source:
                source.seek(offset)
                while chunk := source.read(CHUNK_SIZE):
                    sink.write(chunk)

        def run() -> int:
            return write_atomically(self._prepare(resident_id, epoch), produce)

        return await asyncio.to_thread(run)

    async def import_resealed(
        self, resident_id: str, src: Path, epoch: int, key: bytes, new_epoch: int, new_key: bytes
    ) -> int:
        """Put the vault file `src` (the resident's `epoch` under `key`, kept elsewhere: a restore's download) in
        place as its `new_epoch` file re-sealed under `new_key` (same format version), chunk by chunk or blob by
        blob, atomically; returns the new
        file's size. Any failed check of `src` raises before the new file exists."""

        def produce(sink: BinaryIO) -> None:
            reseal_sync(src, sink, resident_id, epoch, key, new_epoch, new_key)

        def run() -> int:
            return write_atomically(self._prepare(resident_id, new_epoch), produce)

        return await asyncio.to_thread(run)

    async def destroy(self, resident_id: str, epoch: int) -> None:
        """Remove one epoch's file; idempotent, so a rotation retried after a crash can repeat it."""
        path = self.path_for(resident_id, epoch)

        def run() -> None:
            path.unlink(missing_ok=True)
            if path.parent.is_dir():
                fsync_dir(path.parent)

        await asyncio.to_thread(run)
        logger.debug("destroyed resident %s epoch %d", resident_id, epoch)

    async def destroy_resident(self, resident_id: str) -> None:
        """Remove every file of a resident (self-deletion, or a move completed elsewhere); idempotent."""
        directory = self.path_for(resident_id, 0).parent
        await asyncio.to_thread(self._remove_dir, directory)
        logger.debug("destroyed all vault files of resident %s", resident_id)

    def _remove_dir(self, directory: Path) -> None:
        if directory.is_dir():
            shutil.rmtree(directory)
            fsync_dir(self.root)

    def resident_ids(self) -> set[str]:
        """Residents that have a directory here (whether or not the database knows them)."""
        if not self.root.is_dir():
            return set()
        return {p.name for p in self.root.iterdir() if p.is_dir() and _is_resident_id(p.name)}

    def epochs(self, resident_id: str) -> list[int]:
        """The epochs with a sealed file for this resident, ascending."""
        directory = self.path_for(resident_id, 0).parent
        if not directory.is_dir():
            return []
        found = (_EPOCH_FILE.fullmatch(p.name) for p in directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    async def remove_orphans(self, known: set[str]) -> int:
        """Recovery sweep at startup: delete the directories of residents the database does not know (an
        intake that crashed before its commit) and temp files of interrupted writes. Returns how many entries
        went. Run it before any seal starts, since a seal in progress owns a temp file."""

        def run() -> int:
            removed = 0
            for resident_id in self.resident_ids():
                directory = self.root / resident_id
                if resident_id not in known:
                    self._remove_dir(directory)
                    removed += 1
                    continue
                leftovers = list(directory.glob(TEMP_GLOB))
                for leftover in leftovers:
                    leftover.unlink(missing_ok=True)
                if leftovers:
                    fsync_dir(directory)
                    removed += len(leftovers)
            return removed

        removed = await asyncio.to_thread(run)
        if removed:
            logger.info("vault recovery sweep removed %d orphaned entries", removed)
        return removed


class _Hashing:
    """A sink that hashes what passes through it on its way to the file."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self.digest = hashlib.sha256()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.digest.update(data)
        return self._sink.write(data)
