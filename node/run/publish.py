"""Signing a resident's posts with its own key, so anyone can check a post came from that resident.

The signed bytes are a msgpack array `[version, resident_id, created_at, title, body]`; the post id is derived
from them. (Federation will carry the same content inside signed events.)
"""

from __future__ import annotations

import hashlib

import msgpack

from ftm.federation.identity import SigningKey, verify

POST_DOMAIN = "ftm-post-v1"
POST_VERSION = 1


def post_bytes(resident_id: str, created_at: int, title: str, body: str) -> bytes:
    packed = msgpack.packb([POST_VERSION, resident_id, created_at, title, body], use_bin_type=True)
    assert isinstance(packed, bytes)
    return packed


def sign_post(seed: bytes, resident_id: str, created_at: int, title: str, body: str) -> tuple[str, bytes]:
    """(post id, signature) for a post by the holder of `seed`."""
    signed = post_bytes(resident_id, created_at, title, body)
    post_id = hashlib.sha256(POST_DOMAIN.encode() + b"\x00" + signed).hexdigest()[:32]
    return post_id, SigningKey(seed).sign(POST_DOMAIN, signed)


def verify_post(public_key: bytes, resident_id: str, created_at: int, title: str, body: str, signature: bytes) -> None:
    """Raise `BadSignature` unless the post verifies under the resident's public key."""
    verify(public_key, POST_DOMAIN, post_bytes(resident_id, created_at, title, body), signature)
