"""The wire format of moving a resident between nodes: messages, signed answers, the sealed package key, and the
transfer file. docs/federation-moves.md is the specification.

Every message is a frozen dataclass encoded with the strict codec (a msgpack map of its field names, in order)
and sent as `CONTENT_TYPE` inside a signed node-to-node request (`ftm.federation.signedrequests`); transfer data
alone travels raw, as `DATA_CONTENT_TYPE`. The three answers that decide something are signed by the destination
over their exact bytes, like the hello answer: whether it takes the resident (`OfferAnswer`), that it holds the
transfer durably (`TransferAnswer`, the receipt), and that the resident now lives there (`CommitAnswer`).

The transfer file: `MAGIC` (8 bytes) ‖ records length (4 bytes, big-endian) ‖ records (`MoveRecords`) ‖ a vault
file of the package (`ftm.node.vault`) for (resident id, `epoch`) under a fresh package key, which travels sealed
to the destination's key (`seal_package_key`).

Under threshold custody (release rule R2) the two nodes first sign a `MoveClaim` for the keepers (`claim`: the
source sends `MoveClaimRequest`, the destination answers its `ClaimSignature`), the transfer file carries the
resident's vault file as it is, under its epoch key, and `finish-claimed` (`ClaimedManifest`) names the claim and
the keepers that hold the epoch instead of a sealed key: the destination gets the key from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from ftm.federation import codec
from ftm.federation.events import SignedEvent
from ftm.federation.gossipwire import CONTENT_TYPE, WireError
from ftm.federation.identity import BadSealedMessage, SigningKey, seal_to_node
from ftm.federation.signedanswers import SignedAnswer, open_signed, sign_answer
from ftm.keeper.protocol import ClaimSignature, MoveClaim

__all__ = ["CONTENT_TYPE", "ClaimSignature", "MoveClaim", "SignedAnswer", "WireError", "sign_answer"]

M = TypeVar("M")

PROTOCOL_VERSION = 1
DATA_CONTENT_TYPE = "application/octet-stream"
PREFIX = "/federation/v1/moves/"  # where the node mounts `ftm.node.http.moves`
PATH_OFFER = "offer"
PATH_PROGRESS = "progress"
PATH_DATA = "data"
PATH_FINISH = "finish"
PATH_COMMIT = "commit"
PATH_CLAIM = "claim"  # R2: MoveClaimRequest → ClaimSignature (the destination's, over the claim's body)
PATH_FINISH_CLAIMED = "finish-claimed"  # R2: ClaimedManifest → SignedAnswer(TransferAnswer)

MOVE_ID_BYTES = 16
KEY_BYTES = 32
HASH_BYTES = 32
PACKAGE_KEY_BYTES = 32
CHUNK_BYTES = 1024 * 1024  # transfer data per request: memory stays bounded whatever the package's size
MAX_MESSAGE_BYTES = 64 * 1024
MAX_RECORDS_BYTES = 64 * 1024 * 1024
MAX_REASON_CHARS = 200
MAX_HOLDERS = 255  # keepers of one epoch (shares are numbered 1 to 255)
MAX_URL_CHARS = 200  # so that a manifest naming 255 holders stays under MAX_MESSAGE_BYTES

OFFER_DOMAIN = "ftm-move-offer-v1"
RECEIPT_DOMAIN = "ftm-move-receipt-v1"
HOSTED_DOMAIN = "ftm-move-hosted-v1"
KEY_BOX_PREFIX = b"ftm-move-key-v1\x00"

MAGIC = b"FTMMOVE\x01"
HEADER_BYTES = len(MAGIC) + 4


@dataclass(frozen=True, slots=True)
class MoveOffer:
    """Source → destination: will you take this resident? `package_bytes` is the size of its sealed package."""

    version: int
    move_id: bytes
    resident_id: str
    resident_key: bytes
    package_bytes: int
    attestation: SignedEvent  # the source's signed HOSTING event for the resident: it does live there


@dataclass(frozen=True, slots=True)
class OfferAnswer:
    """Signed by the destination (OFFER_DOMAIN). `reason` is "" when accepted, else a refusal code."""

    version: int
    move_id: bytes
    source_key: bytes
    destination_key: bytes
    resident_key: bytes
    accepted: bool
    reason: str
    at: int


@dataclass(frozen=True, slots=True)
class ProgressQuery:
    """How many bytes of this attempt's transfer file do you hold? (Starts the attempt at the destination.)"""

    move_id: bytes
    attempt: int
    total_bytes: int


