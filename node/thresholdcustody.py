"""Threshold custody: each epoch's key is derived from a secret dealt k-of-n to keepers, and the node keeps nothing
that opens a resident between runs. docs/custody.md ("Keeper protocol") is the protocol; docs/custody-host.md is
this side of it, and the record format below.

    new_epoch_key    picks n keepers (active before suspect, vetted registrations only), deals a fresh secret
                     k-of-n with Feldman commitments, and derives the key (HKDF, bound to resident and epoch). The
                     dealing stays in memory only until `seal_epoch_key` takes it.
    seal_epoch_key   the record: k, the commitments, the Merkle root and length of the epoch's vault file (sealed
                     before), and for each keeper its x and its share sealed to its key. Nothing in the clear. If
                     the file begins with the same bytes as the previous epoch's, the record names that epoch as
                     its base (keepers holding it copy those bytes instead of receiving them).
    open_epoch_key   asks holders for their share (a `run` release, sealed to the epoch's ephemeral X25519 key),
                     k at a time until k verified shares are in; a share that does not verify is named, logged and
                     counted against its keeper, and the others are asked instead.

Keepers release an epoch for a run to one ephemeral key, and again to that key only (release rule R1). So the
ephemeral secret of (resident, epoch) is made once and kept in the database (`custody_run_keys`, committed before
any keeper is asked), and every later attempt to open the epoch asks with it: a retry after too few keepers
answered, and a retry after the process died between the releases and the commit that moves the resident on. The
row is deleted with the epoch's key record, in the transaction that commits the next epoch (or the resident's
move or deletion). The secret alone opens nothing: keepers answer only requests the host's key signs, inside the
run window, and whoever holds that key on this disk could ask for any epoch not yet released anyway.

Delivering deposits and replicas, committing, destroying and challenging is the custody worker's job
(`ftm.node.custodyworker`), from the records this module makes.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ftm.federation import codec
from ftm.federation.identity import generate_inbox_secret, inbox_public_key
from ftm.keeper import merkle, shares
from ftm.keeper.protocol import PROTOCOL_VERSION, DepositBase, Purpose, ReleaseRequest
from ftm.keeper.shareboxes import ShareBoxError, open_released_share, seal_share_to_keeper
from ftm.node.custody import CustodyIntegrityError, CustodyUnavailable, LocalCustody, is_local_record
from ftm.node.keeperclient import KeeperAddress, KeeperCallError, KeeperClient
from ftm.node.store.custody import HOLDING_STATES, CustodyStore, ReplicaKeeper
from ftm.node.vaultstore import VaultStore

log = logging.getLogger(__name__)

RECORD_VERSION = 1
MAX_RECORD_BYTES = 64 * 1024
MAX_DEALINGS_HELD = 1024  # dealings made but not yet sealed (a caller that failed in between); oldest dropped
MIN_BASE_PREFIX = 64 * 1024  # a shared prefix shorter than this is not worth naming: the whole file goes
_COMPARE_BLOCK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RecordHolder:
    keeper_key: bytes
    x: int
    sealed_share: bytes  # seal_to_node(keeper_key, SHARE_BOX_PREFIX ‖ share_binding(resident, epoch, x) ‖ value)


@dataclass(frozen=True, slots=True)
class ThresholdRecord:
    """What the node stores for an epoch under threshold custody (the `record` of its key row)."""

    version: int
    threshold: int
    commitments: bytes  # `shares.Commitments` encoded
    root: bytes  # Merkle root of the epoch's vault file (`ftm.keeper.merkle`)
    length: int
    holders: tuple[RecordHolder, ...]
    # The previous epoch this epoch's vault file begins like, and how many bytes they share (keepers that hold
    # that epoch copy them instead of receiving them); None when none is worth naming. Older records lack it.
    base: DepositBase | None = None


def common_prefix(first: Path, second: Path) -> int:
    """How many bytes the two files share from their start (0 if either is missing), compared a block at a time.
    Blocking: run it in a thread."""
    try:
        with open(first, "rb") as one, open(second, "rb") as other:
            shared = 0
            while True:
                a, b = one.read(_COMPARE_BLOCK), other.read(_COMPARE_BLOCK)
                if a == b and len(a) == _COMPARE_BLOCK:
                    shared += len(a)
                    continue
                return shared + _shared_start(a, b)
    except FileNotFoundError:
        return 0


def _shared_start(a: bytes, b: bytes) -> int:
    """The length of the common start of two blocks: binary search over slices compared at C speed."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def encode_record(record: ThresholdRecord) -> bytes:
    return codec.encode(record)


