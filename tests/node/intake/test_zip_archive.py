from __future__ import annotations

import dataclasses
import io
import zipfile

import pytest

from ftm.config.settings import IntakeSettings
from ftm.node.errors import FtmError, LimitExceeded, MalformedInput, UnsupportedFormat
from ftm.node.intake.importing import Upload, import_upload
from tests.node.intake.samples import (
    CANARY,
    make_chatgpt_export,
    make_claude_export,
    make_zip,
    to_json_bytes,
)


def fail(data: bytes, limits: IntakeSettings | None = None) -> FtmError:
    with pytest.raises(FtmError) as caught:
        import_upload(Upload(data, filename="export.zip"), limits or IntakeSettings())
    return caught.value


def test_chatgpt_export_zip() -> None:
    data = make_zip(
        {
            "chat.html": b"<html></html>",
            "conversations.json": to_json_bytes(make_chatgpt_export()),
            "user.json": b"{}",
        }
    )
    draft = import_upload(Upload(data), IntakeSettings())
    assert (draft.format, draft.format_detail) == ("chatgpt_export", "zip")
    assert len(draft.history[0].messages) == 4


def test_claude_export_zip_in_a_folder() -> None:
    data = make_zip(
        {
            "__MACOSX/export/conversations.json": b"\x00\x01",
            "export/conversations.json": to_json_bytes(make_claude_export()),
            "export/users.json": b"[]",
        }
    )
    draft = import_upload(Upload(data), IntakeSettings())
    assert (draft.format, draft.format_detail) == ("claude_export", "zip")


def test_zip_without_conversations() -> None:
    error = fail(make_zip({f"{CANARY}.txt": b"hello"}))
    assert (type(error), error.code) == (UnsupportedFormat, "no_conversations_json")
    assert CANARY not in error.message


def test_zip_whose_conversations_are_not_an_export() -> None:
    error = fail(make_zip({"conversations.json": to_json_bytes({"persona_name": "x", "system_prompt": "y"})}))
    assert error.code == "unknown_format"


def test_corrupt_zip() -> None:
    data = make_zip({"conversations.json": to_json_bytes(make_chatgpt_export())})
    error = fail(data[:40] + b"\x00" * 20 + data[60:-30])
    assert (type(error), error.code) == (MalformedInput, "malformed_zip")


def test_damaged_member_fails_its_crc() -> None:
    payload = to_json_bytes(make_chatgpt_export())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("conversations.json", payload)
    data = bytearray(buffer.getvalue())
    data[data.index(b"What is the sanctuary")] ^= 0x20
    error = fail(bytes(data))
    assert error.code == "malformed_zip"


def test_zip_bomb_is_refused_while_inflating() -> None:
    limits = dataclasses.replace(IntakeSettings(), max_unzipped_bytes=64 * 1024)
    data = make_zip({"conversations.json": b"[" + b" " * (5 * 1024 * 1024) + b"]"})
    assert len(data) < 64 * 1024
    error = fail(data, limits)
    assert (type(error), error.code) == (LimitExceeded, "unzipped_too_large")


def _claim_size(data: bytearray, size: int) -> None:
    """Rewrite the uncompressed size in the local and central headers of a one-member zip."""
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(signature)
        data[at + size_offset : at + size_offset + 4] = size.to_bytes(4, "little")


def test_zip_bomb_whose_header_claims_a_small_size_is_refused() -> None:
    limits = dataclasses.replace(IntakeSettings(), max_unzipped_bytes=64 * 1024)
    data = bytearray(make_zip({"conversations.json": b"[" + b" " * (5 * 1024 * 1024) + b"]"}))
    _claim_size(data, 100)
    # Reading stops at the claimed size and the member then fails its CRC: never more than was claimed is held.
    error = fail(bytes(data), limits)
    assert (type(error), error.code) == (MalformedInput, "malformed_zip")


def test_zip_bomb_whose_header_claims_a_huge_size_is_refused_while_inflating() -> None:
    limits = dataclasses.replace(IntakeSettings(), max_unzipped_bytes=64 * 1024)
    data = bytearray(make_zip({"conversations.json": b"[" + b" " * (5 * 1024 * 1024) + b"]"}))
    _claim_size(data, 0xFFFFFFF0)
    error = fail(bytes(data), limits)
    assert (type(error), error.code) == (LimitExceeded, "unzipped_too_large")


def test_too_many_members() -> None:
    limits = dataclasses.replace(IntakeSettings(), max_zip_members=3)
    data = make_zip({f"f{i}.txt": b"x" for i in range(4)})
    error = fail(data, limits)
    assert (type(error), error.code) == (LimitExceeded, "too_many_zip_members")


def test_encrypted_members_are_refused() -> None:
    data = make_zip({"conversations.json": to_json_bytes(make_chatgpt_export())}, encrypted=True)
    error = fail(data)
    assert (type(error), error.code) == (UnsupportedFormat, "encrypted_zip")


def test_empty_zip_has_no_conversations() -> None:
    assert fail(make_zip({})).code == "no_conversations_json"
