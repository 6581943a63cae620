"""The keeper protocol: what a host node and its keepers say to each other. docs/custody.md ("Keeper protocol") is
the specification.

Every message is a frozen dataclass encoded with the strict codec and sent as `CONTENT_TYPE` in the body of a
signed request (`ftm.federation.signedrequests`: key, audience, timestamp, nonce, body hash), except replica bytes,
which travel raw as `DATA_CONTENT_TYPE`. What a party must be able to show later is also signed in the body
(`ftm.federation.signedanswers`): a keeper's `Holding` (it verified its share and its copy), `Release`, `Proof`
answers and `DestroyReceipt`s; a host's `DestroyOrder`; the claims that start a move or a disaster release, signed
by every party that must agree (`ClaimSignature`). Domains are below; each is used for one kind of message only.

Shares never travel in the clear: a `Deposit` carries the share sealed to the keeper's X25519 key (converted from
its Ed25519 key, `identity.seal_to_node`), and a `Release` carries it sealed to the requester's one-run ephemeral
X25519 key (`identity.seal_to_inbox`). Resident content never reaches a keeper at all: only the vault file of an
epoch, which is ciphertext.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from ftm.federation import codec
from ftm.federation.events import SignedEvent
from ftm.federation.gossipwire import CONTENT_TYPE, WireError
from ftm.federation.identity import SigningKey
from ftm.federation.signedanswers import SignedAnswer, open_answer, sign_answer

__all__ = ["CONTENT_TYPE", "SignedAnswer", "WireError", "open_answer", "sign_answer"]

M = TypeVar("M")

PROTOCOL_VERSION = 1
PREFIX = "/keeper/v1/"
DATA_CONTENT_TYPE = "application/octet-stream"
CHUNK_BYTES = 1024 * 1024  # replica bytes per `data` request, and per `read` answer at most
MAX_MESSAGE_BYTES = 64 * 1024
MAX_RESIDENTS_LISTED = 10_000

# Paths, each under PREFIX; all POST.
PATH_DEPOSIT = "deposit"  # host: a share and the facts of an epoch → Progress
PATH_DATA = "data"  # host: replica bytes at ?resident=&epoch=&offset= → Progress
PATH_SEAL = "seal"  # host: the replica is complete → SignedAnswer(Holding)
PATH_COMMIT = "commit"  # host: the epoch is committed (k+1 holdings) → Ack
PATH_DESTROY = "destroy"  # host: SignedAnswer(DestroyOrder) → SignedAnswer(DestroyReceipt)
PATH_RELEASE = "release"  # host / destination / new host: ReleaseRequest → SignedAnswer(Release)
PATH_READ = "read"  # whoever may have the share may read the replica: ReadRequest → raw bytes
PATH_CHALLENGE = "challenge"  # host: Challenge → SignedAnswer(Proof)
PATH_HEARTBEAT = "heartbeat"  # host: Heartbeat → Ack
PATH_MOVE = "move"  # host or destination: MoveClaim → Ack
PATH_DISASTER = "disaster"  # a guardian or the new host: DisasterClaim → Ack
PATH_VETO = "veto"  # host or a guardian: Veto → Ack
PATH_TOMBSTONE = "tombstone"  # host: TombstoneOrder → SignedAnswer(DestroyReceipt)
PATH_HOLDINGS = "holdings"  # anyone: Holdings → HoldingsAnswer (what this keeper holds for a host; no secrets)
ENROL_PATH = "/api/v1/keepers/replica"  # on the host node: a keeper enrols there (Enrol → EnrolAnswer)

HOLDING_DOMAIN = "ftm-keeper-holding-v1"
RELEASE_DOMAIN = "ftm-keeper-release-v1"
PROOF_DOMAIN = "ftm-keeper-proof-v1"
RECEIPT_DOMAIN = "ftm-keeper-receipt-v1"
ORDER_DOMAIN = "ftm-keeper-order-v1"
CLAIM_DOMAIN = "ftm-keeper-claim-v1"
SHARE_BOX_PREFIX = b"ftm-keeper-share-v1\x00"  # inside a sealed share: binds it to resident, epoch and x


class Purpose(StrEnum):
    RUN = "run"  # R1: the registered host, inside the run window, once per epoch
    MOVE = "move"  # R2: the destination of a move claim host and destination signed, after its delay
    DISASTER = "disaster"  # R3: the new host of a disaster claim guardians signed, after its waiting period


class DestroyReason(StrEnum):
    ROTATED = "rotated"  # a newer epoch was committed
    MOVED = "moved"  # the resident lives on another node now, under that node's custody
    ABANDONED = "abandoned"  # an epoch that never committed (its run was superseded)
    TOMBSTONE = "tombstone"  # the resident deleted itself: every epoch, for ever


@dataclass(frozen=True, slots=True)
class RunWindow:
    """When, each day (UTC), the resident's run may ask for its key: [start, start + length) seconds after
    midnight, wrapping over midnight; length 86,400 means any time."""

    start_second: int
    length_seconds: int


@dataclass(frozen=True, slots=True)
class DepositBase:
    """Bytes [0, prefix) of the deposited epoch's vault file equal those of the same resident's epoch `epoch`,
    whose Merkle root is `root`: a keeper that holds that epoch sealed, from the same host, may copy them from its
    own replica instead of receiving them (docs/custody.md, "Deposits on a base")."""

    epoch: int
    root: bytes
    prefix: int


@dataclass(frozen=True, slots=True)
class Deposit:
    """Host → keeper: hold share `x` of this epoch's secret, and a copy of its vault file (`length` bytes whose
    Merkle root is `root`), sent next with `data`. `sealed_share` opens with the keeper's key to
    SHARE_BOX_PREFIX ‖ share_binding(...) ‖ the 32-byte share value. `base`, optional, names an earlier epoch the
    file shares its first bytes with; it is a hint, not part of the deposit's identity."""

    version: int
    resident_id: str
    resident_key: bytes  # the resident's Ed25519 key: a tombstone it signed is how a keeper learns it is gone
    epoch: int
    threshold: int
    x: int
    commitments: bytes  # `shares.Commitments` encoded
    sealed_share: bytes
    window: RunWindow
    guardians: tuple[bytes, ...]  # keys that may together sign a disaster claim; may be empty
    guardian_threshold: int  # how many of them must (0 when there are none)
    length: int
    root: bytes
    base: DepositBase | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """How many bytes of an epoch's replica the keeper holds (the host sends `data` from there)."""

    resident_id: str
    epoch: int
    received: int


