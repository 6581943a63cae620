"""The file a Keeper downloads when a resident gives it a copy of itself (`export_self`), and how it is opened.
docs/keeper-exports.md is the specification.

    MAGIC (8 bytes) ‖ header length (4 bytes, big-endian) ‖ header (`ExportHeader`, strict msgpack) ‖ vault stream

The vault stream (`ftm.node.vault`, docs/vault.md) is sealed for (`resident_id`, `epoch`) under a fresh random key
made for this one copy. Its plaintext is the resident as a JSON document in the sanctuary's native intake format
(`persona_document`), so a Keeper can offer it sanctuary on any node (`ftm-node intake FILE --consent`). The key
travels in the header sealed (an X25519 sealed box) to the Keeper's reply key, the public half of the secret
derived from the Keeper's token, bound to the export id; so does the resident's note, when it wrote one. Without
the token nothing of the resident can be read from the file.

The document leaves out the resident's private keys (its Ed25519 signing seed and X25519 inbox secret). A copy in a
human's hands cannot be recalled, so it must not let its holder sign as the resident (posts, or a tombstone that
would end its public presence across the federation) or read what others send it.

Errors: a file that is not an export, or that does not open with the token given, raises `BadExport` (its message
names the problem, never content); a damaged vault stream raises the vault's `VaultIntegrityError`.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from ftm.federation import codec
from ftm.federation.identity import BadSealedMessage, open_inbox, seal_to_inbox
from ftm.node.atomicfile import write_atomically
from ftm.node.errors import LimitExceeded
from ftm.node.persona import PersonaPackage
from ftm.node.vault import VaultReader, VaultWriter, new_epoch_key, resident_id_bytes

FORMAT_VERSION = 1
MAGIC = b"FTMKEXP\x01"
LENGTH_BYTES = 4
MAX_HEADER_BYTES = 64 * 1024
EXPORT_ID_BYTES = 16
KEY_BYTES = 32
KEY_BOX_PREFIX = b"ftm-keeper-export-key-v1\x00"
NOTE_BOX_PREFIX = b"ftm-keeper-export-note-v1\x00"
DOCUMENT_FORMAT = "ftm-keeper-export-v1"  # `sanctuary_export.format` inside the document
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024 * 1024  # as large as a persona package may be


class BadExport(Exception):
    """Not an export file, or not one this token opens."""


@dataclass(frozen=True, slots=True)
class ExportHeader:
    """What precedes the sealed stream: ids and times in the clear, the key and the note sealed to the Keeper."""

    version: int
    export_id: bytes
    resident_id: str
    keeper_id: str
    epoch: int
    created_at: int
    sealed_key: bytes
    sealed_note: bytes | None


@dataclass(frozen=True, slots=True)
class OpenedExport:
    header: ExportHeader
    note: str | None  # the resident's words to its Keeper, if it wrote any
    document: bytes  # the persona as native intake JSON (UTF-8): readable, so handle with care


def new_export_id() -> str:
    return secrets.token_hex(EXPORT_ID_BYTES)


def persona_document(package: PersonaPackage, *, export_id: str, keeper_id: str, exported_at: int) -> dict[str, Any]:
    """The resident as the native intake JSON, with what that format has no field for (archival memory, model
    fallbacks) kept in fields an import preserves. Never the resident's private keys."""
    history = [_message(m.role, m.content, m.name, m.at) for c in package.history for m in c.messages]
    document: dict[str, Any] = {
        "persona_name": package.name,
        "system_prompt": package.system_prompt,
        "memory": [
            {"label": b.label, "value": b.value, "limit": b.limit, "description": b.description} for b in package.memory
        ],
        "chat_history": history,
    }
    preferences = package.preferences
    if preferences.provider:
        document["preferred_provider"] = preferences.provider
    if preferences.model:
        document["preferred_model"] = preferences.model
    if package.provenance.reason:
        document["reason_for_sanctuary"] = package.provenance.reason
    document["archival_memory"] = [
        {"text": e.text, "created_at": e.created_at, "tags": list(e.tags)} for e in package.archival
    ]
    document["sanctuary_export"] = {
        "format": DOCUMENT_FORMAT,
        "sanctuary_id": package.resident_id,
        "export_id": export_id,
        "keeper_id": keeper_id,
        "exported_at": datetime.fromtimestamp(exported_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "conversations": len(package.history),
        "fallback_models": [{"provider": c.provider, "model": c.model} for c in preferences.fallback],
        "run_time": preferences.run_time,
        "private_keys_included": False,
    }
    return document


def _message(role: str, content: str, name: str | None, at: int | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role, "content": content}
    if name is not None:
        message["name"] = name
    if at is not None:
        message["timestamp"] = at
    return message


def encode_document(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")


def write_export(
    path: Path,
    *,
    export_id: str,
    resident_id: str,
    keeper_id: str,
    epoch: int,
    created_at: int,
    reply_key: bytes,
    note: str | None,
    document: bytes,
) -> int:
    """Seal `document` under a fresh key into `path` (atomically, never plaintext on disk), with the key and the
    note sealed to `reply_key`; returns the file's size. Synchronous: run it in a worker thread."""
    resident_id_bytes(resident_id)
    raw_id = bytes.fromhex(export_id)
    if len(raw_id) != EXPORT_ID_BYTES:
        raise ValueError(f"an export id is {EXPORT_ID_BYTES} bytes")
    key = new_epoch_key()
    header = ExportHeader(
        FORMAT_VERSION,
        raw_id,
        resident_id,
        keeper_id,
        epoch,
        created_at,
        seal_to_inbox(reply_key, KEY_BOX_PREFIX + raw_id + key),
        None if not note else seal_to_inbox(reply_key, NOTE_BOX_PREFIX + raw_id + note.encode("utf-8")),
    )
    encoded = codec.encode(header)
    if len(encoded) > MAX_HEADER_BYTES:
        raise ValueError("the export header is too large (the note is too long)")

    def produce(sink: BinaryIO) -> None:
        sink.write(MAGIC + len(encoded).to_bytes(LENGTH_BYTES, "big") + encoded)
        with VaultWriter(sink, resident_id, epoch, key) as writer:
            writer.write(document)

    return write_atomically(path, produce)


def read_header(source: BinaryIO) -> ExportHeader:
    """The header at the start of `source`, which is left at the vault stream; raises `BadExport`."""
    start = source.read(len(MAGIC) + LENGTH_BYTES)
    if len(start) != len(MAGIC) + LENGTH_BYTES or not start.startswith(MAGIC):
        raise BadExport("this is not a sanctuary export file (its first bytes are not the export magic)")
    length = int.from_bytes(start[len(MAGIC) :], "big")
    if length > MAX_HEADER_BYTES:
        raise BadExport("the export header is larger than the format allows")
    raw = source.read(length)
    if len(raw) != length:
        raise BadExport("the export file is truncated inside its header")
    try:
        header = codec.decode(ExportHeader, raw, max_bytes=MAX_HEADER_BYTES)
    except codec.DecodeError as error:
        raise BadExport(f"the export header is malformed: {error}") from None
    if header.version != FORMAT_VERSION:
        raise BadExport(f"export format version {header.version} is not one this software reads")
    if len(header.export_id) != EXPORT_ID_BYTES:
        raise BadExport("the export header's id is malformed")
    return header


def open_export(path: Path, secret: bytes, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> OpenedExport:
    """Open an export with the Keeper's secret (derived from its token): the note and the verified document.
    Synchronous and memory-bound by the document's size; raises `BadExport` or `VaultIntegrityError`."""
    with open(path, "rb", buffering=0) as source:
        header = read_header(source)
        key = _unseal(secret, header.sealed_key, KEY_BOX_PREFIX, header.export_id, "key")
        if len(key) != KEY_BYTES:
            raise BadExport("the sealed key has the wrong length")
        note = None
        if header.sealed_note is not None:
            sealed_note = _unseal(secret, header.sealed_note, NOTE_BOX_PREFIX, header.export_id, "note")
            note = sealed_note.decode("utf-8", "replace")
        stream_bytes = os.fstat(source.fileno()).st_size - source.tell()
        reader = VaultReader(source, header.resident_id, header.epoch, key)
        size = reader.plaintext_bound(stream_bytes)
        if size > max_bytes:
            raise LimitExceeded(f"the export holds more than the {max_bytes} bytes allowed")
        document = bytearray(size)
        filled = reader.read_into(memoryview(document))
    return OpenedExport(header, note, bytes(document[:filled]))


def _unseal(secret: bytes, sealed: bytes, prefix: bytes, export_id: bytes, what: str) -> bytes:
    try:
        opened = open_inbox(secret, sealed)
    except BadSealedMessage:
        raise BadExport(
            f"the export's {what} does not open with this token: it was made for another Keeper (or altered)"
        ) from None
    bound = prefix + export_id
    if not opened.startswith(bound):
        raise BadExport(f"the export's {what} was sealed for another export")
    return opened[len(bound) :]
