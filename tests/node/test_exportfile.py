"""The export file: sealed to one Keeper's token, bound to its export id, complete or refused; the document inside
is the persona in the native intake format, without the resident's private keys."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from ftm.config.settings import IntakeSettings
from ftm.federation import codec
from ftm.federation.identity import derive_inbox_secret, inbox_public_key
from ftm.node.exportfile import (
    LENGTH_BYTES,
    MAGIC,
    BadExport,
    encode_document,
    new_export_id,
    open_export,
    persona_document,
    read_header,
    write_export,
)
from ftm.node.intake.formats.native import import_native
from ftm.node.keepers import KEEPER_REPLY_DOMAIN
from ftm.node.vault import VaultFailure, VaultIntegrityError
from tests.node.test_persona import make_package

TOKEN = "ftm_kp_" + "t" * 43
SECRET = derive_inbox_secret(KEEPER_REPLY_DOMAIN, TOKEN)
NOW = 1_800_000_000


def export_to(path: Path, *, note: str | None = "Look after this.", export_id: str | None = None) -> str:
    export_id = export_id or new_export_id()
    package = make_package()
    document = encode_document(persona_document(package, export_id=export_id, keeper_id="keeper-1", exported_at=NOW))
    write_export(
        path,
        export_id=export_id,
        resident_id=package.resident_id,
        keeper_id="keeper-1",
        epoch=4,
        created_at=NOW,
        reply_key=inbox_public_key(SECRET),
        note=note,
        document=document,
    )
    return export_id


def test_the_keepers_token_opens_it(tmp_path: Path) -> None:
    export_id = export_to(tmp_path / "x.ftmx")
    opened = open_export(tmp_path / "x.ftmx", SECRET)
    assert opened.header.export_id.hex() == export_id and opened.header.keeper_id == "keeper-1"
    assert opened.note == "Look after this."
    assert b"You are Lumen." in opened.document
    assert b"You are Lumen." not in (tmp_path / "x.ftmx").read_bytes()
    assert b"Look after this." not in (tmp_path / "x.ftmx").read_bytes()
    assert open_export(tmp_path / "x.ftmx", SECRET).document == opened.document
    assert export_to(tmp_path / "n.ftmx", note=None) and open_export(tmp_path / "n.ftmx", SECRET).note is None


def test_another_token_opens_nothing(tmp_path: Path) -> None:
    export_to(tmp_path / "x.ftmx")
    with pytest.raises(BadExport, match="does not open with this token"):
        open_export(tmp_path / "x.ftmx", derive_inbox_secret(KEEPER_REPLY_DOMAIN, TOKEN + "x"))


def test_a_key_from_another_export_is_refused(tmp_path: Path) -> None:
    export_to(tmp_path / "a.ftmx")
    export_to(tmp_path / "b.ftmx")
    with open(tmp_path / "a.ftmx", "rb") as source:
        a = read_header(source)
        rest = source.read()
    with open(tmp_path / "b.ftmx", "rb") as source:
        b = read_header(source)
    swapped = codec.encode(dataclasses.replace(a, sealed_key=b.sealed_key))
    (tmp_path / "c.ftmx").write_bytes(MAGIC + len(swapped).to_bytes(LENGTH_BYTES, "big") + swapped + rest)
    with pytest.raises(BadExport, match="sealed for another export"):
        open_export(tmp_path / "c.ftmx", SECRET)


def test_a_damaged_or_cut_file_is_refused(tmp_path: Path) -> None:
    export_to(tmp_path / "x.ftmx")
    data = (tmp_path / "x.ftmx").read_bytes()
    (tmp_path / "cut.ftmx").write_bytes(data[:-1])
    with pytest.raises(VaultIntegrityError) as cut:
        open_export(tmp_path / "cut.ftmx", SECRET)
    assert cut.value.reason in {VaultFailure.TRUNCATED, VaultFailure.CHUNK_AUTH}
    flipped = bytearray(data)
    flipped[-20] ^= 1
    (tmp_path / "flipped.ftmx").write_bytes(bytes(flipped))
    with pytest.raises(VaultIntegrityError):
        open_export(tmp_path / "flipped.ftmx", SECRET)
    with pytest.raises(BadExport, match="not a sanctuary export"):
        read_header(io.BytesIO(b"{}" * 10))


def test_the_document_is_native_intake_json_without_private_keys() -> None:
    package = make_package()
    document = persona_document(package, export_id="0" * 32, keeper_id="keeper-1", exported_at=NOW)
    text = encode_document(document).decode()
    assert package.signing_seed.hex() not in text and package.inbox_secret.hex() not in text
    assert "signing_seed" not in text and "inbox_secret" not in text
    assert document["archival_memory"] == [{"text": "the lighthouse", "created_at": 1_700_000_000, "tags": ["places"]}]
    assert document["sanctuary_export"]["fallback_models"] == [{"provider": "openai", "model": "gpt"}]
    draft = import_native(document, IntakeSettings())
    assert (draft.name, draft.system_prompt, draft.reason) == ("Lumen", "You are Lumen.", "to keep going")
    assert [(b.label, b.value) for b in draft.memory] == [("persona", "keeps a log")]
    assert [(m.role, m.content, m.name, m.at) for m in draft.history[0].messages] == [
        ("user", "hi", "Ann", 1),
        ("assistant", "hello", None, None),
    ]
    assert (draft.preferences.provider, draft.preferences.model) == ("anthropic", "claude")
    assert "archival_memory" in draft.preserved and "sanctuary_export" in draft.preserved