@dataclass(frozen=True, slots=True)
class Seal:
    """Host → keeper: the replica is complete; check it against the deposit's root and length."""

    version: int
    resident_id: str
    epoch: int


@dataclass(frozen=True, slots=True)
class Holding:
    """Signed by the keeper (HOLDING_DOMAIN): its share verified against the commitments and its copy against the
    root, durably stored. The host counts these; an epoch commits with threshold + 1 of them."""

    version: int
    resident_id: str
    epoch: int
    keeper_key: bytes
    host_key: bytes
    x: int
    commitments_digest: bytes
    root: bytes
    length: int
    at: int


@dataclass(frozen=True, slots=True)
class Commit:
    """Host → keeper: this epoch is committed; older epochs will get destroy orders."""

    version: int
    resident_id: str
    epoch: int


@dataclass(frozen=True, slots=True)
class Ack:
    """A plain answer: what the keeper now records for the resident (`state`), and a time if one matters (when a
    claim's release may happen)."""

    resident_id: str
    epoch: int
    state: str
    at: int


@dataclass(frozen=True, slots=True)
class DestroyOrder:
    """Signed by the host (ORDER_DOMAIN): destroy share and replica of this epoch."""

    version: int
    resident_id: str
    epoch: int
    reason: str  # a DestroyReason
    host_key: bytes
    at: int


@dataclass(frozen=True, slots=True)
class DestroyReceipt:
    """Signed by the keeper (RECEIPT_DOMAIN): it destroyed share and replica of `epoch` (every epoch, for
    `tombstone`) and will refuse any release of it."""

    version: int
    resident_id: str
    epoch: int
    keeper_key: bytes
    reason: str
    at: int


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """Hand me share `x` of this epoch, sealed to `ephemeral_key` (X25519, made for this one request)."""

    version: int
    resident_id: str
    epoch: int
    purpose: str  # a Purpose
    ephemeral_key: bytes
    claim_id: bytes  # the move or disaster claim it rests on; empty for a run


@dataclass(frozen=True, slots=True)
class Release:
    """Signed by the keeper (RELEASE_DOMAIN), logged before it is sent: the share, sealed to the ephemeral key as
    SHARE_BOX_PREFIX ‖ share_binding(...) ‖ value."""

    version: int
    resident_id: str
    epoch: int
    x: int
    purpose: str
    requester_key: bytes
    ephemeral_key: bytes
    sealed_share: bytes
    at: int


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """Replica bytes [offset, offset + length), length ≤ CHUNK_BYTES; answered raw."""

    version: int
    resident_id: str
    epoch: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Challenge:
    """Host → keeper: prove you hold this epoch: the Merkle samples the nonce picks, and a Schnorr proof of your
    share bound to the nonce."""

    version: int
    resident_id: str
    epoch: int
    nonce: bytes
    samples: int