@dataclass(frozen=True, slots=True)
class Progress:
    move_id: bytes
    attempt: int
    received: int


@dataclass(frozen=True, slots=True)
class TransferManifest:
    """Source → destination, after the data: what the file is, and the package key sealed to the destination."""

    version: int
    move_id: bytes
    attempt: int
    resident_id: str
    resident_key: bytes
    inbox_key: bytes
    epoch: int
    total_bytes: int
    sha256: bytes
    sealed_key: bytes


@dataclass(frozen=True, slots=True)
class TransferAnswer:
    """The receipt, signed by the destination (RECEIPT_DOMAIN): `staged` true means it holds this attempt durably
    and will host the resident as soon as the source commits; false is a final refusal, with `reason`."""

    version: int
    move_id: bytes
    attempt: int
    source_key: bytes
    destination_key: bytes
    resident_key: bytes
    sha256: bytes
    staged: bool
    reason: str
    at: int


@dataclass(frozen=True, slots=True)
class MoveCommit:
    """Source → destination: the move is committed; `moved` is the source's signed MOVED event, the proof."""

    move_id: bytes
    moved: SignedEvent


@dataclass(frozen=True, slots=True)
class CommitAnswer:
    """Signed by the destination (HOSTED_DOMAIN): the resident lives here now."""

    version: int
    move_id: bytes
    source_key: bytes
    destination_key: bytes
    resident_key: bytes
    hosted: bool
    at: int


@dataclass(frozen=True, slots=True)
class MoveClaimRequest:
    """Source → destination (R2): sign this claim of our move; `claim` carries the source's `ClaimSignature`."""

    move_id: bytes
    claim: MoveClaim


@dataclass(frozen=True, slots=True)
class KeeperHolder:
    """A keeper that holds a share and a replica of the epoch being sent: where the destination asks for it."""

    key: bytes
    url: str


@dataclass(frozen=True, slots=True)
class ClaimedManifest:
    """Source → destination, after the data of an R2 attempt: the file carries the resident's vault file of `epoch`
    as it is; its key is the keepers' to release, under the claim `claim_id`, from `holders`."""

    version: int
    move_id: bytes
    attempt: int
    resident_id: str
    resident_key: bytes
    inbox_key: bytes
    epoch: int
    total_bytes: int
    sha256: bytes
    claim_id: bytes
    holders: tuple[KeeperHolder, ...]


# --- what travels with the resident, beside its package ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MovedPost:
    """A published post as the source stores it; the POST event (when it has one) is checked on arrival."""

    id: str
    created_at: int
    title: str
    body: str
    signature: bytes
    event_body: bytes | None
    event_signature: bytes | None
    event_name: str | None


@dataclass(frozen=True, slots=True)
class MovedToken:
    """An uploader token's hash and reply key: the uploader keeps writing to the resident at its new home."""

    token_hash: bytes
    created_at: int
    revoked_at: int | None
    reply_public_key: bytes | None


@dataclass(frozen=True, slots=True)
class MovedMessage:
    """An undelivered message, still sealed to the resident's inbox key."""

    id: str
    received_at: int
    sender_kind: str
    sender_ref: str | None
    sealed: bytes


@dataclass(frozen=True, slots=True)
class MovedReply:
    """A reply to the uploader, sealed to the uploader's reply key."""

    id: str
    created_at: int
    recipient_ref: str
    sealed: bytes


@dataclass(frozen=True, slots=True)
class MoveRecords:
    """The resident's public row and what its new node needs to serve it as before: no persona content."""

    version: int
    display_name: str
    bio: str
    created_at: int
    total_runs: int
    run_time: str | None
    posts: tuple[MovedPost, ...]
    uploader_tokens: tuple[MovedToken, ...]
    messages: tuple[MovedMessage, ...]
    replies: tuple[MovedReply, ...]


def encode(message: object) -> bytes:
    return codec.encode(message)


