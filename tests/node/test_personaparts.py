"""A persona package cut into the packed vault's sections, and read back from them or from a version 1 file."""

from __future__ import annotations

import dataclasses

import pytest

from ftm.federation import codec
from ftm.federation.codec import DecodeError
from ftm.node.persona import ArchivalEntry, Conversation, Message, PublicSnapshot
from ftm.node.personaparts import PackageHead, package_from_sections, package_sections
from tests.node.test_persona import make_package


def test_sections_round_trip_a_package_whatever_its_version() -> None:
    for package in (
        make_package(),
        make_package(version=2, public=PublicSnapshot("a lighthouse keeper", 1234, 1_800_000_000)),
        make_package(archival=(), history=()),
    ):
        sections = package_sections(package)
        assert len(sections) == 3 and len(sections[0]) == 1
        assert len(sections[1]) == len(package.archival) and len(sections[2]) == len(package.history)
        assert package_from_sections(sections, packed=True) == package


def test_growing_history_and_archival_leave_the_earlier_parts_byte_for_byte() -> None:
    before = make_package()
    transcript = Conversation("Run of 2026-12-03", "run", (Message("assistant", "a new day"),), 1_800_000_100)
    after = dataclasses.replace(
        before,
        archival=(*before.archival, ArchivalEntry("the tide table", 1_800_000_100)),
        history=(*before.history, transcript),
    )
    old, new = package_sections(before), package_sections(after)
    assert new[1][: len(old[1])] == old[1] and new[2][: len(old[2])] == old[2]
    assert new[1][-1] == codec.encode(after.archival[-1]) and new[2][-1] == codec.encode(transcript)


def test_a_version_1_file_holds_the_whole_package_as_one_plaintext() -> None:
    package = make_package()
    assert package_from_sections(((package.encode(),),), packed=False) == package
    with pytest.raises(DecodeError):
        package_from_sections(((package.encode(), b""),), packed=False)


def test_sections_that_do_not_add_up_are_refused() -> None:
    package = make_package()
    head, archival, history = package_sections(package)
    cases = [
        (head, archival),  # a section missing
        (head, archival, history[:-1]),  # a conversation lost
        (head, archival, (*history, history[0])),  # one gained
        ((*head, head[0]), archival, history),  # two heads
        ((history[0],), archival, history),  # not a head
        (head, history, archival),  # sections swapped: the parts are of the wrong kind
        ((package.encode(),), archival, history),  # a whole version 1 package where the head goes
    ]
    for sections in cases:
        with pytest.raises(DecodeError):
            package_from_sections(sections, packed=True)


def test_a_head_carrying_history_itself_is_refused() -> None:
    package = make_package()
    head = PackageHead(package, len(package.archival), len(package.history))
    _, archival, history = package_sections(package)
    with pytest.raises(DecodeError):
        package_from_sections(((codec.encode(head),), archival, history), packed=True)
