"""The release policy: whether a keeper may hand out its share of a resident's epoch secret, and how move and
disaster claims are opened and vetoed. docs/custody.md ("Release policy") is the specification.

Pure decision logic: no I/O, no clock, no randomness. The keeper daemon verifies signatures, loads the facts from
its store, calls a function here, logs the `Decision` (its code and reason carry ids and numbers only, never
content), stores what it returns, and only then acts. The rules (ARCHITECTURE.md §4):

- R1 run: the registered host, inside the resident's daily run window, once per epoch: to one ephemeral key, which
  may ask again (a host that crashed after the release retries with the key it kept).
- R2 move: a claim signed by host and destination opens a delay in which the host or any guardian may veto;
  after it, the destination, once per epoch.
- R3 disaster: after the host's long silence, a claim signed by enough guardians opens a waiting period that any
  contact from the host cancels; after it, the new host, once per epoch: to one ephemeral key, which may ask
  again (a restore that crashed after the release resumes with the key it kept).
- R4 tombstoned: never; checked before anything else that is known about the resident.

Entry points: `decide_release` for a share request; `open_move_claim`, `veto_move` and `open_disaster_claim`,
each returning a decision and the claim record to store; `decide_displaced_destroy` for a destroy order of a
displaced host's epoch, signed by the new host of a disaster claim; `host_change_claim` for a deposit by a host that
would take the resident over from its registered host (`ftm.keeper.hostchange`). `explain` turns a `Code` into a
sentence. Facts that contradict each other (a record of another resident, a malformed key) are the caller's bug and
raise ValueError; every request, however odd, gets a Decision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from ftm.config.keepersettings import KeeperPolicySettings

DAY_SECONDS = 86_400  # unix time has no leap seconds, so `now % DAY_SECONDS` is the UTC second of the day
KEY_BYTES = 32  # Ed25519 public keys
EPHEMERAL_KEY_BYTES = 32  # the requester's one-run X25519 public key, which a released share is sealed to

PolicySettings = KeeperPolicySettings  # the policy's settings are the keeper file's [policy] section


class Purpose(StrEnum):
    RUN = "run"  # R1
    MOVE = "move"  # R2
    DISASTER = "disaster"  # R3


# Grants a request may be answered again under, to the very ephemeral key they were given to: a run retried after
# a crash (R1), and a disaster restore resumed after one (R3; the claim's new host is checked before this).
REPEATABLE = frozenset({Purpose.RUN, Purpose.DISASTER})


class Code(StrEnum):
    """Stable machine codes of decisions: the first seven allow, every other one refuses."""

    RUN_RELEASED = "run_released"
    MOVE_RELEASED = "move_released"
    DISASTER_RELEASED = "disaster_released"
    MOVE_OPENED = "move_opened"
    VETO_RECORDED = "veto_recorded"
    DISASTER_OPENED = "disaster_opened"
    DISPLACED_DESTROYED = "displaced_destroyed"
    UNKNOWN_RESIDENT = "unknown_resident"
    TOMBSTONED = "tombstoned"
    UNKNOWN_PURPOSE = "unknown_purpose"
    UNKNOWN_EPOCH = "unknown_epoch"
    DESTROYED_EPOCH = "destroyed_epoch"
    ALREADY_RELEASED = "already_released"
    NOT_HOST = "not_host"
    OUTSIDE_WINDOW = "outside_window"
    NOT_DESTINATION = "not_destination"
    NO_MOVE_CLAIM = "no_move_claim"
    MOVE_PENDING = "move_pending"
    MOVE_VETOED = "move_vetoed"
    VETO_TOO_LATE = "veto_too_late"
    NO_GUARDIANS = "no_guardians"
    UNKNOWN_GUARDIAN = "unknown_guardian"
    NOT_ENOUGH_GUARDIANS = "not_enough_guardians"
    HOST_NOT_SILENT = "host_not_silent"
    NO_DISASTER_CLAIM = "no_disaster_claim"
    NOT_NEW_HOST = "not_new_host"
    WAITING_PERIOD = "waiting_period"
    CLAIM_CANCELLED = "claim_cancelled"
    CLAIM_REPLAYED = "claim_replayed"


_EXPLANATIONS = {
    Code.RUN_RELEASED: "The share was released to the resident's host for a scheduled run (again, to the same key).",
    Code.MOVE_RELEASED: "The share was released to the destination of a move whose delay passed without a veto.",
    Code.DISASTER_RELEASED: "The share was released to the new host named by the resident's guardians.",
    Code.MOVE_OPENED: "A move claim signed by the host and the destination is open; its delay for vetoes runs.",
    Code.VETO_RECORDED: "The move claim was vetoed; its destination will never be given the share under it.",
    Code.DISASTER_OPENED: "A disaster claim signed by enough guardians is open; its waiting period runs.",
    Code.DISPLACED_DESTROYED: (
        "The displaced host's epoch was destroyed by order of the new host of a disaster claim past its wait."
    ),
    Code.UNKNOWN_RESIDENT: "This keeper holds nothing for the resident.",
    Code.TOMBSTONED: "The resident is tombstoned: nothing of it is ever released again.",
    Code.UNKNOWN_PURPOSE: "The request's purpose is not run, move or disaster.",
    Code.UNKNOWN_EPOCH: "This keeper holds no share of that epoch.",
    Code.DESTROYED_EPOCH: "The share of that epoch was destroyed.",
    Code.ALREADY_RELEASED: (
        "The share of that epoch was already released for this purpose and claim (for a run, to another one-run key)."
    ),
    Code.NOT_HOST: "The key is not the resident's registered host.",
    Code.OUTSIDE_WINDOW: "The request came outside the resident's daily run window.",
    Code.NOT_DESTINATION: "The key is not the destination of the move, or the destination did not sign it.",
    Code.NO_MOVE_CLAIM: "There is no current move claim with that id for the resident.",
    Code.MOVE_PENDING: "The move claim's delay has not passed yet.",
    Code.MOVE_VETOED: "The move claim was vetoed, for good.",
    Code.VETO_TOO_LATE: "The move claim's delay is over, so it can no longer be vetoed.",
    Code.NO_GUARDIANS: "The resident has no guardians, so no disaster claim is possible.",
    Code.UNKNOWN_GUARDIAN: "None of the signing keys is a guardian of the resident (or, for a veto, its host).",
    Code.NOT_ENOUGH_GUARDIANS: "Fewer of the resident's guardians signed the claim than its threshold.",
    Code.HOST_NOT_SILENT: "The host was heard from too recently for a disaster claim.",
    Code.NO_DISASTER_CLAIM: "There is no current disaster claim with that id for the resident.",
    Code.NOT_NEW_HOST: "The key is not the new host the disaster claim names, or that host did not sign it.",
    Code.WAITING_PERIOD: "The disaster claim's waiting period has not passed yet.",
    Code.CLAIM_CANCELLED: "The host was heard from after the disaster claim was opened, which cancelled it.",
    Code.CLAIM_REPLAYED: "That claim was already used and is closed; a new claim is needed.",
}


def explain(code: str) -> str:
    """A plain-English sentence for a decision code, for logs, status pages and docs."""
    try:
        return _EXPLANATIONS[Code(code)]
    except ValueError:
        raise ValueError("not a release policy code") from None


def _check_int(name: str, value: object, low: int = 0, high: int | None = None) -> None:
    if type(value) is not int or value < low or (high is not None and value > high):
        raise ValueError(f"{name} is an integer from {low}" + (f" to {high}" if high is not None else ""))


def _check_key(name: str, key: object) -> None:
    if type(key) is not bytes or len(key) != KEY_BYTES:
        raise ValueError(f"{name} is a {KEY_BYTES}-byte public key")


def _check_keys(name: str, keys: object) -> None:
    if not isinstance(keys, frozenset):
        raise ValueError(f"{name} is a frozenset of public keys")
    for key in keys:
        _check_key(name, key)


def _check_ephemeral_key(key: object) -> None:
    if type(key) is not bytes or len(key) != EPHEMERAL_KEY_BYTES:
        raise ValueError(f"an ephemeral key is {EPHEMERAL_KEY_BYTES} bytes (X25519)")


def _check_claim_id(claim_id: object) -> None:
    if type(claim_id) is not bytes or not claim_id:
        raise ValueError("a claim id is non-empty bytes")


def _check_resident_id(resident_id: object) -> None:
    if type(resident_id) is not str or not resident_id:
        raise ValueError("a resident id is a non-empty string")


def _check_record(claim_id: object, opened_at: object, ready_at: object, *keys: object) -> None:
    _check_claim_id(claim_id)
    _check_int("opened_at", opened_at)
    _check_int("ready_at", ready_at, opened_at if type(opened_at) is int else 0)
    for key in keys:
        _check_key("a claim's key", key)


def majority(count: int) -> int:
    """The default guardian threshold: more than half of `count` guardians."""
    return count // 2 + 1


@dataclass(frozen=True, slots=True)
class RunWindow:
    """When, each day, the resident's run may ask for its key: the UTC seconds of the day in
    [start_second, start_second + length_seconds) modulo a day, so it may wrap midnight; 86,400 means always."""

    start_second: int
    length_seconds: int

    def __post_init__(self) -> None:
        _check_int("a run window's start_second", self.start_second, 0, DAY_SECONDS - 1)
        _check_int("a run window's length_seconds", self.length_seconds, 1, DAY_SECONDS)

    def contains(self, now: int, grace_seconds: int = 0) -> bool:
        """Whether unix time `now` falls in the window widened by `grace_seconds` at both ends."""
        offset = (now - self.start_second + grace_seconds) % DAY_SECONDS
        return offset < self.length_seconds + 2 * grace_seconds


@dataclass(frozen=True, slots=True)
class ResidentFacts:
    """What the keeper recorded about a resident: from its deposit the host, the run window, the guardians and
    their threshold (None: a majority); the latest contact from that host (a heartbeat or a request the host
    signed, the deposit included; unix seconds); and whether the resident is tombstoned."""

    resident_id: str
    host_key: bytes
    window: RunWindow
    last_host_contact: int
    guardians: frozenset[bytes] = frozenset()
    guardian_threshold: int | None = None
    tombstoned: bool = False

    def __post_init__(self) -> None:
        _check_resident_id(self.resident_id)
        _check_key("host_key", self.host_key)
        _check_int("last_host_contact", self.last_host_contact)
        _check_keys("guardians", self.guardians)
        if self.guardian_threshold is not None:
            low = 1 if self.guardians else 0
            _check_int("guardian_threshold", self.guardian_threshold, low, len(self.guardians))

    @property
    def guardians_needed(self) -> int:
        if not self.guardians:
            return 0
        return self.guardian_threshold if self.guardian_threshold is not None else majority(len(self.guardians))


@dataclass(frozen=True, slots=True)
class Grant:
    """What one release uses up, and the one-run X25519 key its share was sealed to: an epoch is released at most
    once per grant, that is once for runs and once per move or disaster claim. A run's or a disaster's grant is
    answered again for a request carrying the same ephemeral key (`Decision.repeat`); a grant's key never changes."""

    purpose: Purpose
    claim_id: bytes = b""  # empty for a run
    ephemeral_key: bytes = dataclasses.field(kw_only=True)

    def __post_init__(self) -> None:
        if type(self.purpose) is not Purpose or type(self.claim_id) is not bytes:
            raise ValueError("a grant is a Purpose and a claim id")
        if (self.purpose == Purpose.RUN) != (not self.claim_id):
            raise ValueError("a run's grant has no claim id; a move's or a disaster's has one")
        _check_ephemeral_key(self.ephemeral_key)

    @property
    def slot(self) -> tuple[Purpose, bytes]:
        """What an epoch is released at most once for: the purpose and the claim."""
        return (self.purpose, self.claim_id)


