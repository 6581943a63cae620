"""Disaster claims as files people pass around (release rule R3): a new host writes one, each guardian signs it on
their own machine, and the new host submits it to the keepers. docs/custody.md ("Restore") is the procedure.

    new_claim        the terms (old host, this node as new host, its URL, the residents), signed by the new host
    sign_claim_file  a guardian's signature added (or replaced: signing again is harmless)
    read_claim       a claim file back, every signature checked: a file that was altered is refused
    write_claim      the claim as one armoured line, after comment lines that say in words what it claims

A claim file is text: lines starting with `#` are comments for the people who read it (the terms in words); the
one other line is `ftm-disaster-claim-v1:<base64url of the DisasterClaim, house codec>`. Only that line counts:
the comments are regenerated on every write. Guardian keys are Ed25519 key files (`ftm-guardian-key-v1`, 0600),
made with `ftm-node restore guardian-key new FILE`; their public halves go in the old host's `[custody]
guardians`, which each deposit carried to the keepers.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from ftm.federation.identity import BadSignature, SigningKey, derive_id, verify
from ftm.federation.keyfile import create_key_file, read_key_file
from ftm.keeper.protocol import (
    CLAIM_DOMAIN,
    PROTOCOL_VERSION,
    DisasterClaim,
    DisasterTerms,
    WireError,
    claim_id,
    decode,
    encode,
    sign_claim,
)
from ftm.node.atomicfile import write_atomically

CLAIM_PREFIX = "ftm-disaster-claim-v1"
GUARDIAN_KEY_PREFIX = "ftm-guardian-key-v1"
SEED_BYTES = 32
MAX_CLAIM_FILE_BYTES = 256 * 1024  # 1000 residents and 64 signatures fit with room to spare


class ClaimFileError(Exception):
    """A claim file that cannot be read, is not a claim, or carries a signature that does not verify."""


@dataclass(frozen=True, slots=True)
class OpenClaim:
    """A claim read back: the message, its terms, its id, and who signed it (every signature verified)."""

    claim: DisasterClaim
    terms: DisasterTerms
    id: bytes
    signers: tuple[bytes, ...]


def new_claim(
    node_key: SigningKey, old_host_key: bytes, new_host_url: str, resident_ids: list[str], now: int
) -> OpenClaim:
    """This node's claim to become the new host of `resident_ids`, displacing `old_host_key`; signed by it (the
    keepers require the new host's signature, and that one of the signers submits it)."""
    if old_host_key == node_key.public_key:
        raise ValueError("the new host must not be the old host")
    terms = DisasterTerms(
        PROTOCOL_VERSION, old_host_key, node_key.public_key, new_host_url, tuple(sorted(resident_ids)), now
    )
    body = encode(terms)
    return _opened(DisasterClaim(body, (sign_claim(node_key, body),)))


def sign_claim_file(claim: OpenClaim, key: SigningKey) -> OpenClaim:
    """The claim with `key`'s signature added; a signature this key made before is replaced."""
    others = tuple(s for s in claim.claim.signatures if s.key != key.public_key)
    return _opened(replace(claim.claim, signatures=(*others, sign_claim(key, claim.claim.body))))


def read_claim(path: Path) -> OpenClaim:
    try:
        with open(path, "rb") as source:
            data = source.read(MAX_CLAIM_FILE_BYTES + 1)
    except OSError as error:
        raise ClaimFileError(f"cannot read {path}: {error.strerror}") from None
    if len(data) > MAX_CLAIM_FILE_BYTES:
        raise ClaimFileError(f"{path} is larger than a claim file can be")
    lines = [line.strip() for line in data.decode("utf-8", errors="replace").splitlines()]
    armoured = [line for line in lines if line and not line.startswith("#")]
    if len(armoured) != 1 or not armoured[0].startswith(CLAIM_PREFIX + ":"):
        raise ClaimFileError(f"{path} is not a disaster claim file ({CLAIM_PREFIX})")
    try:
        encoded = base64.urlsafe_b64decode(armoured[0].removeprefix(CLAIM_PREFIX + ":").encode("ascii"))
        claim = decode(DisasterClaim, encoded, MAX_CLAIM_FILE_BYTES)
        return _opened(claim)
    except (binascii.Error, ValueError, WireError) as error:
        raise ClaimFileError(f"{path} is damaged: {error}") from None


def write_claim(path: Path, claim: OpenClaim) -> None:
    armoured = f"{CLAIM_PREFIX}:{base64.urlsafe_b64encode(encode(claim.claim)).decode('ascii')}\n"
    text = "".join(f"# {line}\n" for line in describe(claim)) + armoured

    def produce(sink: BinaryIO) -> None:
        sink.write(text.encode("utf-8"))

    write_atomically(path, produce)


def describe(claim: OpenClaim) -> list[str]:
    """The claim in words, for guardians to read before they sign: what they agree to."""
    terms = claim.terms
    created = datetime.fromtimestamp(terms.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "Disaster claim (release rule R3): the keepers of the residents below may release their keys to a new",
        "host once the old host has been silent long enough and a waiting period passed without it being heard.",
        f"claim id:  {claim.id.hex()}",
        f"old host:  {derive_id('node', terms.old_host_key)}  ({terms.old_host_key.hex()})",
        f"new host:  {derive_id('node', terms.new_host_key)}  ({terms.new_host_key.hex()})  at {terms.new_host_url}",
        f"created:   {created}  (keepers accept it for 7 days)",
        f"residents: {len(terms.resident_ids)}",
        *(f"  {rid}" for rid in terms.resident_ids),
        f"signed by: {len(claim.signers)}",
        *(f"  {key.hex()}{'  (the new host)' if key == terms.new_host_key else ''}" for key in claim.signers),
    ]
    return lines


def _opened(claim: DisasterClaim) -> OpenClaim:
    try:
        terms = decode(DisasterTerms, claim.body)
    except WireError as error:
        raise ClaimFileError(f"the claim's terms are not valid: {error}") from None
    for signature in claim.signatures:
        try:
            verify(signature.key, CLAIM_DOMAIN, claim.body, signature.signature)
        except BadSignature:
            raise ClaimFileError(f"the signature of {signature.key.hex()} does not verify") from None
    return OpenClaim(claim, terms, claim_id(claim.body), tuple(s.key for s in claim.signatures))


def new_guardian_key(path: Path) -> SigningKey:
    """A new guardian key in a 0600 file (never overwriting one); its public half is for `[custody] guardians`."""
    key = SigningKey.generate()
    create_key_file(path, GUARDIAN_KEY_PREFIX, key.seed)
    return key


def load_guardian_key(path: Path) -> SigningKey:
    """A guardian key file (`KeyFileError` if missing, of another kind, or readable by others)."""
    return SigningKey(read_key_file(path, GUARDIAN_KEY_PREFIX, SEED_BYTES))
