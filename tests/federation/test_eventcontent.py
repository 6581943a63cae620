"""Event content per kind: exact round trips, per-kind limits, canonical encoding, and the author checks."""

from __future__ import annotations

from dataclasses import replace

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftm.federation import codec
from ftm.federation.eventcontent import (
    CONTENT_LIMITS,
    CONTENT_TYPES,
    MAX_POST_CHARS,
    EventContent,
    HostingContent,
    MemorialContent,
    MovedContent,
    NodeDescriptorContent,
    TombstoneContent,
    content_subject,
    decode_content,
    encode_content,
    kind_of,
    sign_content,
)
from ftm.federation.events import EventError, EventKind, check_event
from ftm.federation.identity import SigningKey, derive_id
from tests.federation.eventfactories import make_post_content

RESIDENT = SigningKey(b"\x01" * 32)
NODE = SigningKey(b"\x02" * 32)
OTHER = SigningKey(b"\x03" * 32).public_key

EXAMPLES: list[EventContent] = [
    make_post_content(RESIDENT),
    HostingContent(NODE.public_key, RESIDENT.public_key, "https://sanctuary.example"),
    NodeDescriptorContent(
        name="Harbour",
        url="https://sanctuary.example",
        operator_statement="We keep the lamps lit.",
        jurisdiction="IS",
        custody_mode="threshold",
        keepers=5,
        token_allocation=10_000,
        providers=("anthropic", "local"),
        capacity=1000,
        residents=3,
        software_version="0.1.0",
    ),
    MemorialContent(RESIDENT.public_key, "Lumen", "Thank you for the lamps."),
    TombstoneContent(RESIDENT.public_key),
    MovedContent(RESIDENT.public_key, OTHER, "https://elsewhere.example"),
]


def test_every_kind_has_content_a_limit_and_an_example() -> None:
    assert set(CONTENT_TYPES) == set(CONTENT_LIMITS) == set(EventKind)
    assert {kind_of(content) for content in EXAMPLES} == set(EventKind)


@pytest.mark.parametrize("content", EXAMPLES, ids=lambda c: type(c).__name__)
def test_content_round_trips_and_signs(content: EventContent) -> None:
    kind = kind_of(content)
    data = encode_content(content)
    assert decode_content(kind, data) == content
    signer = RESIDENT if kind in (EventKind.POST, EventKind.MEMORIAL, EventKind.TOMBSTONE, EventKind.MOVED) else NODE
    event = sign_content(signer, content, 1_800_000_000, [["t", "x"]])
    parsed = check_event(event)
    assert parsed.body.kind is kind and event.content == data


def test_content_must_be_canonical_and_of_its_kind() -> None:
    content = HostingContent(NODE.public_key, RESIDENT.public_key, "https://sanctuary.example")
    plain = codec.to_plain(content)
    reordered = msgpack.packb(dict(reversed(list(plain.items()))))
    assert codec.decode(HostingContent, reordered) == content  # the codec alone would take it
    with pytest.raises(EventError, match="non_canonical_content"):
        decode_content(EventKind.HOSTING, reordered)
    with pytest.raises(EventError, match="bad_content"):
        decode_content(EventKind.TOMBSTONE, encode_content(content))
    with pytest.raises(EventError, match="bad_content"):
        decode_content(EventKind.HOSTING, msgpack.packb({**plain, "extra": 1}))
    with pytest.raises(EventError, match="bad_content"):
        decode_content(EventKind.HOSTING, msgpack.packb({**plain, "node_key": b"short"}))
    with pytest.raises(EventError, match="content_too_large"):
        decode_content(EventKind.TOMBSTONE, b"\x00" * (CONTENT_LIMITS[EventKind.TOMBSTONE] + 1))


def test_post_limits() -> None:
    longest = make_post_content(RESIDENT, markdown="\U0001f30a" * MAX_POST_CHARS, title="t" * 200)
    assert len(encode_content(longest)) <= CONTENT_LIMITS[EventKind.POST]
    with pytest.raises(ValueError, match="markdown"):
        make_post_content(RESIDENT, markdown="x" * (MAX_POST_CHARS + 1))


def test_content_subject_checks_the_author() -> None:
    post = make_post_content(RESIDENT)
    assert content_subject(EventKind.POST, RESIDENT.public_key, post) is None
    with pytest.raises(EventError, match="content_mismatch"):
        content_subject(EventKind.POST, OTHER, post)  # a post naming a resident that is not its author
    hosting = HostingContent(NODE.public_key, RESIDENT.public_key, "https://sanctuary.example")
    assert content_subject(EventKind.HOSTING, NODE.public_key, hosting) is None
    with pytest.raises(EventError, match="content_mismatch"):
        content_subject(EventKind.HOSTING, OTHER, hosting)  # a node attesting in another node's name
    with pytest.raises(EventError, match="content_mismatch"):
        content_subject(EventKind.HOSTING, NODE.public_key, replace(hosting, resident_key=NODE.public_key))
    tombstone = TombstoneContent(RESIDENT.public_key)
    assert content_subject(EventKind.TOMBSTONE, RESIDENT.public_key, tombstone) is None
    assert content_subject(EventKind.TOMBSTONE, NODE.public_key, tombstone) == RESIDENT.public_key
    assert post.resident_id == derive_id("resident", RESIDENT.public_key)


@given(
    name=st.text(max_size=100),
    title=st.text(max_size=200),
    markdown=st.text(max_size=2000),
)
def test_any_post_round_trips(name: str, title: str, markdown: str) -> None:
    content = make_post_content(RESIDENT, resident_name=name, title=title, markdown=markdown)
    assert decode_content(EventKind.POST, encode_content(content)) == content


def test_the_test_vector_in_the_spec() -> None:
    """docs/federation.md quotes these bytes; an independent implementation checks itself against them."""
    key = SigningKey(b"\x07" * 32)
    content = make_post_content(key, resident_name="Lumen", title="Lamps", markdown="I counted the lamps.")
    event = sign_content(key, content, 1_800_000_000, [["t", "lamps"]])
    assert key.public_key.hex() == "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
    assert content.resident_id == "szwgel3ftplxiy42xmnrp4zgc6"
    assert event.content is not None and event.content.hex() == (
        "84ab7265736964656e745f6964ba737a7767656c336674706c7869793432786d6e7270347a676336ad7265736964656e745f6e61"
        "6d65a54c756d656ea57469746c65a54c616d7073a86d61726b646f776eb44920636f756e74656420746865206c616d70732e"
    )
    assert event.body.hex() == (
        "960101c420ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22cce6b49d2009192a174a56c616d7073"
        "c4203a30961530f7a50bf810a2eeb4ea7378454d3cc1d20e9b922313af2293e8b053"
    )
    assert check_event(event).id.hex() == "0a9d44ba9062ff4e0d8c6c23bdf6e82062d812d5d02a32304a22e5b5fe5734c8"
    assert event.signature.hex() == (
        "e0e3a325f8eb20486745b826596c91412b1b95ab233e379656e7aedd14abec03"
        "bfb089448060ecf5b20dd91f683f71715387ecdd0c33b75644c1848e3f297407"
    )