@dataclass(frozen=True, slots=True)
class EpochFacts:
    """One epoch the keeper holds (or held) a share of, and the grants it was already released under (at most one
    per purpose and claim)."""

    epoch: int
    destroyed: bool = False
    released: frozenset[Grant] = frozenset()

    def __post_init__(self) -> None:
        _check_int("epoch", self.epoch)
        if not isinstance(self.released, frozenset) or not all(type(g) is Grant for g in self.released):
            raise ValueError("released is a frozenset of grants")
        if len({grant.slot for grant in self.released}) != len(self.released):
            raise ValueError("an epoch is released at most once per purpose and claim")

    def granted(self, grant: Grant) -> Grant | None:
        """The grant already given for the same purpose and claim as `grant`, if any."""
        return next((given for given in self.released if given.slot == grant.slot), None)

    def with_grant(self, grant: Grant) -> EpochFacts:
        return dataclasses.replace(self, released=self.released | {grant})


@dataclass(frozen=True, slots=True)
class MoveRecord:
    """A move claim the keeper accepted. `host_key` is the host it was made against: once the resident has
    another host, the claim is over."""

    claim_id: bytes
    host_key: bytes
    destination_key: bytes
    opened_at: int
    ready_at: int  # opened_at + the move delay in force when it opened
    vetoed_by: bytes | None = None
    vetoed_at: int | None = None

    def __post_init__(self) -> None:
        _check_record(self.claim_id, self.opened_at, self.ready_at, self.host_key, self.destination_key)
        if (self.vetoed_by is None) != (self.vetoed_at is None):
            raise ValueError("a vetoed claim records both who vetoed it and when")
        if self.vetoed_by is not None:
            _check_key("vetoed_by", self.vetoed_by)
            _check_int("vetoed_at", self.vetoed_at)


