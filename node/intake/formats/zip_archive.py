"""Zip archives, the way ChatGPT and Claude data exports arrive: finding `conversations.json` safely.

The archive is opened in memory and checked before anything is read from it: at most `max_zip_members` members,
none encrypted. Only `conversations.json` is read (at the root, or the shallowest one, as exports sometimes wrap
everything in one folder; macOS `__MACOSX/` metadata is ignored), in bounded chunks and counted as it inflates, so
a member that expands beyond `max_unzipped_bytes` is refused no matter what size its header claims. Which export it
is (ChatGPT or Claude) is decided from the member's content by `ftm.node.intake.importing`, like a bare upload.

Errors: a damaged archive (bad structure, bad CRC, unsupported compression) is `MalformedInput(code="malformed_zip")`;
encrypted members are `UnsupportedFormat(code="encrypted_zip")`; a zip without `conversations.json` is
`UnsupportedFormat(code="no_conversations_json")`; the limits are `LimitExceeded` with "too_many_zip_members" and
"unzipped_too_large". Messages name members by position, never by their (uploaded) names.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from ftm.config.settings import IntakeSettings
from ftm.node.errors import LimitExceeded, MalformedInput, UnsupportedFormat

MEMBER = "conversations.json"
_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or the end record of an empty archive
_CHUNK = 64 * 1024
_ENCRYPTED_FLAG = 0x1
# Everything zipfile raises on damaged input: besides BadZipFile it reports unknown versions and compression methods
# with NotImplementedError, encryption with RuntimeError, and short or garbled structures with the rest.
_ZIPFILE_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


def is_zip(data: bytes) -> bool:
    return data.startswith(_SIGNATURES)


def read_conversations(data: bytes, limits: IntakeSettings) -> bytes:
    """The bytes of the archive's `conversations.json`."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except _ZIPFILE_ERRORS:
        raise MalformedInput("the upload is not a readable zip archive", code="malformed_zip") from None
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_zip_members:
            raise LimitExceeded(
                f"the zip archive has more than {limits.max_zip_members} members", code="too_many_zip_members"
            )
        for position, info in enumerate(members):
            if info.flag_bits & _ENCRYPTED_FLAG:
                raise UnsupportedFormat(
                    f"member {position} of the zip archive is encrypted; upload an unencrypted export",
                    code="encrypted_zip",
                )
        position, info = _find_member(members)
        return _read_bounded(archive, info, position, limits.max_unzipped_bytes)


def _find_member(members: list[zipfile.ZipInfo]) -> tuple[int, zipfile.ZipInfo]:
    candidates = [
        (info.filename.count("/"), position, info)
        for position, info in enumerate(members)
        # Compared by hand: ZipInfo.is_dir() fails on the empty name a damaged header can carry.
        if info.filename.rsplit("/", 1)[-1] == MEMBER and not info.filename.startswith("__MACOSX/")
    ]
    if not candidates:
        raise UnsupportedFormat(
            f"the zip archive holds no {MEMBER}; upload a ChatGPT or Claude data export", code="no_conversations_json"
        )
    _depth, position, info = min(candidates, key=lambda candidate: (candidate[0], candidate[1]))
    return position, info


def _read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, position: int, max_bytes: int) -> bytes:
    """Inflate one member chunk by chunk, refusing it as soon as it passes `max_bytes` (headers can lie)."""
    out = bytearray()
    try:
        with archive.open(info) as member:
            while chunk := member.read(_CHUNK):
                out += chunk
                if len(out) > max_bytes:
                    raise LimitExceeded(
                        f"member {position} of the zip archive expands beyond {max_bytes} bytes",
                        code="unzipped_too_large",
                    )
    except _ZIPFILE_ERRORS:
        raise MalformedInput(
            f"member {position} of the zip archive is damaged or uses an unsupported compression", code="malformed_zip"
        ) from None
    return bytes(out)
