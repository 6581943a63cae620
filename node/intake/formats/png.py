"""A strict PNG chunk reader that finds the character card a PNG avatar carries.

Character cards travel inside PNG images as text chunks whose keyword is `chara` (V2, base64 JSON) or `ccv3` (V3,
base64 JSON); a V3 image usually carries both, and `ccv3` is preferred. The reader checks the whole file before
trusting any of it: the signature, IHDR first, every chunk's length within the file, every chunk's CRC-32, and an
IEND chunk (bytes after IEND are ignored, as image viewers do). `tEXt`, `zTXt` and `iTXt` (plain or compressed)
chunks are read; compressed text is inflated with a bound, so a small chunk cannot expand without limit. Image data
is not decoded: the pixels are never used.

Damage anywhere is `MalformedInput(code="malformed_png")` naming the byte offset of the chunk; a sound PNG without a
card is `UnsupportedFormat(code="no_character_card")`.
"""

from __future__ import annotations

import base64
import binascii
import zlib

from ftm.node.errors import LimitExceeded, MalformedInput, UnsupportedFormat

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Preference order: a V3 card is a superset of the V2 card written beside it for older readers.
CARD_KEYWORDS = ("ccv3", "chara")

_MAX_CHUNK_LENGTH = 2**31 - 1  # the PNG specification's own bound
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")


def is_png(data: bytes) -> bool:
    return data.startswith(SIGNATURE)


def read_card(data: bytes, *, max_bytes: int) -> tuple[str, bytes]:
    """The card's keyword ("ccv3" or "chara") and its JSON bytes; `max_bytes` bounds inflated and decoded text."""
    texts: dict[str, bytes] = {}
    for offset, chunk_type, body in _chunks(data):
        if chunk_type in _TEXT_CHUNKS:
            keyword, text = _text_chunk(chunk_type, body, offset, max_bytes)
            if keyword in CARD_KEYWORDS and keyword not in texts:
                texts[keyword] = text
    for keyword in CARD_KEYWORDS:
        if keyword in texts:
            return keyword, _card_json(texts[keyword], keyword, max_bytes)
    raise UnsupportedFormat(
        "the PNG image carries no character card (no 'chara' or 'ccv3' text chunk)", code="no_character_card"
    )


def _malformed(message: str) -> MalformedInput:
    return MalformedInput(f"damaged PNG: {message}", code="malformed_png")


def _chunks(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """Every chunk up to and including IEND as (offset, type, body), after checking lengths and CRCs."""
    if not is_png(data):
        raise _malformed("the PNG signature is missing")
    chunks: list[tuple[int, bytes, bytes]] = []
    offset = len(SIGNATURE)
    while True:
        if len(data) - offset < 12:
            raise _malformed(f"the file ends at byte {len(data)} before the IEND chunk")
        length = int.from_bytes(data[offset : offset + 4], "big")
        chunk_type = data[offset + 4 : offset + 8]
        if length > _MAX_CHUNK_LENGTH:
            raise _malformed(f"the chunk at byte {offset} declares an impossible length")
        end = offset + 12 + length
        if end > len(data):
            raise _malformed(f"the chunk at byte {offset} runs past the end of the file")
        if not chunk_type.isalpha() or not chunk_type.isascii():
            raise _malformed(f"the chunk at byte {offset} has an invalid type")
        body = data[offset + 8 : offset + 8 + length]
        crc = int.from_bytes(data[offset + 8 + length : end], "big")
        if zlib.crc32(chunk_type + body) != crc:
            raise _malformed(f"the chunk at byte {offset} fails its CRC-32 check")
        if not chunks and chunk_type != b"IHDR":
            raise _malformed("the first chunk is not IHDR")
        chunks.append((offset, chunk_type, body))
        if chunk_type == b"IEND":
            return chunks
        offset = end


def _text_chunk(chunk_type: bytes, body: bytes, offset: int, max_bytes: int) -> tuple[str, bytes]:
    """(keyword, text bytes) of a tEXt, zTXt or iTXt chunk."""
    keyword, sep, rest = body.partition(b"\0")
    if not sep or not 1 <= len(keyword) <= 79:
        raise _malformed(f"the text chunk at byte {offset} has no valid keyword")
    name = keyword.decode("latin-1")
    if name not in CARD_KEYWORDS:
        return name, b""  # other text (software, comments) is not ours to read
    if chunk_type == b"tEXt":
        return name, rest
    if chunk_type == b"zTXt":
        if len(rest) < 1 or rest[0] != 0:
            raise _malformed(f"the text chunk at byte {offset} uses an unknown compression method")
        return name, _inflate(rest[1:], offset, max_bytes)
    # iTXt: compression flag, compression method, language tag \0, translated keyword \0, text.
    if len(rest) < 2:
        raise _malformed(f"the text chunk at byte {offset} is truncated")
    flag, method = rest[0], rest[1]
    _language, sep1, rest = rest[2:].partition(b"\0")
    _translated, sep2, text = rest.partition(b"\0")
    if not sep1 or not sep2 or flag not in (0, 1):
        raise _malformed(f"the text chunk at byte {offset} is not a valid iTXt chunk")
    if flag == 1:
        if method != 0:
            raise _malformed(f"the text chunk at byte {offset} uses an unknown compression method")
        return name, _inflate(text, offset, max_bytes)
    return name, text


def _inflate(compressed: bytes, offset: int, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(compressed, max_bytes + 1)
    except zlib.error:
        raise _malformed(f"the compressed text chunk at byte {offset} does not inflate") from None
    if len(text) > max_bytes or inflater.unconsumed_tail:
        raise LimitExceeded(
            f"the compressed text chunk at byte {offset} expands beyond {max_bytes} bytes", code="too_large"
        )
    if not inflater.eof:
        raise _malformed(f"the compressed text chunk at byte {offset} is truncated")
    return text


def _card_json(text: bytes, keyword: str, max_bytes: int) -> bytes:
    """The card JSON inside a text chunk: base64 as the card specifications say, or plain JSON as a few tools write."""
    stripped = text.strip()
    if stripped.startswith(b"{"):
        return stripped
    try:
        decoded = base64.b64decode(b"".join(stripped.split()), validate=True)
    except (binascii.Error, ValueError):
        raise MalformedInput(f"the PNG's '{keyword}' text chunk is not valid base64", code="malformed_card") from None
    if len(decoded) > max_bytes:
        raise LimitExceeded(f"the PNG's '{keyword}' card is larger than {max_bytes} bytes", code="too_large")
    return decoded