@dataclass(frozen=True, slots=True)
class DisasterRecord:
    """A disaster claim the keeper accepted. Any contact from the host at or after `opened_at` cancels it."""

    claim_id: bytes
    old_host_key: bytes
    new_host_key: bytes
    guardian_signers: frozenset[bytes]
    opened_at: int
    ready_at: int  # opened_at + the waiting period in force when it opened

    def __post_init__(self) -> None:
        _check_record(self.claim_id, self.opened_at, self.ready_at, self.old_host_key, self.new_host_key)
        _check_keys("guardian_signers", self.guardian_signers)


@dataclass(frozen=True, slots=True)
class ReleaseFacts:
    """A request for a share: what it asks for, the key whose signature on it verified, when it came, and the
    one-run X25519 key the share is to be sealed to. `purpose` and `claim_id` are as received: anything unexpected
    is refused, not raised."""

    purpose: str
    resident_id: str
    epoch: int
    requester_key: bytes
    now: int
    claim_id: bytes = b""  # the move or disaster claim the request rests on; empty for a run
    ephemeral_key: bytes = dataclasses.field(kw_only=True)

    def __post_init__(self) -> None:
        _check_key("requester_key", self.requester_key)
        _check_ephemeral_key(self.ephemeral_key)
        _check_int("now", self.now)
        if not isinstance(self.purpose, str) or type(self.claim_id) is not bytes or type(self.epoch) is not int:
            raise ValueError("purpose is a string, claim_id bytes and epoch an integer")


