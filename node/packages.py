"""Opening a resident's sealed persona package: custody record → epoch key → vault → strict decode.

The one way the node reads a persona back into memory (the daily run, export and restore build on it). The
plaintext exists only in the returned object; nothing here writes it anywhere.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ftm.node.custody import Custody
from ftm.node.errors import IntegrityError, NotFound
from ftm.node.persona import PersonaPackage
from ftm.node.personaparts import package_from_sections
from ftm.node.store.residents import ResidentStore
from ftm.node.vaultpack import Contents, PackBase
from ftm.node.vaultstore import VaultStore

MAX_PACKAGE_BYTES = 4 * 1024 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class OpenedPackage:
    """A package and what sealing its next epoch may carry over unchanged (`VaultStore.seal`'s `base`)."""

    package: PersonaPackage
    base: PackBase | None


class PackageOpener:
    def __init__(self, *, residents: ResidentStore, custody: Custody, vault: VaultStore) -> None:
        self._residents = residents
        self._custody = custody
        self._vault = vault

    async def open(self, resident_id: str) -> PersonaPackage:
        return (await self.open_with_base(resident_id)).package

    async def open_with_base(self, resident_id: str) -> OpenedPackage:
        resident = await self._residents.get(resident_id)
        if resident is None:
            raise NotFound("no resident with that sanctuary id lives on this node")
        record = await self._residents.key_record(resident_id, resident.key_epoch)
        if record is None:
            raise IntegrityError(f"resident {resident_id} has no key record for epoch {resident.key_epoch}")
        key = await self._custody.open_epoch_key(resident_id, resident.key_epoch, record)
        contents = await self._vault.open(resident_id, resident.key_epoch, key, MAX_PACKAGE_BYTES)
        package = await decode_package(contents, resident_id)
        return OpenedPackage(package, contents.base)


async def decode_package(contents: Contents, resident_id: str) -> PersonaPackage:
    """The package the vault opened, strictly decoded (off the event loop) and checked to be `resident_id`'s;
    `IntegrityError` otherwise, naming no content."""
    try:
        package = await asyncio.to_thread(
            package_from_sections, contents.sections, packed=contents.packed, max_bytes=MAX_PACKAGE_BYTES
        )
    except ValueError as exc:  # a DecodeError, or a schema check of the package itself
        raise IntegrityError(f"resident {resident_id}'s package does not decode: {exc}") from None
    if package.resident_id != resident_id:
        raise IntegrityError(f"the package sealed for {resident_id} names another resident")
    return package
