"""Replica files: the copies of hosts' vault files a keeper holds, one per resident and epoch, with their level
files (docs/custody.md, "The keeper's level file").

    <data-dir>/replicas/<host id>/<resident id>/<epoch>            the vault file's bytes, exactly as sent
    <data-dir>/replicas/<host id>/<resident id>/<epoch>.levels     the Merkle level file, written at seal

A vault file is ciphertext already (header and AEAD chunks), so nothing here is ever in the clear; no key or
share is written under `replicas/`. Bytes are appended at the offset the file has reached and fsynced before the
answer, so the `Progress` a host is told survives a power cut. Sealing computes the root and writes the level file
under a temporary name; the caller keeps it (`keep_levels`) only if the root is the one deposited. All file work
runs in worker threads; callers serialise work on one replica (the service holds a lock per resident).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path

from ftm.federation.identity import derive_id
from ftm.keeper import merkle
from ftm.keeper.errors import KeeperError

REPLICAS_DIR = "replicas"
LEVELS_SUFFIX = ".levels"
_TEMPORARY_SUFFIX = ".tmp"
_EPOCH_NAME = re.compile(r"^(0|[1-9][0-9]{0,18})(\.levels(\.tmp)?)?$")

ReplicaKey = tuple[str, str, int]  # (host id, resident id, epoch)


def host_dir_name(host_key: bytes) -> str:
    """A host's folder: the node id derived from its key, short and safe in a path."""
    return derive_id("node", host_key)