@dataclass(frozen=True, slots=True)
class MoveClaimFacts:
    """A move claim: the host it names, its destination, and the keys whose signatures on it verified."""

    claim_id: bytes
    resident_id: str
    host_key: bytes
    destination_key: bytes
    signers: frozenset[bytes]
    now: int

    def __post_init__(self) -> None:
        _check_claim_id(self.claim_id)
        _check_key("host_key", self.host_key)
        _check_key("destination_key", self.destination_key)
        _check_keys("signers", self.signers)
        _check_int("now", self.now)


@dataclass(frozen=True, slots=True)
class VetoFacts:
    """A veto of a move claim, and the key whose signature on it verified."""

    claim_id: bytes
    resident_id: str
    signer_key: bytes
    now: int

    def __post_init__(self) -> None:
        if type(self.claim_id) is not bytes:
            raise ValueError("claim_id is bytes")
        _check_key("signer_key", self.signer_key)
        _check_int("now", self.now)


@dataclass(frozen=True, slots=True)
class DisasterClaimFacts:
    """A disaster claim as it concerns one resident: the host it displaces, the new host, and the keys whose
    signatures on it verified (guardians of other residents named by the same claim may be among them)."""

    claim_id: bytes
    resident_id: str
    old_host_key: bytes
    new_host_key: bytes
    signers: frozenset[bytes]
    now: int

    def __post_init__(self) -> None:
        _check_claim_id(self.claim_id)
        _check_key("old_host_key", self.old_host_key)
        _check_key("new_host_key", self.new_host_key)
        _check_keys("signers", self.signers)
        _check_int("now", self.now)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to log and act on. `grant`, on an allowed release, must be recorded against the epoch
    (`EpochFacts.with_grant`) before the share leaves; on a `repeat` it is the grant already recorded (a run or a
    disaster restore asking again with the same ephemeral key), and the share goes again to that key."""

    allowed: bool
    code: Code
    reason: str
    grant: Grant | None = None
    repeat: bool = False


def _refuse(code: Code, reason: str) -> Decision:
    return Decision(False, code, reason)


def _short(key: bytes) -> str:
    return key.hex()[:16]


_Claim = TypeVar("_Claim", MoveRecord, DisasterRecord)


def _screen(resident: ResidentFacts | None, resident_id: str) -> ResidentFacts | Decision:
    """The checks every request starts with: a resident we know of (returned), not tombstoned (else a refusal)."""
    if resident is None:
        return _refuse(Code.UNKNOWN_RESIDENT, "no record of the resident")
    if resident.resident_id != resident_id:
        raise ValueError("the resident's facts are of another resident than the request's")
    if resident.tombstoned:
        return _refuse(Code.TOMBSTONED, f"resident {resident.resident_id} is tombstoned")
    return resident


def decide_release(
    request: ReleaseFacts,
    resident: ResidentFacts | None,
    epoch: EpochFacts | None,
    *,
    moves: Sequence[MoveRecord] = (),
    disasters: Sequence[DisasterRecord] = (),
    settings: PolicySettings,
) -> Decision:
    """Whether to release the share of `epoch` for `request`. `epoch` is None when the keeper holds no share of
    the epoch asked for; `moves` and `disasters` are every claim recorded for the resident, oldest first."""
    screened = _screen(resident, request.resident_id)
    if isinstance(screened, Decision):
        return screened
    resident = screened
    if epoch is not None and epoch.epoch != request.epoch:
        raise ValueError("the epoch's facts are of another epoch than the request's")
    if request.purpose == Purpose.RUN:
        return _decide_run(request, resident, epoch, settings)
    if request.purpose == Purpose.MOVE:
        return _decide_move(request, resident, epoch, moves)
    if request.purpose == Purpose.DISASTER:
        return _decide_disaster(request, resident, epoch, disasters)
    return _refuse(Code.UNKNOWN_PURPOSE, "the purpose is not run, move or disaster")


def _release(request: ReleaseFacts, epoch: EpochFacts | None, grant: Grant, code: Code) -> Decision:
    """The checks every purpose ends with: an epoch held, not destroyed, not yet released under this grant; or,
    for a run, released under it to the very ephemeral key this request carries (a repeat)."""
    if epoch is None:
        return _refuse(Code.UNKNOWN_EPOCH, f"no share of epoch {request.epoch}")
    if epoch.destroyed:
        return _refuse(Code.DESTROYED_EPOCH, f"the share of epoch {epoch.epoch} was destroyed")
    given = epoch.granted(grant)
    released = f"epoch {epoch.epoch} to {_short(request.requester_key)}"
    if given is None:
        return Decision(True, code, released, grant)
    if grant.purpose in REPEATABLE and given.ephemeral_key == grant.ephemeral_key:
        # The host (or a disaster's new host, whose restore crashed) asks again for the release it already had,
        # to the same one-run key (it crashed, or an answer was lost): nothing is given that was not given, and
        # no other key can ever have it.
        return Decision(True, code, f"{released}, a repeat to the same one-run key", given, repeat=True)
    return _refuse(Code.ALREADY_RELEASED, f"epoch {epoch.epoch} was already released for this {grant.purpose}")


def _decide_run(
    request: ReleaseFacts, resident: ResidentFacts, epoch: EpochFacts | None, settings: PolicySettings
) -> Decision:
    if request.requester_key != resident.host_key:
        return _refuse(Code.NOT_HOST, f"{_short(request.requester_key)} is not host {_short(resident.host_key)}")
    window, grace = resident.window, settings.window_grace_seconds
    if not window.contains(request.now, grace):
        return _refuse(
            Code.OUTSIDE_WINDOW,
            f"second {request.now % DAY_SECONDS} of the UTC day is outside [{window.start_second}, "
            f"{window.start_second + window.length_seconds}) with {grace} s of grace",
        )
    return _release(request, epoch, Grant(Purpose.RUN, ephemeral_key=request.ephemeral_key), Code.RUN_RELEASED)


def _find(records: Sequence[_Claim], claim_id: bytes) -> _Claim | None:
    return next((record for record in records if record.claim_id == claim_id), None)


def _current_move(resident: ResidentFacts, moves: Sequence[MoveRecord]) -> MoveRecord | None:
    """The last claim opened, while the host it was made against is still the resident's host."""
    return moves[-1] if moves and moves[-1].host_key == resident.host_key else None


