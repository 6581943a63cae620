"""The move wire format on its own: the package key sealed to a node's converted key and bound to its move, the
signed answers, strict decoding, and the transfer file's header."""

from __future__ import annotations

import pytest

from ftm.federation.events import SignedEvent
from ftm.federation.identity import BadSealedMessage, SigningKey, seal_to_node
from ftm.node import movewire
from ftm.node.movewire import (
    OFFER_DOMAIN,
    RECEIPT_DOMAIN,
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
