"""A persona package as the packed vault seals it: sections of parts, so that what did not change is not sealed again.

The packed vault (docs/vault.md, version 2) seals a plaintext given as sections of parts and carries every blob of
parts that did not change into the next epoch's file as it was. A package is cut where it grows:

    section 0   one part: the `PackageHead`, everything but the archival store and the history (small, and
                different after every run)
    section 1   one part per archival entry, oldest first (entries are added at the end)
    section 2   one part per conversation of the history, oldest first (each run adds its transcript at the end)

So a run that adds a transcript and a memory re-seals the head and the last blob of each growing section; the
years of history before them stay the ciphertext the keepers already hold. A version 1 vault file holds the whole
package as one msgpack value (`PersonaPackage.encode`); both read back here, strictly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from ftm.federation import codec
from ftm.node.persona import ArchivalEntry, Conversation, PersonaPackage

SECTIONS = 3


@dataclass(frozen=True, slots=True)
class PackageHead:
    """The package without its archival store and history (`package` has both empty), and how many of each follow
    in sections 1 and 2: a file that lost or gained a part does not decode."""

    package: PersonaPackage
    archival_count: int
    history_count: int


def package_sections(package: PersonaPackage) -> tuple[tuple[bytes, ...], ...]:
    """The package cut into the packed vault's three sections (pure Python: call it off the event loop)."""
    head = PackageHead(
        dataclasses.replace(package, archival=(), history=()), len(package.archival), len(package.history)
    )
    return (
        (codec.encode(head),),
        tuple(codec.encode(entry) for entry in package.archival),
        tuple(codec.encode(conversation) for conversation in package.history),
    )


def package_from_sections(
    sections: Sequence[Sequence[bytes]], *, packed: bool, max_bytes: int = codec.DEFAULT_MAX_BYTES
) -> PersonaPackage:
    """The package back from what the vault opened: three sections from a packed file, or one section holding the
    whole encoded package from a version 1 file (`packed` False). Strict: `codec.DecodeError` for any part that
    does not decode exactly, or sections that do not add up (pure Python: call it off the event loop)."""
    if not packed:
        if len(sections) != 1 or len(sections[0]) != 1:
            raise codec.DecodeError("a version 1 vault file holds exactly one plaintext")
        return PersonaPackage.decode(sections[0][0], max_bytes=max_bytes)
    if len(sections) != SECTIONS or len(sections[0]) != 1:
        raise codec.DecodeError(f"a packed persona package has {SECTIONS} sections and one head")
    head = codec.decode(PackageHead, sections[0][0], max_bytes=max_bytes)
    archival_parts, history_parts = sections[1], sections[2]
    if head.package.archival or head.package.history:
        raise codec.DecodeError("a package head carries no archival entries and no history")
    if (head.archival_count, head.history_count) != (len(archival_parts), len(history_parts)):
        raise codec.DecodeError("the package's sections do not hold the parts its head counts")
    archival = tuple(codec.decode(ArchivalEntry, part, max_bytes=max_bytes) for part in archival_parts)
    history = tuple(codec.decode(Conversation, part, max_bytes=max_bytes) for part in history_parts)
    return dataclasses.replace(head.package, archival=archival, history=history)
