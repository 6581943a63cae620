"""The ephemeral X25519 keys a restore asks keepers to release an epoch to, kept across a crash
(docs/custody.md, "Restore", step 3).

Keepers release an epoch once per grant (a run, or one disaster claim), to one ephemeral key, and answer again only
a request carrying that same key (release rules R1 and R3: a **repeat**). So a restore that died after the keepers
released (before the resident was committed here) can resume under the same claim only if it kept the secret:
it is written here, durably (`write_atomically`: 0600, fsynced), before any keeper sees the public half, and
removed once the resident lives here, and when a restore of it begins under another grant (the keys of a claim that
was given up open nothing any more). One file per (resident, epoch, grant) under `<data dir>/restoring/keys/`.

A file and not a table: the secret belongs to the restore's work directory, like its downloads, and to nothing the
node's schema knows (the resident has no row here until the install commits). It opens nothing alone: a keeper
seals to it only for the claim's new host (or, for a run, the old host, inside the window), which could ask with
a key of its own for any epoch not yet released under that grant.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import BinaryIO

from ftm.federation.identity import generate_inbox_secret
from ftm.node.atomicfile import write_atomically

KEYS_DIR_NAME = "keys"
SECRET_BYTES = 32


class RestoreKeys:
    def __init__(self, work_dir: Path) -> None:
        self._dir = work_dir / KEYS_DIR_NAME

    async def secret(self, resident_id: str, epoch: int, purpose: str, claim_id: bytes) -> bytes:
        """The ephemeral secret to ask for (resident, epoch) under this grant with: the one kept, or a fresh one,
        kept (on disk, fsynced) before this returns."""
        return await asyncio.to_thread(self._secret, self._path(resident_id, epoch, purpose, claim_id))

    def _secret(self, path: Path) -> bytes:
        try:
            kept = path.read_bytes()
        except FileNotFoundError:
            kept = b""
        if len(kept) == SECRET_BYTES:
            return kept
        fresh = generate_inbox_secret()
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)

        def produce(sink: BinaryIO) -> None:
            sink.write(fresh)

        write_atomically(path, produce)
        return fresh

    async def forget(self, resident_id: str) -> None:
        """The resident lives here now: its restore's keys go (every epoch and grant)."""
        await asyncio.to_thread(self._forget, resident_id)

    def _forget(self, resident_id: str) -> None:
        for path in self._dir.glob(f"{_name(resident_id)}-*.key"):
            path.unlink(missing_ok=True)

    async def forget_other_grants(self, resident_id: str, purpose: str, claim_id: bytes) -> int:
        """A restore under this grant begins: keys kept for the resident under any other grant (a claim that was
        given up, or a run grant a disaster claim replaced) can never be asked with again, so they go. Returns how
        many files went."""
        return await asyncio.to_thread(self._forget_other_grants, resident_id, _grant(purpose, claim_id))

    def _forget_other_grants(self, resident_id: str, grant: str) -> int:
        stale = [p for p in self._dir.glob(f"{_name(resident_id)}-*.key") if not p.name.endswith(f"-{grant}.key")]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def _path(self, resident_id: str, epoch: int, purpose: str, claim_id: bytes) -> Path:
        return self._dir / f"{_name(resident_id)}-{epoch}-{_grant(purpose, claim_id)}.key"


def _grant(purpose: str, claim_id: bytes) -> str:
    return hashlib.sha256(purpose.encode() + b"\x00" + claim_id).hexdigest()[:32]


def _name(resident_id: str) -> str:
    # Resident ids are the federation's derived ids (letters, digits, `_`), but a file name never trusts one.
    return hashlib.sha256(resident_id.encode()).hexdigest()[:32]