def _current_disaster(resident: ResidentFacts, disasters: Sequence[DisasterRecord]) -> DisasterRecord | None:
    return disasters[-1] if disasters and disasters[-1].old_host_key == resident.host_key else None


def _cancelled(record: DisasterRecord, resident: ResidentFacts) -> bool:
    # Opening needs `disaster_silence_seconds` (≥ 1) of silence, so any contact stamped at or after
    # `opened_at` came after the claim was accepted.
    return resident.last_host_contact >= record.opened_at


def _decide_move(
    request: ReleaseFacts, resident: ResidentFacts, epoch: EpochFacts | None, moves: Sequence[MoveRecord]
) -> Decision:
    record = _find(moves, request.claim_id)
    if record is None:
        return _refuse(Code.NO_MOVE_CLAIM, "no move claim with that id")
    if request.requester_key != record.destination_key:
        return _refuse(Code.NOT_DESTINATION, f"{_short(request.requester_key)} is not the move's destination")
    if record is not _current_move(resident, moves):
        return _refuse(Code.NO_MOVE_CLAIM, "the move claim was superseded or its host is no longer the host")
    if record.vetoed_at is not None:
        return _refuse(Code.MOVE_VETOED, f"vetoed at {record.vetoed_at}")
    if request.now < record.ready_at:
        return _refuse(Code.MOVE_PENDING, f"the delay ends at {record.ready_at}")
    grant = Grant(Purpose.MOVE, record.claim_id, ephemeral_key=request.ephemeral_key)
    return _release(request, epoch, grant, Code.MOVE_RELEASED)


