"""The vault: round trips, every way a sealed file can be damaged or misused, and the async API.

Files are real files under `tmp_path`. Byte-level tests use the sync core with a tiny private chunk size, so every
byte position of a multi-chunk file can be flipped; full-size files sample positions instead. `reference_seal` is
an independent encoder written from `docs/vault.md`, so the document and the code are checked against each other.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import logging
import os
import re
import stat
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from ftm.node.errors import IntegrityError, LimitExceeded
from ftm.node.vault import (
    CHUNK_SIZE,
    VaultFailure,
    VaultIntegrityError,
    VaultReader,
    VaultWriter,
    new_epoch_key,
    open_bytes,
    seal_bytes,
    seal_file,
)
from ftm.node.vaultformat import MAX_CHUNKS, TAG_SIZE

DOCS = Path(__file__).resolve().parents[2] / "docs" / "vault.md"
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SMALL = 64  # private chunk size for byte-level tests
CANARY = b"CANARY-persona-secret-7f3a"


def header_size(resident_id: str = "alice") -> int:
    return 4 + 1 + 1 + len(resident_id) + 8 + 32 + 7 + 32


def counter_bytes(seed: bytes) -> Callable[[int], bytes]:
    """A deterministic `randbytes` for reproducible files: a SHA-256 counter stream."""
    state = {"n": 0}

    def randbytes(size: int) -> bytes:
        out = b""
        while len(out) < size:
            out += hashlib.sha256(seed + state["n"].to_bytes(4, "big")).digest()
            state["n"] += 1
        return out[:size]

    return randbytes


def seal_small(
    plaintext: bytes, *, resident_id: str = "alice", epoch: int = 3, key: bytes = KEY, chunk: int = SMALL
) -> bytes:
    sink = io.BytesIO()
    with VaultWriter(sink, resident_id, epoch, key, _chunk_size=chunk) as writer:
        writer.write(plaintext)
    return sink.getvalue()


def open_small(
    data: bytes, *, resident_id: str = "alice", epoch: int = 3, key: bytes = KEY, chunk: int = SMALL
) -> bytes:
    return b"".join(VaultReader(io.BytesIO(data), resident_id, epoch, key, _chunk_size=chunk))


def failure(data: bytes, **kwargs: object) -> VaultIntegrityError:
    with pytest.raises(VaultIntegrityError) as caught:
        open_small(data, **kwargs)  # type: ignore[arg-type]
    assert CANARY not in str(caught.value).encode()
    return caught.value


def chunk_spans(total: int, plaintext_size: int, chunk: int, resident_id: str = "alice") -> Iterator[tuple[int, int]]:
    """(start, end) of each encrypted chunk in a file."""
    start = header_size(resident_id)
    remaining = plaintext_size
    while True:
        size = min(remaining, chunk)
        remaining -= size
        yield start, start + size + TAG_SIZE
        start += size + TAG_SIZE
        if start >= total:
            return


def reference_seal(
    plaintext: bytes, resident_id: str, epoch: int, key: bytes, salt: bytes, prefix: bytes, chunk: int = CHUNK_SIZE
) -> bytes:
    """An encoder written from docs/vault.md alone, to check the code against the document."""

    def hkdf(info: bytes) -> bytes:
        return HKDF(SHA256(), 32, salt, info).derive(key)

    rid = resident_id.encode("ascii")
    header = b"FTMV" + bytes([1, len(rid)]) + rid + struct.pack(">Q", epoch) + salt + prefix
    header += hkdf(b"ftm-vault-v1 commit")
    aead = AESGCM(hkdf(b"ftm-vault-v1 aead"))
    aad_prefix = b"ftm-vault-v1 chunk" + bytes([1, len(rid)]) + rid + struct.pack(">Q", epoch)
    aad_prefix += hashlib.sha256(header).digest()
    pieces = [plaintext[i : i + chunk] for i in range(0, len(plaintext), chunk)] or [b""]
    out = [header]
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        nonce = prefix + struct.pack(">IB", index, last)
        out.append(aead.encrypt(nonce, piece, aad_prefix + struct.pack(">Q", index)))
    return b"".join(out)


# Round trips


SIZES = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 5]


@pytest.mark.parametrize("size", SIZES)
async def test_bytes_round_trip(tmp_path: Path, size: int) -> None:
    plaintext = os.urandom(size)
    path = tmp_path / "v.ftmv"
    written = await seal_bytes(path, "alice", 7, KEY, plaintext)
    chunks = max(1, -(-size // CHUNK_SIZE))
    assert written == path.stat().st_size == header_size() + size + TAG_SIZE * chunks
    assert await open_bytes(path, "alice", 7, KEY, max_bytes=size) == plaintext


@pytest.mark.parametrize("size", SIZES)
async def test_file_round_trip(tmp_path: Path, size: int) -> None:
    plaintext = os.urandom(size)
    (tmp_path / "plain").write_bytes(plaintext)
    sealed = tmp_path / "sealed"
    await seal_file(tmp_path / "plain", sealed, "alice", 7, KEY)
    # A package too large to hold whole is streamed by iterating a reader over the open file.
    with sealed.open("rb", buffering=0) as source:
        chunks = list(VaultReader(source, "alice", 7, KEY))
    assert b"".join(chunks) == plaintext
    assert all(len(chunk) <= CHUNK_SIZE for chunk in chunks)
    # Both APIs write the same format.
    assert await open_bytes(sealed, "alice", 7, KEY, max_bytes=size) == plaintext


def test_matches_reference_encoder_at_full_chunk_size() -> None:
    plaintext = os.urandom(2 * CHUNK_SIZE + 3)
    sink = io.BytesIO()
    with VaultWriter(sink, "alice", 9, KEY, randbytes=counter_bytes(b"ref")) as writer:
        writer.write(plaintext)
    rand = counter_bytes(b"ref")
    salt, prefix = rand(32), rand(7)
    assert sink.getvalue() == reference_seal(plaintext, "alice", 9, KEY, salt, prefix)


@settings(max_examples=60, deadline=None)
@given(
    plaintext=st.binary(max_size=5 * SMALL),
    cuts=st.lists(st.integers(min_value=0, max_value=5 * SMALL), max_size=8),
)
def test_any_write_pattern_gives_the_canonical_file(plaintext: bytes, cuts: list[int]) -> None:
    bounds = sorted({0, len(plaintext), *(c for c in cuts if c <= len(plaintext))})
    sink = io.BytesIO()
    with VaultWriter(sink, "alice", 3, KEY, randbytes=counter_bytes(b"w"), _chunk_size=SMALL) as writer:
        for start, end in itertools.pairwise(bounds):
            writer.write(plaintext[start:end])
    rand = counter_bytes(b"w")
    salt, prefix = rand(32), rand(7)
    assert sink.getvalue() == reference_seal(plaintext, "alice", 3, KEY, salt, prefix, chunk=SMALL)
    assert open_small(sink.getvalue()) == plaintext


def test_copy_from_a_stream_matches_write() -> None:
    plaintext = os.urandom(4 * SMALL)  # a multiple of the chunk size: the last chunk is full, not empty
    sink = io.BytesIO()
    with VaultWriter(sink, "alice", 3, KEY, randbytes=counter_bytes(b"c"), _chunk_size=SMALL) as writer:
        writer.write(plaintext[:10])
        writer.copy_from(io.BytesIO(plaintext[10:]))
    rand = counter_bytes(b"c")
    salt, prefix = rand(32), rand(7)
    assert sink.getvalue() == reference_seal(plaintext, "alice", 3, KEY, salt, prefix, chunk=SMALL)


def test_reader_views_and_iteration_agree() -> None:
    plaintext = os.urandom(3 * SMALL + 1)
    data = seal_small(plaintext)
    views = VaultReader(io.BytesIO(data), "alice", 3, KEY, _chunk_size=SMALL).views()
    assert b"".join(bytes(v) for v in views) == plaintext
    assert [len(c) for c in VaultReader(io.BytesIO(data), "alice", 3, KEY, _chunk_size=SMALL)] == [64, 64, 64, 1]


def test_each_seal_uses_fresh_salt_and_nonce_prefix() -> None:
    first, second = seal_small(b"same"), seal_small(b"same")
    assert first[-50:] != second[-50:]
    assert first[: header_size() - 71] == second[: header_size() - 71]  # magic, version, id, epoch only


def test_documented_test_vector_matches() -> None:
    sink = io.BytesIO()
    fixed = iter([bytes(range(0x40, 0x60)), bytes(range(0x60, 0x67))])  # salt, then nonce prefix
    with VaultWriter(sink, "example-resident", 1, bytes(range(32)), randbytes=lambda n: next(fixed)) as writer:
        writer.write(b"hello, sanctuary")
    doc = re.sub(r"\s+", "", DOCS.read_text(encoding="utf-8"))
    assert sink.getvalue().hex() in doc


# Tampering, truncation, misuse


def test_every_flipped_byte_of_a_multi_chunk_file_is_refused() -> None:
    plaintext = CANARY * 8  # 208 bytes: three full chunks and a short last one
    data = seal_small(plaintext)
    assert open_small(data) == plaintext
    for position in range(len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0x01
        failure(bytes(damaged))


async def test_sampled_flipped_bytes_of_a_full_size_file_are_refused(tmp_path: Path) -> None:
    size = 3 * CHUNK_SIZE + 5
    path = tmp_path / "v.ftmv"
    await seal_bytes(path, "alice", 3, KEY, os.urandom(size))
    data = path.read_bytes()
    positions = set(range(header_size()))
    for start, end in chunk_spans(len(data), size, CHUNK_SIZE):
        positions |= {start, end - TAG_SIZE - 1, end - TAG_SIZE, end - 1}  # first/last byte, first/last of tag
    for position in sorted(positions):
        damaged = bytearray(data)
        damaged[position] ^= 0x80
        path.write_bytes(damaged)
        with pytest.raises(VaultIntegrityError):
            await open_bytes(path, "alice", 3, KEY, max_bytes=size)


def test_swapped_chunks_are_refused() -> None:
    data = seal_small(os.urandom(3 * SMALL + 5))
    spans = list(chunk_spans(len(data), 3 * SMALL + 5, SMALL))
    (a0, a1), (b0, b1) = spans[0], spans[1]
    swapped = data[:a0] + data[b0:b1] + data[a0:a1] + data[b1:]
    error = failure(swapped)
    assert (error.reason, error.chunk) == (VaultFailure.CHUNK_AUTH, 0)
    assert "chunk 0" in str(error)


def test_chunk_from_another_file_of_the_same_key_is_refused() -> None:
    one, two = seal_small(os.urandom(2 * SMALL + 1)), seal_small(os.urandom(2 * SMALL + 1))
    start, end = next(chunk_spans(len(one), 2 * SMALL + 1, SMALL))
    error = failure(one[:start] + two[start:end] + one[end:])
    assert (error.reason, error.chunk) == (VaultFailure.CHUNK_AUTH, 0)


def test_truncated_at_a_chunk_boundary() -> None:
    data = seal_small(os.urandom(3 * SMALL + 5))
    spans = list(chunk_spans(len(data), 3 * SMALL + 5, SMALL))
    error = failure(data[: spans[1][1]])
    assert (error.reason, error.chunk) == (VaultFailure.TRUNCATED, 1)


def test_truncated_mid_chunk() -> None:
    data = seal_small(os.urandom(3 * SMALL + 5))
    spans = list(chunk_spans(len(data), 3 * SMALL + 5, SMALL))
    error = failure(data[: spans[1][0] + 30])
    assert (error.reason, error.chunk) == (VaultFailure.CHUNK_AUTH, 1)


def test_truncated_inside_the_last_tag() -> None:
    data = seal_small(os.urandom(SMALL + 5))
    error = failure(data[: header_size() + SMALL + TAG_SIZE + 10])
    assert (error.reason, error.chunk) == (VaultFailure.TRUNCATED, 1)


@pytest.mark.parametrize("cut", [0, 3, 5, 20, header_size()])
def test_truncated_in_or_right_after_the_header(cut: int) -> None:
    data = seal_small(b"x")
    assert failure(data[:cut]).reason is VaultFailure.TRUNCATED


def test_appended_bytes_after_a_full_last_chunk() -> None:
    data = seal_small(os.urandom(2 * SMALL))
    error = failure(data + b"\x00")
    assert (error.reason, error.chunk) == (VaultFailure.TRAILING_DATA, 1)
    assert failure(data + data[-(SMALL + TAG_SIZE) :]).reason is VaultFailure.TRAILING_DATA


def test_appended_bytes_after_a_short_last_chunk() -> None:
    # The last chunk's end is known only from the end of the file, so this shows as a failed last chunk.
    data = seal_small(os.urandom(2 * SMALL + 5))
    error = failure(data + b"\x00" * 3)
    assert (error.reason, error.chunk) == (VaultFailure.CHUNK_AUTH, 2)


async def test_appended_bytes_through_the_async_api(tmp_path: Path) -> None:
    path = tmp_path / "v.ftmv"
    await seal_bytes(path, "alice", 3, KEY, os.urandom(CHUNK_SIZE))
    with path.open("ab") as f:
        f.write(b"more")
    with pytest.raises(VaultIntegrityError) as caught:
        await open_bytes(path, "alice", 3, KEY, max_bytes=2 * CHUNK_SIZE)
    assert caught.value.reason is VaultFailure.TRAILING_DATA


def test_wrong_resident() -> None:
    error = failure(seal_small(CANARY), resident_id="bob")
    assert error.reason is VaultFailure.WRONG_RESIDENT
    assert "another resident" in str(error) or "does not belong" in str(error)


def test_wrong_epoch() -> None:
    error = failure(seal_small(CANARY, epoch=3), epoch=4)
    assert error.reason is VaultFailure.WRONG_EPOCH


def test_wrong_key() -> None:
    error = failure(seal_small(CANARY), key=OTHER_KEY)
    assert error.reason is VaultFailure.WRONG_KEY
    assert "wrong key" in str(error)


def test_editing_the_resident_id_in_the_header_does_not_reassign_the_file() -> None:
    data = seal_small(CANARY * 3, resident_id="alice")
    edited = data.replace(b"alice", b"bobby", 1)  # same length, so everything else stays in place
    # With bob's own key the commitment does not match; with alice's key the chunks no longer authenticate.
    assert failure(edited, resident_id="bobby", key=OTHER_KEY).reason is VaultFailure.WRONG_KEY
    assert failure(edited, resident_id="bobby", key=KEY).reason is VaultFailure.CHUNK_AUTH
    # A longer id, with the length byte rewritten too.
    longer = data[:5] + bytes([len("mallory")]) + b"mallory" + data[6 + len("alice") :]
    assert failure(longer, resident_id="mallory", key=KEY).reason is VaultFailure.CHUNK_AUTH


def test_editing_the_epoch_in_the_header_fails() -> None:
    data = bytearray(seal_small(b"x", epoch=3))
    offset = 6 + len("alice")
    data[offset : offset + 8] = (4).to_bytes(8, "big")
    assert failure(bytes(data), epoch=4).reason is VaultFailure.CHUNK_AUTH


def test_bad_magic_and_unsupported_version() -> None:
    data = seal_small(b"x")
    assert failure(b"PK\x03\x04" + data[4:]).reason is VaultFailure.BAD_MAGIC
    assert failure(data[:4] + b"\x02" + data[5:]).reason is VaultFailure.UNSUPPORTED_VERSION


def test_malformed_resident_id_in_header() -> None:
    data = seal_small(b"x")
    assert failure(data.replace(b"alice", b"al/ce", 1)).reason is VaultFailure.MALFORMED_HEADER


def test_empty_last_chunk_after_data_is_refused() -> None:
    rand = counter_bytes(b"nc")
    salt, prefix = rand(32), rand(7)
    good = reference_seal(b"A" * SMALL, "alice", 3, KEY, salt, prefix, chunk=SMALL)
    # Re-encode by hand as a full non-last chunk followed by an empty last chunk.
    header = good[: header_size()]
    aead = AESGCM(HKDF(SHA256(), 32, salt, b"ftm-vault-v1 aead").derive(KEY))
    aad = b"ftm-vault-v1 chunk" + bytes([1, 5]) + b"alice" + (3).to_bytes(8, "big") + hashlib.sha256(header).digest()
    body = aead.encrypt(prefix + struct.pack(">IB", 0, 0), b"A" * SMALL, aad + (0).to_bytes(8, "big"))
    body += aead.encrypt(prefix + struct.pack(">IB", 1, 1), b"", aad + (1).to_bytes(8, "big"))
    error = failure(header + body)
    assert (error.reason, error.chunk) == (VaultFailure.NON_CANONICAL, 1)


def test_an_interrupted_writer_never_writes_a_last_chunk() -> None:
    sink = io.BytesIO()

    def interrupted() -> None:
        with VaultWriter(sink, "alice", 3, KEY, _chunk_size=SMALL) as writer:
            writer.write(os.urandom(3 * SMALL))
            raise RuntimeError("the source failed")

    with pytest.raises(RuntimeError):
        interrupted()
    assert failure(sink.getvalue()).reason is VaultFailure.TRUNCATED


def test_writer_refuses_to_exceed_the_chunk_counter() -> None:
    writer = VaultWriter(io.BytesIO(), "alice", 3, KEY, _chunk_size=SMALL)
    writer._index = MAX_CHUNKS - 1  # reaching it for real takes 4 PiB
    with pytest.raises(LimitExceeded):
        writer.write(os.urandom(2 * SMALL))


def test_writer_refuses_writes_after_close() -> None:
    writer = VaultWriter(io.BytesIO(), "alice", 3, KEY)
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"x")


@pytest.mark.parametrize("resident_id", ["", ".hidden", "../etc", "a/b", "a" * 65, "é"])
def test_malformed_resident_ids_are_caller_errors(resident_id: str) -> None:
    with pytest.raises(ValueError, match="resident id"):
        VaultWriter(io.BytesIO(), resident_id, 1, KEY)
    with pytest.raises(ValueError, match="resident id"):
        VaultReader(io.BytesIO(seal_small(b"x")), resident_id, 3, KEY)


def test_bad_key_and_epoch_are_caller_errors() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        VaultWriter(io.BytesIO(), "alice", 1, b"short")
    with pytest.raises(ValueError, match="epoch"):
        VaultWriter(io.BytesIO(), "alice", -1, KEY)
    with pytest.raises(ValueError, match="epoch"):
        VaultWriter(io.BytesIO(), "alice", 1 << 64, KEY)


def test_integrity_errors_are_integrity_errors_and_log_no_content(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    data = seal_small(CANARY * 4)
    for damaged in (data[:-1], data + b"x", data[:10]):
        error = failure(damaged)
        assert isinstance(error, IntegrityError)
        assert error.code == "integrity_failure"
    failure(data, key=OTHER_KEY)
    assert CANARY not in caplog.text.encode()
    assert "vault integrity failure" in caplog.text


async def test_max_bytes(tmp_path: Path) -> None:
    path = tmp_path / "v.ftmv"
    await seal_bytes(path, "alice", 3, KEY, b"x" * 100)
    assert await open_bytes(path, "alice", 3, KEY, max_bytes=100) == b"x" * 100
    with pytest.raises(LimitExceeded):
        await open_bytes(path, "alice", 3, KEY, max_bytes=99)


def test_new_epoch_key() -> None:
    keys = {new_epoch_key() for _ in range(10)}
    assert len(keys) == 10
    assert all(len(k) == 32 for k in keys)


# Async behaviour and crash safety


async def test_sealing_runs_off_the_event_loop(tmp_path: Path) -> None:
    plaintext = os.urandom(64 << 20)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await seal_bytes(tmp_path / "big", "alice", 3, KEY, plaintext)
    during = ticks
    done.set()
    await task
    # On the loop, the seal would run to the end before the ticker got a second turn.
    assert during > 2
    opened = 0
    done.clear()
    task = asyncio.create_task(ticker())
    ticks = 0
    assert await open_bytes(tmp_path / "big", "alice", 3, KEY, max_bytes=64 << 20) == plaintext
    opened = ticks
    done.set()
    await task
    assert opened > 2


def test_temp_files_are_hidden_and_leftovers_none(tmp_path: Path) -> None:
    async def run() -> None:
        await seal_bytes(tmp_path / "v.ftmv", "alice", 3, KEY, b"x")

    asyncio.run(run())
    assert [p.name for p in tmp_path.iterdir()] == ["v.ftmv"]
    assert stat.S_IMODE((tmp_path / "v.ftmv").stat().st_mode) == 0o600


def test_streaming_a_file_damaged_in_its_last_chunk_fails_only_at_the_end(tmp_path: Path) -> None:
    plaintext = (CANARY * (3 * CHUNK_SIZE // len(CANARY)))[: 2 * CHUNK_SIZE + 100]
    sealed = tmp_path / "sealed"
    with sealed.open("wb") as sink, VaultWriter(sink, "alice", 3, KEY) as writer:
        writer.write(plaintext)
    damaged = bytearray(sealed.read_bytes())
    damaged[-1] ^= 1
    sealed.write_bytes(damaged)
    received: list[bytes] = []
    with sealed.open("rb", buffering=0) as source, pytest.raises(VaultIntegrityError) as caught:
        received.extend(VaultReader(source, "alice", 3, KEY))
    assert (caught.value.reason, caught.value.chunk) == (VaultFailure.CHUNK_AUTH, 2)
    assert CANARY not in str(caught.value).encode()
    # Two authentic chunks arrived before the failure: why a streaming consumer must not act before the end.
    assert b"".join(received) == plaintext[: 2 * CHUNK_SIZE]


async def test_failed_seal_leaves_no_temp_file_and_keeps_the_old_file(tmp_path: Path) -> None:
    vault = tmp_path / "v.ftmv"
    await seal_bytes(vault, "alice", 3, KEY, b"old")
    before = vault.read_bytes()
    unreadable = tmp_path / "a-directory"
    unreadable.mkdir()
    with pytest.raises(IsADirectoryError):
        await seal_file(unreadable, vault, "alice", 3, KEY)
    assert sorted(os.listdir(tmp_path)) == ["a-directory", "v.ftmv"]
    assert vault.read_bytes() == before
    assert await open_bytes(vault, "alice", 3, KEY, max_bytes=10) == b"old"


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
async def test_seal_failing_mid_read_leaves_no_temp_file(tmp_path: Path) -> None:
    # /proc/self/mem opens fine and fails on the first read at offset 0: a real source that breaks mid-stream.
    vault = tmp_path / "v.ftmv"
    await seal_bytes(vault, "alice", 3, KEY, b"old")
    with pytest.raises(OSError):  # noqa: PT011 - the kernel picks the errno
        await seal_file(Path("/proc/self/mem"), vault, "alice", 3, KEY)
    assert os.listdir(tmp_path) == ["v.ftmv"]
    assert await open_bytes(vault, "alice", 3, KEY, max_bytes=10) == b"old"
