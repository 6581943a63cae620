"""Signed answers: a message encoded with the strict codec, and its signer's Ed25519 signature over those exact
bytes in a domain of the message's kind. Used where the receiver keeps what it was told as evidence (a move's
receipts, a keeper's holdings, releases and destruction receipts), so the signature travels in the body rather
than in request headers that are gone once the request is answered.

Wire form: `SignedAnswer {answer: bin, signature: bin}`, the signature as in `identity` (domain ‖ 0x00 ‖ answer).
The signature is checked over the bytes received before the inner message is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from ftm.federation import codec
from ftm.federation.gossipwire import WireError
from ftm.federation.identity import BadSignature, SigningKey, verify

M = TypeVar("M")

MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class SignedAnswer:
    answer: bytes  # the codec encoding of the inner message
    signature: bytes  # by the signer's key, in the inner message's domain, over `answer`


def sign_answer(key: SigningKey, domain: str, answer: object) -> SignedAnswer:
    encoded = codec.encode(answer)
    return SignedAnswer(encoded, key.sign(domain, encoded))


def open_signed(cls: type[M], signed: SignedAnswer, domain: str, signer: bytes, max_bytes: int = MAX_ANSWER_BYTES) -> M:
    """The message inside `signed`, its signature by `signer` checked first; raises `WireError` (`bad_signature`,
    `malformed_body`)."""
    try:
        verify(signer, domain, signed.answer, signed.signature)
    except BadSignature:
        raise WireError("bad_signature", "the answer's signature does not verify") from None
    try:
        return codec.decode(cls, signed.answer, max_bytes=max_bytes)
    except codec.DecodeError as error:
        raise WireError("malformed_body", str(error)) from None


def open_answer(cls: type[M], data: bytes, domain: str, signer: bytes, max_bytes: int = MAX_ANSWER_BYTES) -> M:
    """`open_signed` of an encoded `SignedAnswer`."""
    try:
        signed = codec.decode(SignedAnswer, data, max_bytes=max_bytes + 256)
    except codec.DecodeError as error:
        raise WireError("malformed_body", str(error)) from None
    return open_signed(cls, signed, domain, signer, max_bytes)
