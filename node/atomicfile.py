"""Atomic, durable replacement of a file: a crash leaves the old file or the new one, never a torn one.

`write_atomically` writes through a 0600 temp file in the target's directory, fsyncs it, renames it over the
target and fsyncs the directory, so the rename itself survives a crash. Temp files are hidden and random
(`.<final name>.<16 hex digits>.tmp`, matched by `TEMP_GLOB`): concurrent writers never share one, and a
recovery sweep can recognise what an interrupted write left behind. The vault's sealing functions and
`VaultStore` write through here; it lives apart from both because the store builds on the vault.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMP_GLOB = ".*.tmp"


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (a rename, a new or removed name) survive a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")


def write_atomically(path: Path, produce: Callable[[BinaryIO], None]) -> int:
    """Have `produce` write the content, then put it in place as `path`; returns the size of the file written.

    If `produce` raises, the temp file is removed and any existing `path` is untouched."""
    tmp = _temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with open(fd, "wb") as sink:
            produce(sink)
            sink.flush()
            os.fsync(sink.fileno())
            size = os.fstat(sink.fileno()).st_size
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return size
