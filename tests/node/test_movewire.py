"""The move wire format on its own: the package key sealed to a node's converted key and bound to its move, the
signed answers, strict decoding, the transfer file's header, and the move-claim messages of release rule R2 (the
claim request and its signatures, the claimed manifest and its holders)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from ftm.federation.events import SignedEvent
from ftm.federation.identity import BadSealedMessage, BadSignature, SigningKey, seal_to_node, verify
from ftm.keeper.protocol import CLAIM_DOMAIN, MoveTerms, claim_id, sign_claim
from ftm.keeper.protocol import decode as decode_keeper
from ftm.keeper.protocol import encode as encode_keeper
from ftm.node import movewire
from ftm.node.movewire import (
    OFFER_DOMAIN,
    RECEIPT_DOMAIN,
    ClaimedManifest,
    ClaimSignature,
    KeeperHolder,
    MoveClaim,
    MoveClaimRequest,
    MoveOffer,
    OfferAnswer,
    WireError,
    open_package_key,
    seal_package_key,
)

MOVE = bytes(range(16))
ATTESTATION = SignedEvent(b"body", b"signature", b"content")  # checked by the destination, not the codec


def test_what_is_sealed_to_a_node_opens_only_with_that_node_key() -> None:
    node, other = SigningKey.generate(), SigningKey.generate()
    sealed = seal_to_node(node.public_key, b"lamp")
    assert node.open_sealed(sealed) == b"lamp"
    with pytest.raises(BadSealedMessage):
        other.open_sealed(sealed)
    with pytest.raises(ValueError, match="Ed25519"):
        seal_to_node(b"\xff" * 32, b"lamp")  # not a point on the curve: nothing to convert


def test_the_package_key_opens_only_for_its_node_move_and_attempt() -> None:
    destination, key = SigningKey.generate(), bytes(range(32))
    sealed = seal_package_key(destination.public_key, MOVE, 2, key)
    assert open_package_key(destination, sealed, MOVE, 2) == key
    for node, move, attempt in (
        (SigningKey.generate(), MOVE, 2),
        (destination, b"\x00" * 16, 2),
        (destination, MOVE, 3),
    ):
        with pytest.raises(WireError) as refused:
            open_package_key(node, sealed, move, attempt)
        assert refused.value.code == "bad_key"


def test_signed_answers_open_only_from_their_signer_in_their_domain() -> None:
    destination = SigningKey.generate()
    answer = OfferAnswer(1, MOVE, b"\x01" * 32, destination.public_key, b"\x02" * 32, True, "", 1_800_000_000)
    data = movewire.encode(movewire.sign_answer(destination, OFFER_DOMAIN, answer))
    assert movewire.open_answer(OfferAnswer, data, OFFER_DOMAIN, destination.public_key) == answer
    for domain, signer in ((RECEIPT_DOMAIN, destination.public_key), (OFFER_DOMAIN, SigningKey.generate().public_key)):
        with pytest.raises(WireError) as refused:
            movewire.open_answer(OfferAnswer, data, domain, signer)
        assert refused.value.code == "bad_signature"
    tampered = bytearray(data)
    tampered[-70] ^= 1
    with pytest.raises(WireError):
        movewire.open_answer(OfferAnswer, bytes(tampered), OFFER_DOMAIN, destination.public_key)


def test_messages_decode_strictly() -> None:
    good = MoveOffer(1, MOVE, "r" * 26, b"\x02" * 32, 10, ATTESTATION)
    assert movewire.decode(MoveOffer, movewire.encode(good)) == good
    for bad in (
        MoveOffer(1, b"\x00" * 15, "r", b"\x02" * 32, 10, ATTESTATION),  # a short move id
        MoveOffer(1, MOVE, "r", b"\x02" * 31, 10, ATTESTATION),  # a short key
        MoveOffer(1, MOVE, "r", b"\x02" * 32, -1, ATTESTATION),  # a negative size
    ):
        with pytest.raises(WireError) as refused:
            movewire.decode(MoveOffer, movewire.encode(bad))
        assert refused.value.code == "malformed_body"
    with pytest.raises(WireError):
        movewire.decode(MoveOffer, movewire.encode(good) + b"\x00")


def test_the_transfer_header_frames_the_records() -> None:
    header = movewire.transfer_header(b"records")
    assert movewire.records_length(header[: movewire.HEADER_BYTES]) == len(b"records")
    assert header.endswith(b"records")
    with pytest.raises(WireError):
        movewire.records_length(b"NOTMOVE!" + bytes(4))
    with pytest.raises(WireError):
        movewire.records_length(movewire.MAGIC + (movewire.MAX_RECORDS_BYTES + 1).to_bytes(4, "big"))


# --- the move-claim messages (release rule R2) -------------------------------------------------------------------

SOURCE, DESTINATION = SigningKey(bytes([1]) * 32), SigningKey(bytes([2]) * 32)
CLAIM_ID = bytes(range(32))


def claim_terms(**changes: object) -> bytes:
    fields: dict[str, Any] = {
        "version": 1, "resident_id": "r" * 26, "epoch": 7, "host_key": SOURCE.public_key,
        "destination_key": DESTINATION.public_key, "destination_url": "https://b.example", "created_at": 1_800_000_000,
    }  # fmt: skip
    return encode_keeper(MoveTerms(**(fields | changes)))


def manifest(**changes: object) -> ClaimedManifest:
    fields: dict[str, Any] = {
        "version": 1, "move_id": MOVE, "attempt": 1, "resident_id": "r" * 26, "resident_key": b"\x03" * 32,
        "inbox_key": b"\x04" * 32, "epoch": 7, "total_bytes": 4096, "sha256": b"\x05" * 32, "claim_id": CLAIM_ID,
        "holders": (KeeperHolder(b"\x06" * 32, "https://k1.example"), KeeperHolder(b"\x07" * 32, "https://k2.example")),
    }  # fmt: skip
    return ClaimedManifest(**(fields | changes))


def fields_of(message: object) -> dict[str, Any]:
    """A message's fields by name, as the codec writes them (a msgpack map), for tampering with one."""
    raw = msgpack.unpackb(movewire.encode(message), raw=False)
    assert isinstance(raw, dict)
    return raw


