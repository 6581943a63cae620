"""Getting an epoch of a resident back from keepers for a restore: what they hold for the old host (`survey`), its
shares under the release policy (`gather_shares`), and its vault file (`fetch_replica`). Nothing a keeper says is
believed until checked: shares against the Feldman commitments (`combine_valid`, naming each one that fails), the
downloaded file, every byte of it, against the Merkle root, and at the end (in `ftm.node.restore`) the key against
the vault file's key commitment. docs/custody.md ("Restore") is the procedure.

Keepers that disagree are not outvoted blindly: holdings are grouped by what they claim (commitments, and root
and length), the group most keepers back is tried first, and another group only if the first fails its checks.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ftm.federation.identity import inbox_public_key
from ftm.keeper import merkle, shares
from ftm.keeper.protocol import CHUNK_BYTES, PROTOCOL_VERSION, DestroyOrder, DestroyReason, ReadRequest, ReleaseRequest
from ftm.keeper.shareboxes import ShareBoxError, open_released_share
from ftm.node.keeperclient import KeeperAddress, KeeperCallError, KeeperClient

log = logging.getLogger(__name__)

HELD_STATES = ("held", "committed")  # a keeper holds the whole replica and a verified share
READS_IN_FLIGHT = 4  # 1 MiB reads outstanding at once: keeps a loopback or LAN link busy


@dataclass(frozen=True, slots=True)
class EpochCopy:
    """One epoch of a resident as a group of keepers describe it (the same commitments, root and length)."""

    resident_id: str
    epoch: int
    commitments: bytes
    root: bytes
    length: int
    holders: tuple[KeeperAddress, ...]


@dataclass(frozen=True, slots=True)
class Survey:
    """What the keepers hold for the old host: per resident, its epochs' copies, newest epoch first and, within
    an epoch, the copy most keepers back first; and the keepers that could not be asked, with why."""

    residents: dict[str, list[EpochCopy]]
    unreachable: dict[str, str]


async def survey(client: KeeperClient, keepers: Sequence[KeeperAddress], old_host: bytes) -> Survey:
    answers = await asyncio.gather(*(client.holdings(k, old_host) for k in keepers), return_exceptions=True)
    unreachable: dict[str, str] = {}
    groups: dict[tuple[str, int, bytes, bytes, int], list[KeeperAddress]] = defaultdict(list)
    for keeper, answer in zip(keepers, answers, strict=True):
        if isinstance(answer, KeeperCallError):
            unreachable[keeper.url] = answer.code
            continue
        if isinstance(answer, BaseException):
            raise answer
        for entry in answer.entries:
            if entry.state in HELD_STATES and entry.commitments:
                place = (entry.resident_id, entry.epoch, entry.commitments, entry.root, entry.length)
                groups[place].append(keeper)
    residents: dict[str, list[EpochCopy]] = defaultdict(list)
    for (rid, epoch, commitments, root, length), holders in groups.items():
        residents[rid].append(EpochCopy(rid, epoch, commitments, root, length, tuple(holders)))
    for copies in residents.values():
        copies.sort(key=lambda c: (-c.epoch, -len(c.holders)))
    return Survey(dict(sorted(residents.items())), unreachable)


@dataclass(frozen=True, slots=True)
class Grant:
    """How shares are asked for: `client` signs as the old host (purpose run, R1) or as this node, the new host
    of a disaster claim (purpose disaster, R3, with its id)."""

    client: KeeperClient
    purpose: str
    claim_id: bytes


@dataclass
class Gathered:
    """The outcome of asking holders for their shares of one epoch."""

    secret: shares.Secret | None = None
    released: list[KeeperAddress] = field(default_factory=list)  # answered with a release: may read the replica
    rejected: list[tuple[KeeperAddress, int, str]] = field(default_factory=list)  # (keeper, x, why) named bad
    refused: dict[str, str] = field(default_factory=dict)  # keeper url → the code it answered
    unasked: list[KeeperAddress] = field(default_factory=list)  # holders left, if more reads are needed


async def gather_shares(
    grant: Grant,
    resident_id: str,
    epoch: int,
    holders: Sequence[KeeperAddress],
    commitments: shares.Commitments,
    secret_key: bytes,
) -> Gathered:
    """Ask holders, `threshold - valid` at a time, until `threshold` shares verify against the commitments or
    none is left. A share that does not verify (or whose box does not open, or repeats an x) is named, logged and
    skipped, and the next holder is asked in its place. `secret_key` is the restore's ephemeral X25519 secret for
    this epoch and grant, kept across a crash (`ftm.node.restorekeys`): a keeper that released to it before
    answers again (a repeat)."""
    ephemeral = inbox_public_key(secret_key)
    need = commitments.threshold
    valid: dict[int, shares.Share] = {}
    gathered = Gathered()
    waiting = list(holders)
    try:
        while len(valid) < need and waiting:
            wave, waiting = waiting[: need - len(valid)], waiting[need - len(valid) :]
            asked = [_ask(grant, resident_id, epoch, k, secret_key, ephemeral, gathered) for k in wave]
            given: list[tuple[KeeperAddress, shares.Share]] = []
            for keeper, share in zip(wave, await asyncio.gather(*asked), strict=True):
                if share is None:
                    continue
                if share.x in valid or any(share.x == other.x for _, other in given):
                    _reject(gathered, resident_id, epoch, keeper, share.x, "another keeper released this x")
                    continue
                given.append((keeper, share))
            if not given:
                continue
            try:
                _, rejected = shares.combine_valid([*valid.values(), *(s for _, s in given)], commitments)
            except shares.NotEnoughShares as short:
                rejected = short.rejected
            bad = {r.x for r in rejected}
            for keeper, share in given:
                if share.x in bad:
                    _reject(gathered, resident_id, epoch, keeper, share.x, "does not verify against the commitments")
                else:
                    valid[share.x] = share
        gathered.unasked = waiting
        if len(valid) >= need:
            gathered.secret, _ = shares.combine_valid(list(valid.values()), commitments)
        return gathered
    finally:
        valid.clear()


async def _ask(
    grant: Grant,
    resident_id: str,
    epoch: int,
    keeper: KeeperAddress,
    secret_key: bytes,
    ephemeral: bytes,
    gathered: Gathered,
) -> shares.Share | None:
    request = ReleaseRequest(PROTOCOL_VERSION, resident_id, epoch, grant.purpose, ephemeral, grant.claim_id)
    try:
        release = (await grant.client.release(keeper, request)).message
    except KeeperCallError as error:
        gathered.refused[keeper.url] = error.code
        log.info("keeper did not release a share", extra={"resident_id": resident_id, "code": error.code})
        return None
    gathered.released.append(keeper)
    try:
        return open_released_share(secret_key, release.sealed_share, resident_id, epoch, release.x)
    except (ShareBoxError, ValueError):
        _reject(gathered, resident_id, epoch, keeper, release.x, "its box does not open as this epoch's share")
        return None


async def permit_read(grant: Grant, resident_id: str, epoch: int, keeper: KeeperAddress, secret_key: bytes) -> bool:
    """Have one more holder release to us (to the epoch's kept key), its share unused: a keeper lets whoever an
    epoch was released to read its replica. Whether it released."""
    gathered = Gathered()
    await _ask(grant, resident_id, epoch, keeper, secret_key, inbox_public_key(secret_key), gathered)
    return keeper in gathered.released


def _reject(gathered: Gathered, resident_id: str, epoch: int, keeper: KeeperAddress, x: int, why: str) -> None:
    log.warning(
        "a keeper released a bad share; it is skipped",
        extra={"resident_id": resident_id, "epoch": epoch, "x": x, "keeper": keeper.key.hex(), "why": why},
    )
    gathered.rejected.append((keeper, x, why))


async def fetch_replica(
    client: KeeperClient,
    keeper: KeeperAddress,
    copy: EpochCopy,
    dst: Path,
    on_bytes: Callable[[int], None] = lambda done: None,
) -> merkle.MerkleRoot:
    """Stream the keeper's replica of `copy` into `dst` (created or emptied), 1 MiB a read with a few reads in
    flight, computing its Merkle root on the way; returns the root and length of what arrived (the caller compares
    them with the copy's). Memory stays at a few MiB whatever the size. `KeeperCallError` if the keeper fails."""
    sink = await asyncio.to_thread(open, dst, "wb")
    try:
        return await merkle.stream_root(_pieces(client, keeper, copy, sink, on_bytes))
    finally:
        await asyncio.to_thread(sink.close)


async def _pieces(
    client: KeeperClient, keeper: KeeperAddress, copy: EpochCopy, sink: BinaryIO, on_bytes: Callable[[int], None]
) -> AsyncIterator[bytes]:
    def start_read(offset: int) -> asyncio.Task[bytes]:
        size = min(CHUNK_BYTES, copy.length - offset)
        request = ReadRequest(PROTOCOL_VERSION, copy.resident_id, copy.epoch, offset, size)
        return asyncio.ensure_future(client.read(keeper, request))

    offsets = range(0, copy.length, CHUNK_BYTES)
    pending = [(offset, start_read(offset)) for offset in offsets[:READS_IN_FLIGHT]]
    following = iter(offsets[READS_IN_FLIGHT:])
    done = 0
    try:
        while pending:
            offset, task = pending.pop(0)
            data = await task
            if len(data) != min(CHUNK_BYTES, copy.length - offset):
                raise KeeperCallError("short_replica", f"{keeper.url} answered {len(data)} bytes at offset {offset}")
            await asyncio.to_thread(sink.write, data)
            done += len(data)
            on_bytes(done)
            following_offset = next(following, None)
            if following_offset is not None:
                pending.append((following_offset, start_read(following_offset)))
            yield data
    finally:
        for _, task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*(task for _, task in pending), return_exceptions=True)


def ranked_copies(copies: Sequence[EpochCopy]) -> list[list[EpochCopy]]:
    """Copies grouped by epoch (newest first) and, within one, by commitments: each inner list shares its
    commitments (so its shares), its copies ordered by how many keepers back them."""
    by_commitments: dict[tuple[int, bytes], list[EpochCopy]] = defaultdict(list)
    for copy in copies:
        by_commitments[(copy.epoch, copy.commitments)].append(copy)
    support = Counter({place: sum(len(c.holders) for c in group) for place, group in by_commitments.items()})
    order = sorted(by_commitments, key=lambda place: (-place[0], -support[place]))
    return [sorted(by_commitments[place], key=lambda c: -len(c.holders)) for place in order]


async def retire_old_epochs(client: KeeperClient, copies: Sequence[EpochCopy], now: int) -> int:
    """After a restore with the old host's own key: order every holder of the old host's epochs of the resident
    destroyed (`moved`: it lives elsewhere now), signed as the old host; returns the receipts received. Keepers
    that do not answer keep their copies until their Keeper clears them; nothing depends on it."""
    orders = [
        (
            keeper,
            DestroyOrder(PROTOCOL_VERSION, copy.resident_id, copy.epoch, DestroyReason.MOVED, client.host_key, now),
        )
        for copy in copies
        for keeper in copy.holders
    ]
    answers = await asyncio.gather(*(client.destroy(k, order) for k, order in orders), return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException) and not isinstance(answer, KeeperCallError):
            raise answer
    return sum(1 for answer in answers if not isinstance(answer, BaseException))
