"""The destination's side of a move under threshold custody (release rule R2): getting the epoch key of the
resident it receives from the source's keepers, under the claim both nodes signed.

    commitments   each holder named in the manifest is asked what it holds for the source (`holdings`); the
                  commitments of (resident, epoch) most of them state are the ones shares are checked against
    shares        holders are asked (`release`, purpose `move`, the claim's id, this node's signature) k at a time,
                  each share sealed to the move's release key (an X25519 secret kept with the move); every share
                  is stored as it arrives, before it is used, since a keeper releases an epoch once per claim;
                  a share that does not verify is skipped and the next holder asked in its place
    key           combined from k verified shares and derived as for any epoch (HKDF, bound to resident and
                  epoch); the vault file's key commitment is the final check, made by the caller

A holder that answers `move_pending` (it accepted the claim later than the others) is skipped while k others
release; any `move_vetoed` ends the move (`MoveVetoed`). docs/federation-moves.md §8 is the specification.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence

from ftm.federation.clock import Clock
from ftm.federation.identity import inbox_public_key
from ftm.keeper import shares
from ftm.keeper.protocol import PROTOCOL_VERSION, Purpose, ReleaseRequest
from ftm.keeper.shareboxes import ShareBoxError, open_released_share
from ftm.node.keeperclient import KeeperAddress, KeeperCallError, KeeperClient
from ftm.node.movewire import KeeperHolder
from ftm.node.store.moves import MoveStore, StoredRelease

log = logging.getLogger(__name__)

HELD_STATES = ("held", "committed")
VETOED = "move_vetoed"
PENDING = "move_pending"


class MoveVetoed(Exception):
    """A keeper says the move's claim was vetoed: nothing will ever be released under it."""


class ReleaseUnavailable(Exception):
    """Too few shares now (`code`: `move_pending` if a keeper is still counting the delay); try again later."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MoveRelease:
    def __init__(self, *, client: KeeperClient, store: MoveStore, clock: Clock) -> None:
        self._client = client
        self._store = store
        self._clock = clock

    async def epoch_key(
        self,
        move_id: bytes,
        source_key: bytes,
        resident_id: str,
        epoch: int,
        claim_id: bytes,
        release_secret: bytes,
        holders: Sequence[KeeperHolder],
    ) -> bytes:
        keepers = [KeeperAddress(h.key, h.url) for h in holders]
        commitments, backers = await self._commitments(keepers, source_key, resident_id, epoch)
        need = commitments.threshold
        valid: dict[int, shares.Share] = {}
        asked: set[bytes] = set()
        for stored in await self._store.releases(move_id, epoch):
            share = self._open(release_secret, stored, resident_id, commitments)
            asked.add(stored.keeper_key)
            if share is not None:
                valid[share.x] = share
        # Keepers whose holdings back the commitments first: the others are unlikely to release a share that fits.
        waiting = sorted((k for k in keepers if k.key not in asked), key=lambda k: k.key not in backers)
        codes: list[str] = []
        ephemeral = inbox_public_key(release_secret)
        request = ReleaseRequest(PROTOCOL_VERSION, resident_id, epoch, Purpose.MOVE.value, ephemeral, claim_id)
        while len(valid) < need and waiting:
            wave, waiting = waiting[: need - len(valid)], waiting[need - len(valid) :]
            answers = await asyncio.gather(*(self._ask(move_id, k, request) for k in wave))
            for answer in answers:
                if isinstance(answer, str):
                    codes.append(answer)
                    continue
                share = self._open(release_secret, answer, resident_id, commitments)
                if share is not None and share.x not in valid:
                    valid[share.x] = share
        if VETOED in codes:
            raise MoveVetoed("a keeper says the move's claim was vetoed")
        if len(valid) < need:
            code = PENDING if PENDING in codes else "custody_unavailable"
            raise ReleaseUnavailable(
                code, f"{len(valid)} of the {need} shares needed were released ({', '.join(codes) or 'none asked'})"
            )
        secret, _ = shares.combine_valid(list(valid.values()), commitments)
        return shares.derive_epoch_key(secret, context=shares.epoch_context(resident_id, epoch))

    async def _commitments(
        self, keepers: Sequence[KeeperAddress], source_key: bytes, resident_id: str, epoch: int
    ) -> tuple[shares.Commitments, set[bytes]]:
        """The commitments most holders state for the epoch, and the keepers that state them."""
        answers = await asyncio.gather(*(self._client.holdings(k, source_key) for k in keepers), return_exceptions=True)
        stated: dict[bytes, set[bytes]] = {}
        for keeper, answer in zip(keepers, answers, strict=True):
            if isinstance(answer, KeeperCallError):
                continue
            if isinstance(answer, BaseException):
                raise answer
            for entry in answer.entries:
                if (entry.resident_id, entry.epoch) == (resident_id, epoch) and entry.state in HELD_STATES:
                    stated.setdefault(entry.commitments, set()).add(keeper.key)
        counts = Counter({commitments: len(backers) for commitments, backers in stated.items() if commitments})
        for commitments, _ in counts.most_common():
            try:
                return shares.Commitments.decode(commitments), stated[commitments]
            except shares.ShareError:
                continue
        raise ReleaseUnavailable("custody_unavailable", "no holder states what it holds of the epoch")

    async def _ask(self, move_id: bytes, keeper: KeeperAddress, request: ReleaseRequest) -> StoredRelease | str:
        """The keeper's release, stored before it is returned; or the code it answered."""
        try:
            release = (await self._client.release(keeper, request)).message
        except KeeperCallError as error:
            log.info("keeper did not release a share for a move", extra={"keeper": keeper.url, "code": error.code})
            return error.code
        stored = StoredRelease(request.epoch, release.x, keeper.key, release.sealed_share)
        if 1 <= release.x <= shares.MAX_SHARES:
            await self._store.add_release(move_id, stored, int(self._clock.now()))
        return stored

    @staticmethod
    def _open(
        secret: bytes, stored: StoredRelease, resident_id: str, commitments: shares.Commitments
    ) -> shares.Share | None:
        try:
            share = open_released_share(secret, stored.sealed_share, resident_id, stored.epoch, stored.x)
        except ShareBoxError:
            share = None
        if share is None or not shares.verify_share(share, commitments):
            log.warning(
                "a keeper released a share for a move that does not verify; skipped",
                extra={"keeper": stored.keeper_key.hex(), "x": stored.x},
            )
            return None
        return share