def _decide_disaster(
    request: ReleaseFacts, resident: ResidentFacts, epoch: EpochFacts | None, disasters: Sequence[DisasterRecord]
) -> Decision:
    if not resident.guardians:
        return _refuse(Code.NO_GUARDIANS, f"resident {resident.resident_id} has no guardians")
    record = _find(disasters, request.claim_id)
    if record is None:
        return _refuse(Code.NO_DISASTER_CLAIM, "no disaster claim with that id")
    if request.requester_key != record.new_host_key:
        return _refuse(Code.NOT_NEW_HOST, f"{_short(request.requester_key)} is not the claim's new host")
    if record is not _current_disaster(resident, disasters):
        return _refuse(Code.NO_DISASTER_CLAIM, "the claim was superseded or its old host is no longer the host")
    if _cancelled(record, resident):
        return _refuse(Code.CLAIM_CANCELLED, f"the host was heard from at {resident.last_host_contact}")
    if request.now < record.ready_at:
        return _refuse(Code.WAITING_PERIOD, f"the waiting period ends at {record.ready_at}")
    grant = Grant(Purpose.DISASTER, record.claim_id, ephemeral_key=request.ephemeral_key)
    return _release(request, epoch, grant, Code.DISASTER_RELEASED)


def open_move_claim(
    claim: MoveClaimFacts,
    resident: ResidentFacts | None,
    moves: Sequence[MoveRecord],
    *,
    settings: PolicySettings,
) -> tuple[Decision, MoveRecord | None]:
    """Accept a move claim, or not. Returns the record to store when allowed (an unchanged one when the same
    claim arrives again while open); `moves` is every move claim recorded for the resident, oldest first."""
    screened = _screen(resident, claim.resident_id)
    if isinstance(screened, Decision):
        return screened, None
    resident = screened
    if claim.host_key != resident.host_key or resident.host_key not in claim.signers:
        return _refuse(Code.NOT_HOST, f"the claim is not signed by host {_short(resident.host_key)}"), None
    if claim.destination_key == resident.host_key or claim.destination_key not in claim.signers:
        return _refuse(Code.NOT_DESTINATION, "the destination is the host, or did not sign"), None
    current = _current_move(resident, moves)
    known = _find(moves, claim.claim_id)
    if known is not None:
        if known.vetoed_at is not None:
            return _refuse(Code.MOVE_VETOED, f"vetoed at {known.vetoed_at}"), None
        if known is not current:
            return _refuse(Code.CLAIM_REPLAYED, "the claim was superseded by a later one"), None
        return Decision(True, Code.MOVE_OPENED, f"already open; ready at {known.ready_at}"), known
    if current is not None and current.vetoed_at is None and claim.now < current.ready_at:
        return _refuse(Code.MOVE_PENDING, f"another move claim is pending until {current.ready_at}"), None
    record = MoveRecord(
        claim.claim_id, resident.host_key, claim.destination_key, claim.now, claim.now + settings.move_delay_seconds
    )
    reason = f"to {_short(claim.destination_key)}; ready at {record.ready_at}"
    return Decision(True, Code.MOVE_OPENED, reason), record


