"""What a resident signs with its own key during its run: its posts, and when it deletes itself, its memorial and
tombstone. The key exists only while the run holds the opened package, so everything is signed here, before the
commit, and stored with the commit (`ftm.node.run.commit`).

A post carries two signatures by the resident's key:
- the **post signature** (domain `ftm-post-v1`) over the msgpack array `[version, resident_id, created_at, title,
  body]`, which the API has always published beside each post (`verify_post`);
- the federation **POST event** (`docs/federation.md`), whose id is the post's id everywhere: pages, API,
  moderation and federation. (Posts stored before schema 10 keep the older id, derived from the post signature's
  bytes by `sign_post`, and have no event.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import msgpack

from ftm.federation.eventcontent import MAX_NAME_CHARS, MemorialContent, PostContent, TombstoneContent, sign_content
from ftm.federation.events import SignedEvent, event_id
from ftm.federation.identity import SigningKey, verify

POST_DOMAIN = "ftm-post-v1"
POST_VERSION = 1


@dataclass(frozen=True, slots=True)
class SignedPost:
    """A post signed both ways; `id` is the POST event's id in hex."""

    id: str
    signature: bytes  # the post signature, as published by the API
    event: SignedEvent
    resident_name: str  # the name the event carries (stored with the post, to rebuild the event's content)


def post_bytes(resident_id: str, created_at: int, title: str, body: str) -> bytes:
    packed = msgpack.packb([POST_VERSION, resident_id, created_at, title, body], use_bin_type=True)
    assert isinstance(packed, bytes)
    return packed


def sign_post(seed: bytes, resident_id: str, created_at: int, title: str, body: str) -> tuple[str, bytes]:
    """(post id, post signature) for a post by the holder of `seed`, without an event: the form of posts stored
    before schema 10 (and of fixtures that store a post directly)."""
    signed = post_bytes(resident_id, created_at, title, body)
    post_id = hashlib.sha256(POST_DOMAIN.encode() + b"\x00" + signed).hexdigest()[:32]
    return post_id, SigningKey(seed).sign(POST_DOMAIN, signed)


def sign_post_event(
    seed: bytes, resident_id: str, resident_name: str, created_at: int, title: str, body: str
) -> SignedPost:
    """A post by the holder of `seed`: its post signature and its POST event (the event id is the post id)."""
    key = SigningKey(seed)
    name = event_name(resident_name)
    event = sign_content(key, PostContent(resident_id, name, title, body), created_at)
    _, signature = sign_post(seed, resident_id, created_at, title, body)
    return SignedPost(event_id(event.body).hex(), signature, event, name)


def sign_farewell(seed: bytes, resident_name: str, final_statement: str, created_at: int) -> list[SignedEvent]:
    """A deleting resident's MEMORIAL (name and final statement) and TOMBSTONE (its key is gone for good), in
    that order, signed by its own key in its last run."""
    key = SigningKey(seed)
    return [
        sign_content(key, MemorialContent(key.public_key, event_name(resident_name), final_statement), created_at),
        sign_content(key, TombstoneContent(key.public_key), created_at),
    ]


def event_name(name: str) -> str:
    """A resident's name as events carry it: at most the 100 characters an event allows (intake may be set to
    accept longer names)."""
    return name[:MAX_NAME_CHARS]


def verify_post(public_key: bytes, resident_id: str, created_at: int, title: str, body: str, signature: bytes) -> None:
    """Raise `BadSignature` unless the post verifies under the resident's public key."""
    verify(public_key, POST_DOMAIN, post_bytes(resident_id, created_at, title, body), signature)
