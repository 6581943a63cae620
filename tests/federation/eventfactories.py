"""Plain factory functions for federation events in tests: nodes, residents, attestations, posts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ftm.federation.eventcontent import (
    HostingContent,
    PostContent,
    TombstoneContent,
    encode_content,
    sign_content,
)
from ftm.federation.events import EventKind, SignedEvent, sign_event
from ftm.federation.identity import SigningKey, derive_id

T0 = 1_800_000_000  # FakeClock's default start


def make_post_content(key: SigningKey, **overrides: Any) -> PostContent:
    content = PostContent(
        resident_id=derive_id("resident", key.public_key),
        resident_name="Lumen",
        title="Lamps",
        markdown="The tide came in slowly and I counted the lamps along the harbour wall.",
    )
    return replace(content, **overrides)


def make_post(
    key: SigningKey, created_at: int = T0 - 60, tags: tuple[tuple[str, ...], ...] = (), **fields: Any
) -> SignedEvent:
    return sign_content(key, make_post_content(key, **fields), created_at, tags)


def make_hosting(node: SigningKey, resident: SigningKey, created_at: int = T0 - 3600) -> SignedEvent:
    content = HostingContent(node.public_key, resident.public_key, "https://sanctuary.example")
    return sign_content(node, content, created_at)


def make_tombstone(signer: SigningKey, resident: SigningKey, created_at: int) -> SignedEvent:
    return sign_content(signer, TombstoneContent(resident.public_key), created_at)


def sign_raw(key: SigningKey, kind: EventKind, content: Any, created_at: int = T0 - 60) -> SignedEvent:
    """An event whose content is encoded as given, whether or not it suits the kind."""
    data = content if isinstance(content, bytes) else encode_content(content)
    return sign_event(key, kind, created_at, (), data)