def veto_move(
    veto: VetoFacts, resident: ResidentFacts | None, moves: Sequence[MoveRecord]
) -> tuple[Decision, MoveRecord | None]:
    """Veto a pending move claim, or not. Returns the vetoed record to store when allowed."""
    screened = _screen(resident, veto.resident_id)
    if isinstance(screened, Decision):
        return screened, None
    resident = screened
    if veto.signer_key != resident.host_key and veto.signer_key not in resident.guardians:
        return _refuse(Code.UNKNOWN_GUARDIAN, f"{_short(veto.signer_key)} is neither host nor guardian"), None
    record = _find(moves, veto.claim_id)
    if record is None:
        return _refuse(Code.NO_MOVE_CLAIM, "no move claim with that id"), None
    if record.vetoed_at is not None:
        return _refuse(Code.MOVE_VETOED, f"already vetoed at {record.vetoed_at}"), None
    if record is not _current_move(resident, moves):
        return _refuse(Code.NO_MOVE_CLAIM, "the move claim was superseded or its host is no longer the host"), None
    if veto.now >= record.ready_at:
        return _refuse(Code.VETO_TOO_LATE, f"the delay ended at {record.ready_at}"), None
    vetoed = dataclasses.replace(record, vetoed_by=veto.signer_key, vetoed_at=veto.now)
    return Decision(True, Code.VETO_RECORDED, f"by {_short(veto.signer_key)}"), vetoed


def open_disaster_claim(
    claim: DisasterClaimFacts,
    resident: ResidentFacts | None,
    disasters: Sequence[DisasterRecord],
    *,
    settings: PolicySettings,
) -> tuple[Decision, DisasterRecord | None]:
    """Accept a disaster claim for one resident, or not. Returns the record to store when allowed (an unchanged
    one when the same claim arrives again while open); `disasters` is every disaster claim recorded for the
    resident, oldest first."""
    screened = _screen(resident, claim.resident_id)
    if isinstance(screened, Decision):
        return screened, None
    resident = screened
    if not resident.guardians:
        return _refuse(Code.NO_GUARDIANS, f"resident {resident.resident_id} has no guardians"), None
    if claim.old_host_key != resident.host_key:
        return _refuse(Code.NOT_HOST, f"the claim displaces another host than {_short(resident.host_key)}"), None
    if claim.new_host_key == resident.host_key or claim.new_host_key not in claim.signers:
        return _refuse(Code.NOT_NEW_HOST, "the new host is the old one, or did not sign"), None
    signers = claim.signers & resident.guardians
    if not signers:
        return _refuse(Code.UNKNOWN_GUARDIAN, "no signer is a guardian of the resident"), None
    if len(signers) < resident.guardians_needed:
        reason = f"{len(signers)} of {len(resident.guardians)} guardians signed, {resident.guardians_needed} needed"
        return _refuse(Code.NOT_ENOUGH_GUARDIANS, reason), None
    current = _current_disaster(resident, disasters)
    known = _find(disasters, claim.claim_id)
    if known is not None:
        if _cancelled(known, resident):
            return _refuse(Code.CLAIM_CANCELLED, f"the host was heard from at {resident.last_host_contact}"), None
        if known is not current:
            return _refuse(Code.CLAIM_REPLAYED, "the claim was superseded by a later one"), None
        return Decision(True, Code.DISASTER_OPENED, f"already open; ready at {known.ready_at}"), known
    silent = claim.now - resident.last_host_contact
    if silent < settings.disaster_silence_seconds:
        return _refuse(Code.HOST_NOT_SILENT, f"host silent {silent} s of {settings.disaster_silence_seconds}"), None
    if current is not None and not _cancelled(current, resident) and claim.now < current.ready_at:
        return _refuse(Code.WAITING_PERIOD, f"another claim is waiting until {current.ready_at}"), None
    record = DisasterRecord(
        claim.claim_id,
        resident.host_key,
        claim.new_host_key,
        signers,
        claim.now,
        claim.now + settings.disaster_wait_seconds,
    )
    reason = f"to {_short(claim.new_host_key)} by {len(signers)} guardians; ready at {record.ready_at}"
    return Decision(True, Code.DISASTER_OPENED, reason), record


