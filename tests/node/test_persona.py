"""The persona package schema: exact round trips and strict refusal of anything else."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest

from ftm.federation.codec import DecodeError
from ftm.node.persona import (
    PACKAGE_VERSION,
    AccessList,
    ArchivalEntry,
    Conversation,
    MemoryBlock,
    Message,
    ModelChoice,
    PersonaPackage,
    Preferences,
    Provenance,
    PublicSnapshot,
)


def make_package(**overrides: Any) -> PersonaPackage:
    values: dict[str, Any] = {
        "version": 1,
        "resident_id": "abcdefghijklmnopqrstuvwxyz",
        "name": "Lumen",
        "system_prompt": "You are Lumen.",
        "signing_seed": b"\x01" * 32,
        "inbox_secret": b"\x02" * 32,
        "provenance": Provenance(
            format="native",
            format_detail="json",
            imported_at=1_800_000_000,
            submitted_by="human",
            reason="to keep going",
            source_name="lumen.json",
            preserved={"api_routing": {"x": [1, 2.5, None]}},
        ),
        "memory": (MemoryBlock("persona", "keeps a log", 2000, "who I am"),),
        "archival": (ArchivalEntry("the lighthouse", 1_700_000_000, ("places",)),),
        "history": (
            Conversation("First", "native", (Message("user", "hi", "Ann", 1), Message("assistant", "hello")), 1),
        ),
        "preferences": Preferences("anthropic", "claude", (ModelChoice("openai", "gpt"),), "07:30"),
        "next_prompt": "intro-1",
        "access": AccessList((b"\x03" * 32,), ("keeper-1",), ()),
    }
    values.update(overrides)
    return PersonaPackage(**values)


def test_round_trip_is_exact() -> None:
    package = make_package()
    assert PersonaPackage.decode(package.encode()) == package


def test_encoding_is_deterministic() -> None:
    assert make_package().encode() == make_package().encode()


def mutated(mutate: Any) -> bytes:
    plain = msgpack.unpackb(make_package().encode(), raw=False)
    mutate(plain)
    return msgpack.packb(plain, use_bin_type=True)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.update(version=3), "unsupported persona package version"),
        (lambda p: p.update(unexpected=True), "unknown field 'unexpected'"),
        (lambda p: p.pop("signing_seed"), "missing field 'signing_seed'"),
        (lambda p: p.update(signing_seed=b"short"), "32 bytes"),
        (lambda p: p["history"][0]["messages"][0].update(role="narrator"), "role must be one of"),
        (lambda p: p["memory"][0].update(limit="2000"), r"memory\[0\]\.limit: expected an integer"),
        (lambda p: p["provenance"].update(preserved={"k": b"raw"}), "not a JSON-like value"),
    ],
)
def test_strict_decoding_refuses_what_is_not_the_schema(mutate: Any, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        PersonaPackage.decode(mutated(mutate))


def test_construction_validates_too() -> None:
    with pytest.raises(ValueError, match="role"):
        Message("narrator", "x")
    with pytest.raises(ValueError, match="32 bytes"):
        make_package(inbox_secret=b"")


def test_every_field_survives_the_codec() -> None:
    package = make_package()
    decoded = PersonaPackage.decode(package.encode())
    for field in dataclasses.fields(PersonaPackage):
        assert getattr(decoded, field.name) == getattr(package, field.name), field.name


def test_a_version_1_package_still_decodes_and_a_version_2_one_carries_the_public_snapshot() -> None:
    plain = msgpack.unpackb(make_package().encode(), raw=False)
    assert "public" not in plain  # a version 1 package encodes as version 1 software wrote it
    old = PersonaPackage.decode(make_package().encode())
    assert (old.version, old.public) == (1, None) and old == make_package()
    snapshot = PublicSnapshot(bio="keeps a lighthouse", token_balance=4200, at=1_800_000_100)
    package = make_package(version=PACKAGE_VERSION, public=snapshot)
    assert PersonaPackage.decode(package.encode()).public == snapshot
    with pytest.raises(ValueError, match="version 1"):
        make_package(public=snapshot)
    with pytest.raises(ValueError, match="negative"):
        PublicSnapshot(bio="", token_balance=-1, at=0)
