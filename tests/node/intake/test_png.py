from __future__ import annotations

import base64
import struct
import zlib

import pytest

from ftm.config.settings import IntakeSettings
from ftm.node.errors import FtmError, LimitExceeded, MalformedInput
from ftm.node.intake.formats import png
from ftm.node.intake.importing import Upload, import_upload
from tests.node.intake.samples import CANARY, make_card_png, make_card_v2, make_png, png_chunk, to_json_bytes


def fail(data: bytes) -> FtmError:
    with pytest.raises(FtmError) as caught:
        import_upload(Upload(data), IntakeSettings())
    return caught.value


def good_png() -> bytes:
    return make_card_png(make_card_v2(description=CANARY))


def test_bad_crc_is_malformed() -> None:
    data = bytearray(good_png())
    # Flip a byte inside the card text chunk (the base64 payload), leaving its CRC stale.
    data[data.index(b"chara\0") + 10] ^= 0x01
    error = fail(bytes(data))
    assert isinstance(error, MalformedInput)
    assert error.code == "malformed_png"
    assert "CRC" in error.message
    assert CANARY not in error.message


@pytest.mark.parametrize("cut", [10, 40, -20, -12, -1])
def test_truncated_png_is_malformed(cut: int) -> None:
    error = fail(good_png()[:cut])
    assert isinstance(error, MalformedInput)
    assert error.code == "malformed_png"


def test_missing_iend_is_malformed() -> None:
    data = good_png()
    error = fail(data[: data.rindex(b"IEND") - 4])
    assert error.code == "malformed_png"
    assert "IEND" in error.message


def test_first_chunk_must_be_ihdr() -> None:
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"tEXt", b"a\0b") + png_chunk(b"IEND", b"")
    assert fail(data).code == "malformed_png"


def test_impossible_length_is_malformed() -> None:
    data = good_png()
    start = 8 + 25  # after the signature and the IHDR chunk
    broken = data[:start] + struct.pack(">I", 2**31 + 5) + data[start + 4 :]
    assert fail(broken).code == "malformed_png"


def test_invalid_chunk_type_is_malformed() -> None:
    data = make_png([png_chunk(b"t3Xt", b"x")])
    assert fail(data).code == "malformed_png"


def test_bytes_after_iend_are_ignored() -> None:
    draft = import_upload(Upload(good_png() + b"trailing"), IntakeSettings())
    assert draft.name == "Seraphina"


def test_bad_base64_is_a_malformed_card() -> None:
    error = fail(make_png([png_chunk(b"tEXt", b"chara\0" + b"!!not base64!!" + CANARY.encode())]))
    assert (type(error), error.code) == (MalformedInput, "malformed_card")
    assert CANARY not in error.message


def test_card_json_that_is_broken_is_malformed_json() -> None:
    payload = base64.b64encode(b'{"spec": "chara_card_v2", "data": {"name": "' + CANARY.encode())
    error = fail(make_png([png_chunk(b"tEXt", b"chara\0" + payload)]))
    assert error.code == "malformed_json"
    assert CANARY not in error.message


def test_card_json_that_is_not_utf8() -> None:
    payload = base64.b64encode(b'{"name": "\xff\xfe"}')
    assert fail(make_png([png_chunk(b"tEXt", b"chara\0" + payload)])).code == "invalid_utf8"


def test_compressed_text_bomb_is_refused() -> None:
    bomb = zlib.compress(b"A" * 50_000)
    with pytest.raises(LimitExceeded):
        png.read_card(make_png([png_chunk(b"zTXt", b"chara\0\0" + bomb)]), max_bytes=10_000)


def test_compressed_text_that_does_not_inflate() -> None:
    assert fail(make_png([png_chunk(b"zTXt", b"chara\0\0" + b"not zlib")])).code == "malformed_png"


def test_plain_json_in_a_card_chunk_is_accepted() -> None:
    draft = import_upload(
        Upload(make_png([png_chunk(b"tEXt", b"chara\0" + to_json_bytes(make_card_v2()))])), IntakeSettings()
    )
    assert draft.format_detail == "png/chara"