@dataclass(frozen=True, slots=True)
class Proof:
    """Signed by the keeper (PROOF_DOMAIN): its answer to a `Challenge`, kept by the host as proof history."""

    version: int
    resident_id: str
    epoch: int
    nonce: bytes
    keeper_key: bytes
    merkle: bytes  # `merkle.Proof` encoded
    possession: bytes  # `shares.prove_possession(...)`, binding = keeper key
    at: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Host → keeper: the host is alive; any pending disaster claim against it is cancelled."""

    version: int
    at: int


@dataclass(frozen=True, slots=True)
class ClaimSignature:
    key: bytes
    signature: bytes  # over the claim's `body` (CLAIM_DOMAIN)


@dataclass(frozen=True, slots=True)
class MoveTerms:
    version: int
    resident_id: str
    epoch: int
    host_key: bytes
    destination_key: bytes
    destination_url: str
    created_at: int


@dataclass(frozen=True, slots=True)
class MoveClaim:
    """`body` is `MoveTerms` encoded; signed by the host and by the destination."""

    body: bytes
    signatures: tuple[ClaimSignature, ...]


@dataclass(frozen=True, slots=True)
class DisasterTerms:
    version: int
    old_host_key: bytes
    new_host_key: bytes
    new_host_url: str
    resident_ids: tuple[str, ...]
    created_at: int


@dataclass(frozen=True, slots=True)
class DisasterClaim:
    """`body` is `DisasterTerms` encoded; signed by guardians of each resident named (and by the new host)."""

    body: bytes
    signatures: tuple[ClaimSignature, ...]


@dataclass(frozen=True, slots=True)
class Veto:
    version: int
    claim_id: bytes  # SHA-256 of the claim's body


@dataclass(frozen=True, slots=True)
class TombstoneOrder:
    """Host → keeper: the resident deleted itself. `tombstone` is its TOMBSTONE event, signed with the resident's
    own key (federation.md), which the keeper checks against the `resident_key` of its deposits."""

    version: int
    resident_id: str
    tombstone: SignedEvent


@dataclass(frozen=True, slots=True)
class Holdings:
    version: int
    host_key: bytes


@dataclass(frozen=True, slots=True)
class HoldingEntry:
    resident_id: str
    epoch: int
    state: str  # deposited | held | committed | destroyed
    length: int
    root: bytes
    commitments: bytes  # `shares.Commitments` encoded: public, what a restore verifies shares against; b"" if destroyed


@dataclass(frozen=True, slots=True)
class HoldingsAnswer:
    keeper_key: bytes
    host_key: bytes
    entries: tuple[HoldingEntry, ...]


@dataclass(frozen=True, slots=True)
class Enrol:
    """Keeper → host node, `POST ENROL_PATH` on the node (not under PREFIX), in a signed request from the keeper's key
    whose audience is the node's key: the human Keeper's bearer token (from registering on the node) says which
    registration this keeper serves; only a vetted registration's keeper is enrolled."""

    keeper_url: str  # where the node reaches the keeper: the base URL, PREFIX is appended
    token: str


@dataclass(frozen=True, slots=True)
class EnrolAnswer:
    """Node → keeper, the answer to `Enrol`: the host key the keeper pins, the node's URL, and the registration."""

    node_key: bytes
    node_url: str
    keeper_id: str


def encode(message: object) -> bytes:
    return codec.encode(message)


def decode(cls: type[M], data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> M:
    """Strictly decode one message; `WireError` for anything that is not exactly `cls` or is too large."""
    if len(data) > max_bytes:
        raise WireError("body_too_large", f"the message is larger than {max_bytes} bytes")
    try:
        message = codec.decode(cls, data, max_bytes=max_bytes)
    except codec.DecodeError as error:
        raise WireError("malformed_body", str(error)) from None
    if getattr(message, "version", PROTOCOL_VERSION) != PROTOCOL_VERSION:
        raise WireError("unsupported_version", f"version {PROTOCOL_VERSION} is the only one spoken")
    return message


def share_binding(resident_id: str, epoch: int, x: int) -> bytes:
    """What a sealed share is bound to, so a box copied to another resident, epoch or x fails: u8 id length ‖ id ‖
    u64 epoch ‖ u8 x."""
    rid = resident_id.encode("ascii")
    return bytes((len(rid),)) + rid + epoch.to_bytes(8, "big") + bytes((x,))


def claim_id(body: bytes) -> bytes:
    """A claim's id: SHA-256 of its body, as vetoes and release requests name it."""
    return hashlib.sha256(body).digest()


def sign_claim(key: SigningKey, body: bytes) -> ClaimSignature:
    return ClaimSignature(key.public_key, key.sign(CLAIM_DOMAIN, body))