def test_a_claim_request_round_trips_and_its_signatures_verify_over_the_body() -> None:
    body = claim_terms()
    request = MoveClaimRequest(MOVE, MoveClaim(body, (sign_claim(SOURCE, body),)))
    decoded = movewire.decode(MoveClaimRequest, movewire.encode(request))
    assert decoded == request
    [signature] = decoded.claim.signatures
    verify(signature.key, CLAIM_DOMAIN, decoded.claim.body, signature.signature)  # raises if it does not verify
    assert decode_keeper(MoveTerms, decoded.claim.body).destination_key == DESTINATION.public_key

    answer = sign_claim(DESTINATION, body)  # the destination's answer is one ClaimSignature, alone
    assert decode_keeper(ClaimSignature, encode_keeper(answer)) == answer
    both = MoveClaim(body, (*request.claim.signatures, answer))
    assert movewire.decode(MoveClaim, movewire.encode(both)) == both
    assert claim_id(both.body) == claim_id(request.claim.body)  # signatures never change what the claim is


def test_claim_signatures_that_do_not_verify_are_told_apart() -> None:
    body = claim_terms()
    good = sign_claim(SOURCE, body)
    other_body = claim_terms(destination_key=SigningKey(bytes([9]) * 32).public_key)
    flipped = bytes([good.signature[0] ^ 1]) + good.signature[1:]
    for key, signed, signature in (
        (good.key, other_body, good.signature),  # the terms were changed after signing
        (DESTINATION.public_key, body, good.signature),  # claimed to be another key's
        (good.key, body, flipped),  # damaged
        (good.key, body, SOURCE.sign("ftm-keeper-release-v1", body)),  # the same key, another domain
    ):
        with pytest.raises(BadSignature):
            verify(key, CLAIM_DOMAIN, signed, signature)
    wrapped = movewire.decode(MoveClaim, movewire.encode(MoveClaim(body, (ClaimSignature(good.key, flipped),))))
    with pytest.raises(BadSignature):  # decoding does not vouch for a signature: the receiver checks it
        verify(wrapped.signatures[0].key, CLAIM_DOMAIN, wrapped.body, wrapped.signatures[0].signature)


def test_claim_requests_decode_strictly() -> None:
    body = claim_terms()
    good = MoveClaimRequest(MOVE, MoveClaim(body, (sign_claim(SOURCE, body),)))
    with pytest.raises(WireError) as short:
        movewire.decode(MoveClaimRequest, movewire.encode(MoveClaimRequest(MOVE[:15], good.claim)))
    assert short.value.code == "malformed_body"
    raw = fields_of(good)
    for tampered in (
        {k: v for k, v in raw.items() if k != "claim"},  # a missing field
        {**raw, "extra": 1},  # an unknown one
        {**raw, "move_id": "not bytes"},  # a field of the wrong type
        {**raw, "claim": {"body": body}},  # a claim without its signatures
    ):
        with pytest.raises(WireError) as refused:
            movewire.decode(MoveClaimRequest, msgpack.packb(tampered, use_bin_type=True))
        assert refused.value.code == "malformed_body"


def test_a_claimed_manifest_round_trips_and_refuses_bad_fields() -> None:
    good = manifest()
    assert movewire.decode(ClaimedManifest, movewire.encode(good)) == good
    holder = KeeperHolder(b"\x06" * 32, "https://k.example")
    for bad in (
        manifest(claim_id=CLAIM_ID[:31]),  # a claim id is a SHA-256
        manifest(sha256=b""),
        manifest(move_id=MOVE + b"\x00"),
        manifest(resident_key=b"\x03" * 31),
        manifest(inbox_key=b""),
        manifest(epoch=-1),
        manifest(total_bytes=2**63),
        manifest(holders=(KeeperHolder(b"\x06" * 31, "https://k.example"),)),  # a holder's key
        manifest(holders=(KeeperHolder(b"\x06" * 32, ""),)),  # a holder without a URL
        manifest(holders=(KeeperHolder(b"\x06" * 32, "https://" + "k" * movewire.MAX_URL_CHARS),)),
        manifest(holders=(holder,) * (movewire.MAX_HOLDERS + 1)),
    ):
        with pytest.raises(WireError) as refused:
            movewire.decode(ClaimedManifest, movewire.encode(bad), max_bytes=1 << 20)
        assert refused.value.code == "malformed_body", bad
    raw = fields_of(good)
    for tampered in ({k: v for k, v in raw.items() if k != "holders"}, {**raw, "holders": [["k", "u", "x"]]}):
        with pytest.raises(WireError):
            movewire.decode(ClaimedManifest, msgpack.packb(tampered, use_bin_type=True))