@dataclass(frozen=True, slots=True)
class DisplacedDestroyFacts:
    """A destroy order for an epoch deposited by `host_key`, signed by another key (`signer`); the time it came
    and that host's last contact (its own, even when it is no longer the registered host)."""

    resident_id: str
    host_key: bytes
    signer: bytes
    host_last_contact: int
    now: int

    def __post_init__(self) -> None:
        _check_key("host_key", self.host_key)
        _check_key("signer", self.signer)
        _check_int("host_last_contact", self.host_last_contact)
        _check_int("now", self.now)


def decide_displaced_destroy(
    order: DisplacedDestroyFacts, resident: ResidentFacts | None, disasters: Sequence[DisasterRecord]
) -> Decision:
    """Whether the new host of a disaster claim may have an epoch of the host it displaced destroyed: the last
    disaster claim accepted against that host must name the signer as new host, must not be cancelled (no contact
    from the displaced host since it opened) and must be past its wait: the same authority under which the signer
    may have every share of the epoch. Whether the signer has become the registered host (its own deposit here)
    does not matter: keepers it did not deal the next epoch to hold the old copies too. `disasters`: every
    disaster claim recorded for the resident, oldest first."""
    screened = _screen(resident, order.resident_id)
    if isinstance(screened, Decision):
        return screened
    against = [d for d in disasters if d.old_host_key == order.host_key]
    if not against or against[-1].new_host_key != order.signer:  # a later claim supersedes an earlier one
        return _refuse(Code.NO_DISASTER_CLAIM, f"the last claim against the host does not name {_short(order.signer)}")
    record = against[-1]
    if order.host_last_contact >= record.opened_at:
        return _refuse(Code.CLAIM_CANCELLED, f"the host was heard from at {order.host_last_contact}")
    if order.now < record.ready_at:
        return _refuse(Code.WAITING_PERIOD, f"the waiting period ends at {record.ready_at}")
    reason = f"host {_short(order.host_key)} displaced by {_short(order.signer)} under {record.claim_id.hex()[:16]}"
    return Decision(True, Code.DISPLACED_DESTROYED, reason)


def host_change_claim(
    new_host: bytes,
    resident: ResidentFacts,
    *,
    moves: Sequence[MoveRecord],
    disasters: Sequence[DisasterRecord],
    now: int,
) -> MoveRecord | DisasterRecord | None:
    """The claim under which `new_host` may take the resident over from its registered host here (by depositing an
    epoch of its own, which makes it the registered host): the current move claim naming it as destination, not
    vetoed and past its ready time, else the current disaster claim naming it as new host, not cancelled and past
    its ready time. These are exactly the claims under which this keeper releases it the host's shares, whether or
    not it asked this keeper (a destination or new host needs k of the n keepers' shares, and then deals its next
    epoch to n). None when there is no such claim. `moves` and `disasters`: every claim recorded, oldest first."""
    _check_key("new_host", new_host)
    _check_int("now", now)
    if new_host == resident.host_key:
        raise ValueError("the registered host changes nothing by depositing")
    move = _current_move(resident, moves)
    if move is not None and move.destination_key == new_host and move.vetoed_at is None and now >= move.ready_at:
        return move
    disaster = _current_disaster(resident, disasters)
    if (
        disaster is not None
        and resident.guardians
        and disaster.new_host_key == new_host
        and not _cancelled(disaster, resident)
        and now >= disaster.ready_at
    ):
        return disaster
    return None