class Replicas:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, host_key: bytes, resident_id: str, epoch: int) -> Path:
        return self.root / host_dir_name(host_key) / resident_id / str(epoch)

    def levels_path(self, host_key: bytes, resident_id: str, epoch: int) -> Path:
        return self._with_suffix(self.path(host_key, resident_id, epoch), LEVELS_SUFFIX)

    @staticmethod
    def _with_suffix(path: Path, suffix: str) -> Path:
        return path.with_name(path.name + suffix)

    async def begin(self, host_key: bytes, resident_id: str, epoch: int) -> None:
        """Create the replica file empty (emptying what a deposit that never committed may have left)."""
        await asyncio.to_thread(_begin, self.path(host_key, resident_id, epoch))

    async def size(self, host_key: bytes, resident_id: str, epoch: int) -> int:
        return await asyncio.to_thread(_size, self.path(host_key, resident_id, epoch))

    async def append(self, host_key: bytes, resident_id: str, epoch: int, offset: int, data: bytes) -> int:
        """Write `data` at `offset`, which must be exactly what the file holds; fsync; the new size."""
        return await asyncio.to_thread(_append, self.path(host_key, resident_id, epoch), offset, data)

    async def seal(self, host_key: bytes, resident_id: str, epoch: int) -> merkle.MerkleRoot:
        """Root and length of the replica as held, with its level file written under a temporary name."""
        path = self.path(host_key, resident_id, epoch)
        temporary = self._with_suffix(self.levels_path(host_key, resident_id, epoch), _TEMPORARY_SUFFIX)
        return await merkle.file_root(path, levels_path=temporary)

    async def keep_levels(self, host_key: bytes, resident_id: str, epoch: int) -> None:
        """Make the sealed replica and its level file durable under their final names."""
        levels = self.levels_path(host_key, resident_id, epoch)
        await asyncio.to_thread(
            _keep, self.path(host_key, resident_id, epoch), self._with_suffix(levels, _TEMPORARY_SUFFIX), levels
        )

    async def discard(self, host_key: bytes, resident_id: str, epoch: int) -> None:
        """Empty a replica that did not seal (wrong root): the host sends it again from offset 0."""
        path = self.path(host_key, resident_id, epoch)
        temporary = self._with_suffix(self.levels_path(host_key, resident_id, epoch), _TEMPORARY_SUFFIX)
        await asyncio.to_thread(_discard, path, temporary)

    async def read(self, host_key: bytes, resident_id: str, epoch: int, offset: int, length: int) -> bytes:
        return await asyncio.to_thread(_read, self.path(host_key, resident_id, epoch), offset, length)

    async def prove(
        self, host_key: bytes, resident_id: str, epoch: int, nonce: bytes, samples: int, root: bytes, length: int
    ) -> merkle.Proof:
        """Answer a Merkle challenge from the sealed replica. A level file that is lost or damaged is rebuilt from
        the replica first (and kept only if it binds to the deposited root); a damaged replica raises
        `merkle.ProverError` naming the leaf."""
        path = self.path(host_key, resident_id, epoch)
        levels = self.levels_path(host_key, resident_id, epoch)
        try:
            return await merkle.prove_file(path, levels, nonce, samples)
        except (merkle.LevelFileError, FileNotFoundError) as error:
            if not await asyncio.to_thread(path.exists):
                raise merkle.ProverError(None, "the replica file is missing") from error
        temporary = self._with_suffix(levels, _TEMPORARY_SUFFIX)
        rebuilt = await merkle.file_root(path, levels_path=temporary)
        if (rebuilt.root, rebuilt.length) != (root, length):
            await asyncio.to_thread(temporary.unlink, True)
            raise merkle.ProverError(None, "the replica no longer has the deposited root")
        await asyncio.to_thread(_keep, path, temporary, levels)
        return await merkle.prove_file(path, levels, nonce, samples)

    async def destroy(self, host_key: bytes, resident_id: str, epoch: int) -> None:
        """Unlink the replica and its level files; empty folders above go too."""
        await asyncio.to_thread(_destroy, self.path(host_key, resident_id, epoch))

    async def sweep(self, live: set[ReplicaKey]) -> int:
        """Remove every file under `replicas/` that belongs to no live epoch (what a crash between a destroy's
        commit and its unlink left); the number of files removed."""
        return await asyncio.to_thread(_sweep, self.root, live)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _begin(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _append(path: Path, offset: int, data: bytes) -> int:
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        raise KeeperError(409, "not_deposited", "no replica is being received for this epoch") from None
    try:
        size = os.fstat(fd).st_size
        if offset != size:
            raise KeeperError(409, "wrong_offset", f"the data starts at {offset} but {size} bytes are held")
        written = 0
        while written < len(data):
            written += os.pwrite(fd, memoryview(data)[written:], offset + written)
        os.fsync(fd)
        return offset + written
    finally:
        os.close(fd)


def _keep(path: Path, temporary: Path, levels: Path) -> None:
    for name in (path, temporary):
        fd = os.open(name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(temporary, levels)
    _fsync_dir(path.parent)


def _discard(path: Path, temporary: Path) -> None:
    temporary.unlink(missing_ok=True)
    with contextlib.suppress(FileNotFoundError), open(path, "r+b") as replica:
        replica.truncate(0)
        os.fsync(replica.fileno())


def _read(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb", buffering=0) as replica:
        return os.pread(replica.fileno(), length, offset)


def _destroy(path: Path) -> None:
    for name in (path, path.with_name(path.name + LEVELS_SUFFIX), path.with_name(path.name + LEVELS_SUFFIX + ".tmp")):
        name.unlink(missing_ok=True)
    if path.parent.exists():
        _fsync_dir(path.parent)
    for folder in (path.parent, path.parent.parent):
        with contextlib.suppress(OSError):  # not empty, or already gone
            folder.rmdir()


def _sweep(root: Path, live: set[ReplicaKey]) -> int:
    removed = 0
    if not root.exists():
        return 0
    for host in root.iterdir():
        for resident in host.iterdir() if host.is_dir() else ():
            for entry in resident.iterdir() if resident.is_dir() else ():
                match = _EPOCH_NAME.match(entry.name)
                if match is not None and (host.name, resident.name, int(match[1])) in live:
                    continue
                entry.unlink(missing_ok=True)
                removed += 1
            with contextlib.suppress(OSError):
                resident.rmdir()
        with contextlib.suppress(OSError):
            host.rmdir()
    return removed
