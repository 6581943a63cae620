"""Reading a replica back: its host, or a requester an epoch was released to (a move's destination, a disaster's
new host), reads a held or committed epoch in ranges of at most `CHUNK_BYTES`.
"""

from __future__ import annotations

from ftm.keeper.errors import KeeperError
from ftm.keeper.holdingparts import SEALED, HoldingParts
from ftm.keeper.journal import key_id
from ftm.keeper.protocol import (
    CHUNK_BYTES,
    ReadRequest,
)


class Reading:
    def __init__(self, parts: HoldingParts) -> None:
        self._p = parts

    async def read(self, signer: bytes, request: ReadRequest) -> bytes:
        """Replica bytes for the host, or for a requester the epoch was released to (a move's destination, a
        disaster's new host); a released requester's first read (offset 0) is logged."""
        rid, epoch = request.resident_id, request.epoch
        if not 0 < request.length <= CHUNK_BYTES or request.offset < 0:
            raise KeeperError(400, "bad_range", f"a read is 1 to {CHUNK_BYTES} bytes from a non-negative offset")
        async with self._p.locks.hold(rid):
            record = await self._p.store.deposit(self._p.db, signer, rid, epoch)
            released_to = record is None
            if record is None:
                released = await self._p.store.released_to(self._p.db, rid, epoch, signer)
                record = None if released is None else await self._p.store.deposit(self._p.db, released, rid, epoch)
                if record is None:
                    message = "only the host, or a requester the epoch was released to, reads its replica"
                    raise KeeperError(403, "not_allowed", message)
            if record.state not in SEALED:
                raise KeeperError(409, "not_held", f"epoch {epoch} of {rid} is {record.state}")
            if request.offset > record.length:
                raise KeeperError(400, "bad_range", f"the replica is {record.length} bytes")
            if released_to and request.offset == 0:  # a move or a restore starts reading: worth a line in the log
                async with self._p.db.transaction("keeper.read") as tx:
                    await self._p.journal.record(
                        tx, "read_started", rid, host=key_id(record.host_key), epoch=epoch, reader=key_id(signer)
                    )
            length = min(request.length, record.length - request.offset)
            return await self._p.replicas.read(record.host_key, rid, epoch, request.offset, length)