def decode(cls: type[M], data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> M:
    """Strictly decode one message; `WireError("malformed_body")` for anything that is not exactly `cls`."""
    if len(data) > max_bytes:
        raise WireError("body_too_large", f"the message is larger than {max_bytes} bytes")
    try:
        message = codec.decode(cls, data, max_bytes=max_bytes)
    except codec.DecodeError as error:
        raise WireError("malformed_body", str(error)) from None
    _check(message)
    return message


def _check(message: object) -> None:
    if len(getattr(message, "move_id", b"\x00" * MOVE_ID_BYTES)) != MOVE_ID_BYTES:
        raise WireError("malformed_body", f"a move id is {MOVE_ID_BYTES} bytes")
    for name in ("resident_key", "inbox_key", "source_key", "destination_key"):
        if len(getattr(message, name, b"\x00" * KEY_BYTES)) != KEY_BYTES:
            raise WireError("malformed_body", f"{name} is a {KEY_BYTES}-byte key")
    for name in ("sha256", "claim_id"):
        if len(getattr(message, name, b"\x00" * HASH_BYTES)) != HASH_BYTES:
            raise WireError("malformed_body", f"{name} is {HASH_BYTES} bytes")
    holders = getattr(message, "holders", ())
    if len(holders) > MAX_HOLDERS or any(
        len(h.key) != KEY_BYTES or not 0 < len(h.url) <= MAX_URL_CHARS for h in holders
    ):
        raise WireError("malformed_body", f"at most {MAX_HOLDERS} holders, each a {KEY_BYTES}-byte key and a URL")
    for name in ("package_bytes", "total_bytes", "attempt", "epoch", "received", "at"):
        value = getattr(message, name, 0)
        if not 0 <= value < 2**63:
            raise WireError("malformed_body", f"{name} is out of range")
    if len(getattr(message, "reason", "")) > MAX_REASON_CHARS:
        raise WireError("malformed_body", f"a reason is at most {MAX_REASON_CHARS} characters")


def open_answer(cls: type[M], data: bytes, domain: str, signer: bytes) -> M:
    """The answer inside a `SignedAnswer` from `signer`, its signature checked; raises `WireError`."""
    answer = open_signed(cls, decode(SignedAnswer, data), domain, signer, MAX_MESSAGE_BYTES)
    _check(answer)
    if getattr(answer, "version", PROTOCOL_VERSION) != PROTOCOL_VERSION:
        raise WireError("unsupported_version", "the answer's version is not supported")
    return answer


def seal_package_key(destination_key: bytes, move_id: bytes, attempt: int, package_key: bytes) -> bytes:
    """The package key sealed to the destination, bound to the move and attempt it was made for."""
    return seal_to_node(destination_key, _key_box(move_id, attempt) + package_key)


def open_package_key(key: SigningKey, sealed: bytes, move_id: bytes, attempt: int) -> bytes:
    """The package key from `seal_package_key`; `WireError("bad_key")` unless it opens and names this move."""
    try:
        opened = key.open_sealed(sealed)
    except BadSealedMessage:
        raise WireError("bad_key", "the package key does not open with this node's key") from None
    prefix = _key_box(move_id, attempt)
    if len(opened) != len(prefix) + PACKAGE_KEY_BYTES or not opened.startswith(prefix):
        raise WireError("bad_key", "the package key was sealed for another move or attempt")
    return opened[len(prefix) :]


def _key_box(move_id: bytes, attempt: int) -> bytes:
    return KEY_BOX_PREFIX + move_id + attempt.to_bytes(8, "big")


def transfer_header(records: bytes) -> bytes:
    """The transfer file's start: magic, records length, records; the package's vault file follows."""
    if len(records) > MAX_RECORDS_BYTES:
        raise ValueError(f"a move's records are at most {MAX_RECORDS_BYTES} bytes")
    return MAGIC + len(records).to_bytes(4, "big") + records


def records_length(header: bytes) -> int:
    """The records length from the first HEADER_BYTES of a transfer file; raises `WireError`."""
    if len(header) != HEADER_BYTES or not header.startswith(MAGIC):
        raise WireError("bad_transfer", "the transfer file does not start with the move magic")
    length = int.from_bytes(header[len(MAGIC) :], "big")
    if length > MAX_RECORDS_BYTES:
        raise WireError("bad_transfer", "the transfer's records are too large")
    return length
