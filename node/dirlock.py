"""Who else has this data directory open: the lock that makes the start-up sweep safe with several processes.

Every process that opens a node (the daemon, and CLI commands such as `intake`, `status` or `run-now` beside it)
holds a shared `flock` on `node.lock` for as long as it has the node open. The vault sweep deletes files the
database does not point at, which includes a file another process has sealed and is about to commit, so it may run
only in a process that is alone: one that gets the lock *exclusively*. That process sweeps, then turns its lock
shared. A process that cannot get it exclusively skips the sweep (someone else's start already did it). The kernel
drops the lock when a process dies, so a crashed daemon never blocks the next start.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

LOCK_NAME = "node.lock"


class DataDirLock:
    def __init__(self, directory: Path) -> None:
        self._path = directory / LOCK_NAME
        self._fd: int | None = None

    async def open_exclusive_if_alone(self) -> bool:
        """Hold the lock: exclusively (True) if no other process has the directory open, else shared (False)."""
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # Others hold it shared; wait (briefly, off the loop) in case one of them is sweeping right now.
            await asyncio.to_thread(fcntl.flock, self._fd, fcntl.LOCK_SH)
            return False
        return True

    def share(self) -> None:
        """Turn an exclusive hold into a shared one, letting other processes open the directory."""
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