def decode_record(data: bytes) -> ThresholdRecord:
    """Strictly decode a record; `CustodyIntegrityError` for anything that is not one (names no value)."""
    try:
        record = codec.decode(ThresholdRecord, data, max_bytes=MAX_RECORD_BYTES)
        commitments = shares.Commitments.decode(record.commitments)
    except (codec.DecodeError, shares.ShareError) as error:
        raise CustodyIntegrityError(f"not a threshold custody record: {error}") from None
    xs = {holder.x for holder in record.holders}
    if (
        record.version != RECORD_VERSION
        or commitments.threshold != record.threshold
        or len(record.root) != 32
        or record.length < 0
        or len(xs) != len(record.holders)
        or not xs <= set(range(1, shares.MAX_SHARES + 1))
        or len(record.holders) < record.threshold
        or (
            record.base is not None
            and (len(record.base.root) != 32 or record.base.epoch < 0 or not 0 <= record.base.prefix <= record.length)
        )
    ):
        raise CustodyIntegrityError("not a well-formed version 1 threshold custody record")
    return record


@dataclass(slots=True)
class _Dealt:
    dealing: shares.Dealing
    keepers: tuple[ReplicaKeeper, ...]
    key: bytes


class ThresholdCustody:
    mode: str = "threshold"
    opens_once: bool = True

    def __init__(
        self,
        *,
        threshold: int,
        keepers: int,
        store: CustodyStore,
        client: KeeperClient,
        vault: VaultStore,
        inherited: LocalCustody | None = None,
    ) -> None:
        """`inherited` opens records sealed under local custody before the node switched modes (its next run
        seals the resident under threshold custody); without it such records cannot be opened."""
        if not 1 <= threshold < keepers <= shares.MAX_SHARES:
            raise ValueError("threshold custody needs 1 <= threshold < keepers <= 255")
        self.threshold = threshold
        self.keepers = keepers
        self._store = store
        self._client = client
        self._vault = vault
        self._inherited = inherited
        self._dealt: OrderedDict[tuple[str, int], _Dealt] = OrderedDict()
        self.on_stored: list[Callable[[], None]] = []  # the worker's kick

    # --- dealing and sealing ------------------------------------------------------------------------------------

    async def new_epoch_key(self, resident_id: str, epoch: int) -> bytes:
        chosen = await self.pick_keepers()
        dealing = shares.deal(self.threshold, len(chosen))
        key = shares.derive_epoch_key(dealing.secret, context=shares.epoch_context(resident_id, epoch))
        self._dealt[(resident_id, epoch)] = _Dealt(dealing, chosen, key)
        self._dealt.move_to_end((resident_id, epoch))
        while len(self._dealt) > MAX_DEALINGS_HELD:
            self._dealt.popitem(last=False)
        return key

    async def pick_keepers(self) -> tuple[ReplicaKeeper, ...]:
        """The keepers a new epoch is dealt to: `keepers` of them, never a suspect one while another is available;
        fewer if fewer are enrolled, but never fewer than threshold + 1 (an epoch must be able to commit)."""
        dealable = await self._store.dealable()
        if len(dealable) < self.threshold + 1:
            raise CustodyUnavailable(
                f"threshold custody needs at least {self.threshold + 1} keepers of vetted Keepers to deal to; "
                f"{len(dealable)} are enrolled"
            )
        return tuple(dealable[: self.keepers])

    async def seal_epoch_key(self, resident_id: str, epoch: int, key: bytes) -> bytes:
        """The record of an epoch whose vault file is already sealed under `key`, the key `new_epoch_key` gave."""
        dealt = self._dealt.pop((resident_id, epoch), None)
        if dealt is None or not hmac.compare_digest(dealt.key, key):
            raise ValueError("threshold custody seals only the key new_epoch_key dealt for this resident and epoch")
        path = self._vault.path_for(resident_id, epoch)
        tree = await merkle.file_root(path)
        base = await self._base(resident_id, epoch, path)
        holders = tuple(
            RecordHolder(keeper.keeper_key, share.x, seal_share_to_keeper(keeper.keeper_key, resident_id, epoch, share))
            for keeper, share in zip(dealt.keepers, dealt.dealing.shares, strict=True)
        )
        record = ThresholdRecord(
            RECORD_VERSION, self.threshold, dealt.dealing.commitments.encode(), tree.root, tree.length, holders, base
        )
        del dealt  # the secret and the clear shares go with it
        return encode_record(record)

    async def _base(self, resident_id: str, epoch: int, path: Path) -> DepositBase | None:
        """The resident's previous epoch as a base of this one: if this node recorded it under threshold custody
        (so keepers may hold it) and its vault file is still here, the bytes the two files share from the start;
        None if they share fewer than `MIN_BASE_PREFIX`."""
        if epoch == 0:
            return None
        previous = await self._store.epoch(resident_id, epoch - 1)
        if previous is None or previous.state == "destroyed":
            return None
        prefix = await asyncio.to_thread(common_prefix, self._vault.path_for(resident_id, epoch - 1), path)
        if prefix < MIN_BASE_PREFIX:
            return None
        return DepositBase(epoch - 1, previous.root, min(prefix, previous.length))

    def epoch_stored(self) -> None:
        for kick in self.on_stored:
            kick()

    # --- opening ------------------------------------------------------------------------------------------------

    async def open_epoch_key(self, resident_id: str, epoch: int, record: bytes) -> bytes:
        if is_local_record(record):
            if self._inherited is None:
                raise CustodyIntegrityError(
                    f"resident {resident_id} epoch {epoch} is sealed under local custody and no master key is loaded"
                )
            return await self._inherited.open_epoch_key(resident_id, epoch, record)
        parsed = decode_record(record)
        commitments = shares.Commitments.decode(parsed.commitments)
        secret = await self._gather(resident_id, epoch, parsed, commitments)
        return shares.derive_epoch_key(secret, context=shares.epoch_context(resident_id, epoch))

    async def _gather(
        self, resident_id: str, epoch: int, record: ThresholdRecord, commitments: shares.Commitments
    ) -> shares.Secret:
        secret_key = await self._run_key(resident_id, epoch)
        ephemeral = inbox_public_key(secret_key)
        valid: dict[int, shares.Share] = {}
        waiting = await self._ordered(resident_id, epoch, record.holders)
        failures: list[str] = []
        try:
            while len(valid) < record.threshold and waiting:
                wave, waiting = waiting[: record.threshold - len(valid)], waiting[record.threshold - len(valid) :]
                answers = await asyncio.gather(
                    *(self._ask(resident_id, epoch, holder, secret_key, ephemeral) for holder in wave)
                )
                given = [share for share in answers if share is not None]
                failures += [f"x={h.x}" for h, share in zip(wave, answers, strict=True) if share is None]
                if not given:
                    continue
                try:
                    _, rejected = shares.combine_valid([*valid.values(), *given], commitments)
                except shares.NotEnoughShares as short:
                    rejected = short.rejected
                bad = {rejection.x for rejection in rejected}
                for holder in wave:
                    if holder.x in bad:
                        await self._count_bad(resident_id, epoch, holder)
                valid.update((share.x, share) for share in given if share.x not in bad)
            if len(valid) < record.threshold:
                raise CustodyUnavailable(
                    f"{len(valid)} of the {record.threshold} shares needed for resident {resident_id} epoch {epoch} "
                    f"were released ({', '.join(failures) or 'no other holder'} did not)"
                )
            secret, _ = shares.combine_valid(list(valid.values()), commitments)
            return secret
        finally:
            del secret_key  # a retry asks with the kept row's secret, not with anything this call held

    async def _run_key(self, resident_id: str, epoch: int) -> bytes:
        """The epoch's ephemeral X25519 secret: the one kept for it, or a new one, kept (committed) before any
        keeper sees its public half."""
        secret_key = await self._store.run_key(resident_id, epoch, generate_inbox_secret())
        if secret_key is None:
            raise CustodyUnavailable(f"resident {resident_id} has no key record of epoch {epoch} any more")
        return secret_key

    async def _ordered(self, resident_id: str, epoch: int, holders: Sequence[RecordHolder]) -> list[RecordHolder]:
        """Holders that signed a Holding first, then the rest; suspect and retired keepers last."""
        deliveries = {d.keeper_key: d for d in await self._store.deliveries(resident_id, epoch)}
        states = {k.keeper_key: k.state for k in await self._store.keepers()}

        def rank(holder: RecordHolder) -> tuple[int, int, int]:
            delivery = deliveries.get(holder.keeper_key)
            held = delivery is not None and delivery.state in HOLDING_STATES
            return (0 if held else 1, 0 if states.get(holder.keeper_key) == "active" else 1, holder.x)

        return sorted(holders, key=rank)

    async def _ask(
        self, resident_id: str, epoch: int, holder: RecordHolder, secret_key: bytes, ephemeral: bytes
    ) -> shares.Share | None:
        keeper = await self._store.keeper(holder.keeper_key)
        if keeper is None:
            return None
        request = ReleaseRequest(PROTOCOL_VERSION, resident_id, epoch, Purpose.RUN.value, ephemeral, b"")
        try:
            release = (await self._client.release(KeeperAddress(keeper.keeper_key, keeper.url), request)).message
        except KeeperCallError as error:
            log.info(
                "keeper did not release a share",
                extra={"resident_id": resident_id, "epoch": epoch, "x": holder.x, "code": error.code},
            )
            return None
        if release.x != holder.x:
            await self._count_bad(resident_id, epoch, holder)
            return None
        try:
            return open_released_share(secret_key, release.sealed_share, resident_id, epoch, holder.x)
        except ShareBoxError:
            await self._count_bad(resident_id, epoch, holder)
            return None

    async def _count_bad(self, resident_id: str, epoch: int, holder: RecordHolder) -> None:
        log.warning(
            "a keeper released a share that does not verify; it is skipped and counted against the keeper",
            extra={"resident_id": resident_id, "epoch": epoch, "x": holder.x, "keeper": holder.keeper_key.hex()},
        )
        await self._store.count_bad_share(holder.keeper_key)
