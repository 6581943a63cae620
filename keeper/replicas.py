"""Replica files: the copies of hosts' vault files a keeper holds, one per resident and epoch, with their level
files (docs/custody.md, "The keeper's level file").

    <data-dir>/replicas/<host id>/<resident id>/<epoch>            the vault file's bytes, exactly as sent
    <data-dir>/replicas/<host id>/<resident id>/<epoch>.levels     the Merkle level file, written at seal
    <data-dir>/replicas/<host id>/<resident id>/<epoch>.repair     a sealed replica sent again by its host

A vault file is ciphertext already (header and AEAD chunks), so nothing here is ever in the clear; no key or
share is written under `replicas/`. Bytes are appended at the offset the file has reached and fsynced before the
answer, so the `Progress` a host is told survives a power cut. Sealing computes the root and writes the level file
under a temporary name; the caller keeps it (`keep_levels`) only if the root is the one deposited. All file work
runs in worker threads; callers serialise work on one replica (the service holds a lock per resident).

A deposit on a base (docs/custody.md, "Deposits on a base") starts its replica with the first bytes of the same
host's sealed replica of an earlier epoch (`begin_from`) instead of empty; the host sends the rest. Each replica is
a whole file of its own either way (copy_file_range may share the extents on a filesystem that can).

Repair (docs/custody.md, "Repair"): a host whose challenges found a sealed replica damaged sends it again from
offset 0. The bytes go to the repair file beside the replica (`repair_append`), never into the replica itself;
`finish_repair` computes the repair file's root and, only if it is the deposited one, moves it over the replica
and its level file (one rename each); otherwise the repair file goes and the replica stays as it was. A repair
file left by a crash is removed at start-up (`sweep`) and the host starts over.
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
REPAIR_SUFFIX = ".repair"
_TEMPORARY_SUFFIX = ".tmp"
_COPY_CHUNK = 1024 * 1024
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

    async def begin_from(self, host_key: bytes, resident_id: str, epoch: int, base_epoch: int, prefix: int) -> int:
        """Create the replica file holding bytes [0, prefix) of this host's replica of `base_epoch` (a deposit on
        a base, docs/custody.md), durably; the bytes copied: `prefix`, or 0 (an empty replica, as `begin` makes)
        if the base replica turned out shorter or cannot be read. The caller checked the base is sealed."""
        return await asyncio.to_thread(
            _begin_from, self.path(host_key, resident_id, epoch), self.path(host_key, resident_id, base_epoch), prefix
        )

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

    def repair_path(self, host_key: bytes, resident_id: str, epoch: int) -> Path:
        return self._with_suffix(self.path(host_key, resident_id, epoch), REPAIR_SUFFIX)

    async def repair_append(self, host_key: bytes, resident_id: str, epoch: int, offset: int, data: bytes) -> int:
        """Write repair bytes for a sealed replica: at offset 0 a repair starts (afresh, whatever an earlier one
        left); any other offset must be exactly what the repair file holds. Fsync; the repair file's new size."""
        return await asyncio.to_thread(_repair_append, self.repair_path(host_key, resident_id, epoch), offset, data)

    async def repair_size(self, host_key: bytes, resident_id: str, epoch: int) -> int | None:
        """How much of a repair was received; None when no repair is in progress."""
        path = self.repair_path(host_key, resident_id, epoch)
        return await asyncio.to_thread(_size_if_any, path)

    async def finish_repair(self, host_key: bytes, resident_id: str, epoch: int, root: bytes, length: int) -> bool:
        """Replace the replica (and its level file) with the repair file if that has the deposited root and
        length; True if it did. Otherwise the repair file is removed and the replica is left as it was."""
        path = self.path(host_key, resident_id, epoch)
        repair = self.repair_path(host_key, resident_id, epoch)
        levels = self.levels_path(host_key, resident_id, epoch)
        temporary = self._with_suffix(levels, _TEMPORARY_SUFFIX)
        computed = await merkle.file_root(repair, levels_path=temporary)
        if (computed.root, computed.length) != (root, length):
            await asyncio.to_thread(_discard_repair, repair, temporary)
            return False
        await asyncio.to_thread(_replace, repair, path, temporary, levels)
        return True

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


def _begin_from(path: Path, base: Path, prefix: int) -> int:
    _begin(path)
    try:
        source = os.open(base, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        target = os.open(path, os.O_WRONLY)
        try:
            copied = _copy_prefix(source, target, prefix)
            if copied != prefix:
                os.ftruncate(target, 0)  # the base is shorter than it should be: receive the whole file instead
                copied = 0
            os.fsync(target)
        finally:
            os.close(target)
    finally:
        os.close(source)
    return copied


def _copy_prefix(source: int, target: int, prefix: int) -> int:
    """Copy bytes [0, prefix) of `source` to the start of the empty `target`: with copy_file_range where the
    system has it (in the kernel, sharing extents on filesystems that can), else (or when it refuses, across
    filesystems say) a chunk at a time. The bytes copied: fewer than `prefix` only if `source` is shorter."""
    copied = 0
    copy_file_range = getattr(os, "copy_file_range", None)
    while copy_file_range is not None and copied < prefix:
        try:
            step = copy_file_range(source, target, prefix - copied, copied, copied)
        except OSError:
            break  # not supported here: copy the rest the plain way
        if step == 0:
            return copied
        copied += step
    while copied < prefix:
        chunk = os.pread(source, min(_COPY_CHUNK, prefix - copied), copied)
        if not chunk:
            break
        written = 0
        while written < len(chunk):
            written += os.pwrite(target, memoryview(chunk)[written:], copied + written)
        copied += len(chunk)
    return copied


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _size_if_any(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _append(path: Path, offset: int, data: bytes) -> int:
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        raise KeeperError(409, "not_deposited", "no replica is being received for this epoch") from None
    return _write_at_end(fd, offset, data, "the data")


def _repair_append(path: Path, offset: int, data: bytes) -> int:
    """Its folder is not fsynced: a repair file lost to a power cut costs only a new start from offset 0."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if offset == 0 else 0), 0o600)
    return _write_at_end(fd, offset, data, "the repair data")


def _write_at_end(fd: int, offset: int, data: bytes, what: str) -> int:
    """Append `data` at `offset`, which must be the file's size (a resumed sender says where it goes on); the
    new size once durable. Closes `fd`."""
    try:
        size = os.fstat(fd).st_size
        if offset != size:
            raise KeeperError(409, "wrong_offset", f"{what} starts at {offset} but {size} bytes are held")
        written = 0
        while written < len(data):
            written += os.pwrite(fd, memoryview(data)[written:], offset + written)
        os.fsync(fd)
        return offset + written
    finally:
        os.close(fd)


def _discard_repair(repair: Path, temporary: Path) -> None:
    repair.unlink(missing_ok=True)
    temporary.unlink(missing_ok=True)


def _replace(repair: Path, path: Path, temporary: Path, levels: Path) -> None:
    """The repaired replica first, then its level file: a crash in between leaves the old level file, which was
    built from the same bytes (both bind to the one root), so it still answers for the new replica."""
    for name in (repair, temporary):
        fd = os.open(name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(repair, path)
    os.replace(temporary, levels)
    _fsync_dir(path.parent)


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
    suffixes = ("", LEVELS_SUFFIX, LEVELS_SUFFIX + _TEMPORARY_SUFFIX, REPAIR_SUFFIX)
    for name in (path.with_name(path.name + suffix) for suffix in suffixes):
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
