"""The keeper's release-policy operations: `release` a share, open a `move` claim, `veto` one, open a `disaster`
claim (docs/custody.md, "Keeper side"). Decisions are `ftm.keeper.policy`'s; this module verifies signatures,
loads the facts the policy needs from the store inside the write transaction that will record the decision (so
two requests can never both find an epoch unreleased), logs the decision there, stores what the policy returns,
and only after the commit seals and sends anything.

The facts: a resident's are those of its most recent deposit here (its host, run window, guardians) with the
host's last contact and whether it is tombstoned; an epoch's are that host's deposit of it and the grants it was
released under; the claims are every move or disaster claim recorded for the resident, oldest first.

`displaced_deposit` serves the destroy orders of a disaster claim's new host for the epochs of the host it
displaced (docs/custody.md, "Retiring the displaced host's copies"); `ftm.keeper.destroying` acts on it.

Claims carry their own time (`created_at`): one created more than `CLAIM_MAX_AGE` ago or more than
`CLAIM_FUTURE_SKEW` ahead is refused (`stale_claim`) before the policy sees it, and every signature a claim
carries must verify (`bad_claim_signature`), so what the keeper stores as evidence is all good.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import LogValue
from ftm.federation.identity import BadSignature, SigningKey, verify
from ftm.keeper import policy
from ftm.keeper.errors import KeeperError
from ftm.keeper.journal import Journal, key_id
from ftm.keeper.policy import (
    Decision,
    DisasterClaimFacts,
    DisasterRecord,
    DisplacedDestroyFacts,
    EpochFacts,
    Grant,
    MoveClaimFacts,
    MoveRecord,
    PolicySettings,
    ReleaseFacts,
    ResidentFacts,
    RunWindow,
    VetoFacts,
)
from ftm.keeper.protocol import (
    CLAIM_DOMAIN,
    PROTOCOL_VERSION,
    RELEASE_DOMAIN,
    Ack,
    ClaimSignature,
    DisasterClaim,
    DisasterTerms,
    MoveClaim,
    MoveTerms,
    Release,
    ReleaseRequest,
    SignedAnswer,
    Veto,
    WireError,
    claim_id,
    decode,
    encode,
    sign_answer,
)
from ftm.keeper.shareboxes import EPHEMERAL_KEY_BYTES, ShareBoxError, open_share, seal_share_to_requester
from ftm.keeper.shares import Share
from ftm.keeper.store import ClaimRecord, DepositRecord, KeeperStore, Queries

CLAIM_MAX_AGE = 7 * 86_400  # guardians may take days to gather signatures, not weeks
CLAIM_FUTURE_SKEW = 15 * 60  # as for federation events
MAX_CLAIM_SIGNATURES = 64
MAX_DISASTER_RESIDENTS = 1000
KEY_BYTES = 32
_PURPOSES = frozenset(policy.Purpose)

T = TypeVar("T")


class Releasing:
    def __init__(
        self,
        *,
        key: SigningKey,
        db: Database,
        store: KeeperStore,
        journal: Journal,
        clock: Clock,
        settings: PolicySettings,
    ) -> None:
        self._key = key
        self._db = db
        self._store = store
        self._journal = journal
        self._clock = clock
        self._settings = settings

    def _now(self) -> int:
        return int(self._clock.now())

    # --- facts ---------------------------------------------------------------------------------------------------

    async def _resident(self, q: Queries, resident_id: str) -> ResidentFacts | None:
        return await resident_facts(self._store, q, resident_id)

    async def _moves(self, q: Queries, resident_id: str) -> list[MoveRecord]:
        return await move_records(self._store, q, resident_id)

    async def _disasters(self, q: Queries, resident_id: str) -> list[DisasterRecord]:
        return await disaster_records(self._store, q, resident_id)

    # --- release -------------------------------------------------------------------------------------------------

    async def release(self, signer: bytes, request: ReleaseRequest) -> SignedAnswer:
        if len(request.ephemeral_key) != EPHEMERAL_KEY_BYTES:
            raise KeeperError(400, "bad_request", f"the ephemeral key is {EPHEMERAL_KEY_BYTES} bytes (X25519)")
        rid, epoch = request.resident_id, request.epoch
        now = self._now()
        share: Share | None = None
        async with self._db.transaction("keeper.release") as tx:
            await self._journal.contact(tx, signer, now)
            resident = await self._resident(tx, rid)
            record = None if resident is None else await self._store.deposit(tx, resident.host_key, rid, epoch)
            facts = None
            if record is not None:
                grants = await self._store.grants(tx, record.host_key, rid, epoch)
                released = frozenset(Grant(policy.Purpose(p), c, ephemeral_key=e) for p, c, e in grants)
                facts = EpochFacts(epoch, destroyed=record.state == "destroyed", released=released)
            decision = policy.decide_release(
                ReleaseFacts(
                    request.purpose, rid, epoch, signer, now, request.claim_id, ephemeral_key=request.ephemeral_key
                ),
                resident,
                facts,
                moves=await self._moves(tx, rid),
                disasters=await self._disasters(tx, rid),
                settings=self._settings,
            )
            host_key = None if resident is None else resident.host_key
            data: dict[str, LogValue] = {
                "epoch": epoch,
                "purpose": request.purpose if request.purpose in _PURPOSES else "other",
                "requester": key_id(signer),
            }
            if decision.allowed:
                assert record is not None and decision.grant is not None
                try:
                    share = open_share(self._key, record.sealed_share, rid, epoch, record.x)
                except ShareBoxError:
                    raise KeeperError(500, "share_damaged", "this keeper's stored share does not open") from None
                grant = decision.grant
                if not decision.repeat:  # a repeat's grant, to this very ephemeral key, is recorded already
                    await self._store.record_release(
                        tx, record, grant.purpose, grant.claim_id, grant.ephemeral_key, signer, now
                    )
                data["repeat"] = decision.repeat
                await self._journal.record(tx, "release_granted", rid, code=decision.code, **data)
            else:
                await self._journal.refusal(tx, "release_refused", rid, decision.code, host_key, **data)
        if share is None:
            raise _refused(decision)
        assert record is not None and decision.grant is not None
        # Sealed to the grant's key, which is the request's (a repeat is granted only to the key it was given to).
        sealed = seal_share_to_requester(decision.grant.ephemeral_key, rid, epoch, share)
        del share
        answer = Release(
            PROTOCOL_VERSION, rid, epoch, record.x, request.purpose, signer, request.ephemeral_key, sealed, now
        )
        return sign_answer(self._key, RELEASE_DOMAIN, answer)

    # --- move and veto -------------------------------------------------------------------------------------------

    async def move(self, signer: bytes, claim: MoveClaim) -> Ack:
        terms = _decode_terms(MoveTerms, claim.body)
        signers = _verified_signers(claim.body, claim.signatures)
        now = self._now()
        _check_fresh(terms.created_at, now)
        if signer not in (terms.host_key, terms.destination_key):
            raise KeeperError(403, "not_a_party", "a move claim is submitted by its host or its destination")
        cid, rid = claim_id(claim.body), terms.resident_id
        async with self._db.transaction("keeper.move") as tx:
            await self._journal.contact(tx, signer, now)
            resident = await self._resident(tx, rid)
            moves = await self._moves(tx, rid)
            facts = MoveClaimFacts(cid, rid, terms.host_key, terms.destination_key, signers, now)
            decision, record = policy.open_move_claim(facts, resident, moves, settings=self._settings)
            data: dict[str, LogValue] = {
                "claim": cid.hex(),
                "epoch": terms.epoch,
                "destination": key_id(terms.destination_key),
            }
            if record is not None:
                if all(m.claim_id != cid for m in moves):
                    stored = ClaimRecord(
                        cid, rid, "move", record.host_key, record.destination_key, terms.destination_url, (),
                        record.opened_at, record.ready_at, "open", None, None,
                    )  # fmt: skip
                    await self._store.open_claim(tx, stored, claim.body, _signatures(claim.signatures))
                    await self._journal.record(tx, "move_opened", rid, code=decision.code, **data)
            else:
                host_key = None if resident is None else resident.host_key
                await self._journal.refusal(tx, "move_refused", rid, decision.code, host_key, **data)
        if record is None:
            raise _refused(decision)
        return Ack(rid, terms.epoch, "move_pending", record.ready_at)

    async def veto(self, signer: bytes, veto: Veto) -> Ack:
        now = self._now()
        claims = [c for c in await self._store.claims_with_id(self._db, veto.claim_id) if c.kind == "move"]
        if not claims:
            raise KeeperError(403, policy.Code.NO_MOVE_CLAIM, "no move claim with that id")
        rid = claims[0].resident_id
        async with self._db.transaction("keeper.veto") as tx:
            await self._journal.contact(tx, signer, now)
            resident = await self._resident(tx, rid)
            moves = await self._moves(tx, rid)
            decision, record = policy.veto_move(VetoFacts(veto.claim_id, rid, signer, now), resident, moves)
            data: dict[str, LogValue] = {"claim": veto.claim_id.hex(), "by": key_id(signer)}
            if record is not None:
                await self._store.veto_claim(tx, veto.claim_id, rid, signer, now)
                await self._journal.record(tx, "veto_recorded", rid, code=decision.code, **data)
            else:
                host_key = None if resident is None else resident.host_key
                await self._journal.refusal(tx, "veto_refused", rid, decision.code, host_key, **data)
        if record is None:
            raise _refused(decision)
        return Ack(rid, 0, "vetoed", now)

    # --- disaster ------------------------------------------------------------------------------------------------

    async def disaster(self, signer: bytes, claim: DisasterClaim) -> Ack:
        terms = _decode_terms(DisasterTerms, claim.body)
        if not terms.resident_ids or len(terms.resident_ids) > MAX_DISASTER_RESIDENTS:
            raise KeeperError(400, "bad_claim", f"a disaster claim names 1 to {MAX_DISASTER_RESIDENTS} residents")
        if len(set(terms.resident_ids)) != len(terms.resident_ids):
            raise KeeperError(400, "bad_claim", "a disaster claim names each resident once")
        signers = _verified_signers(claim.body, claim.signatures)
        now = self._now()
        _check_fresh(terms.created_at, now)
        if signer not in signers:
            raise KeeperError(403, "not_a_party", "a disaster claim is submitted by one of its signers")
        cid = claim_id(claim.body)
        opened: list[DisasterRecord] = []
        refusal: Decision | None = None
        async with self._db.transaction("keeper.disaster") as tx:
            await self._journal.contact(tx, signer, now)
            decided: list[tuple[str, Decision, DisasterRecord | None, list[DisasterRecord]]] = []
            for rid in terms.resident_ids:
                resident = await self._resident(tx, rid)
                if resident is None:
                    continue  # other keepers hold it
                disasters = await self._disasters(tx, rid)
                facts = DisasterClaimFacts(cid, rid, terms.old_host_key, terms.new_host_key, signers, now)
                decision, record = policy.open_disaster_claim(facts, resident, disasters, settings=self._settings)
                decided.append((rid, decision, record, disasters))
                if record is None and refusal is None:
                    refusal = decision
            data: dict[str, LogValue] = {"claim": cid.hex(), "new_host": key_id(terms.new_host_key)}
            if not decided:
                refusal = Decision(False, policy.Code.UNKNOWN_RESIDENT, "this keeper holds none of the residents")
                await self._journal.refusal(tx, "disaster_refused", cid.hex(), refusal.code, None, **data)
            for rid, decision, record, disasters in decided:
                if refusal is not None:  # one refusal refuses the claim for every resident here
                    code = decision.code if record is None else refusal.code
                    await self._journal.refusal(tx, "disaster_refused", rid, code, terms.old_host_key, **data)
                    continue
                assert record is not None
                opened.append(record)
                if all(d.claim_id != cid for d in disasters):
                    stored = ClaimRecord(
                        cid, rid, "disaster", record.old_host_key, record.new_host_key, terms.new_host_url,
                        tuple(sorted(record.guardian_signers)), record.opened_at, record.ready_at, "open", None, None,
                    )  # fmt: skip
                    await self._store.open_claim(tx, stored, claim.body, _signatures(claim.signatures))
                    await self._journal.record(tx, "disaster_opened", rid, code=decision.code, **data)
        if refusal is not None:
            raise _refused(refusal)
        subject = terms.resident_ids[0] if len(terms.resident_ids) == 1 else ""
        return Ack(subject, 0, "disaster_pending", max(r.ready_at for r in opened))


async def resident_facts(store: KeeperStore, q: Queries, resident_id: str) -> ResidentFacts | None:
    """What the policy knows of a resident: the facts of its most recent deposit here (see the module)."""
    latest = await store.latest_deposit(q, resident_id)
    if latest is None:
        return None
    host = await store.host(q, latest.host_key)
    return ResidentFacts(
        resident_id=resident_id,
        host_key=latest.host_key,
        window=RunWindow(latest.window_start, latest.window_length),
        last_host_contact=0 if host is None else host.last_heard,
        guardians=frozenset(latest.guardians),
        guardian_threshold=latest.guardian_threshold or None,
        tombstoned=await store.is_tombstoned(q, resident_id),
    )


async def move_records(store: KeeperStore, q: Queries, resident_id: str) -> list[MoveRecord]:
    return [_move_record(c) for c in await store.claims_of(q, resident_id, "move")]


async def disaster_records(store: KeeperStore, q: Queries, resident_id: str) -> list[DisasterRecord]:
    return [_disaster_record(c) for c in await store.claims_of(q, resident_id, "disaster")]


async def displaced_deposit(
    store: KeeperStore, q: Queries, signer: bytes, resident_id: str, epoch: int, now: int
) -> tuple[DepositRecord | None, Decision]:
    """For a destroy order signed by `signer` for an epoch it did not deposit: the deposit of another host it may
    have destroyed as the new host of a disaster claim against that host (`policy.decide_displaced_destroy`), and
    the decision (the last refusal when none may be)."""
    resident = await resident_facts(store, q, resident_id)
    disasters = await disaster_records(store, q, resident_id)
    decision = Decision(False, policy.Code.UNKNOWN_EPOCH, f"no deposit of epoch {epoch} by another host")
    for record in await store.deposits_of(q, resident_id):
        if record.epoch != epoch or record.host_key == signer:
            continue
        host = await store.host(q, record.host_key)
        facts = DisplacedDestroyFacts(resident_id, record.host_key, signer, 0 if host is None else host.last_heard, now)
        decision = policy.decide_displaced_destroy(facts, resident, disasters)
        if decision.allowed:
            return record, decision
    return None, decision


def _refused(decision: Decision) -> KeeperError:
    return KeeperError(403, decision.code, decision.reason)


def _decode_terms(cls: type[T], body: bytes) -> T:
    try:
        return decode(cls, body)
    except WireError as error:
        raise KeeperError(400, "bad_claim", f"the claim's body is not a valid {cls.__name__}: {error}") from None


def _verified_signers(body: bytes, signatures: Sequence[ClaimSignature]) -> frozenset[bytes]:
    if not signatures or len(signatures) > MAX_CLAIM_SIGNATURES:
        raise KeeperError(400, "bad_claim", f"a claim carries 1 to {MAX_CLAIM_SIGNATURES} signatures")
    keys = [s.key for s in signatures]
    if len(set(keys)) != len(keys) or any(len(k) != KEY_BYTES for k in keys):
        raise KeeperError(400, "bad_claim", "a claim's signers are distinct 32-byte keys")
    for signature in signatures:
        try:
            verify(signature.key, CLAIM_DOMAIN, body, signature.signature)
        except BadSignature:
            raise KeeperError(
                400, "bad_claim_signature", f"the signature of {key_id(signature.key)} does not verify"
            ) from None
    return frozenset(keys)


def _check_fresh(created_at: int, now: int) -> None:
    if created_at < now - CLAIM_MAX_AGE or created_at > now + CLAIM_FUTURE_SKEW:
        raise KeeperError(403, "stale_claim", "the claim was created too long ago, or in the future")


def _signatures(signatures: Sequence[ClaimSignature]) -> bytes:
    return encode(tuple(signatures))


def _move_record(claim: ClaimRecord) -> MoveRecord:
    vetoed = claim.state == "vetoed"
    return MoveRecord(
        claim.claim_id,
        claim.host_key,
        claim.counterpart_key,
        claim.opened_at,
        claim.release_after,
        vetoed_by=claim.vetoed_by if vetoed else None,
        vetoed_at=claim.closed_at if vetoed else None,
    )


def _disaster_record(claim: ClaimRecord) -> DisasterRecord:
    return DisasterRecord(
        claim.claim_id,
        claim.host_key,
        claim.counterpart_key,
        frozenset(claim.guardian_signers),
        claim.opened_at,
        claim.release_after,
    )
