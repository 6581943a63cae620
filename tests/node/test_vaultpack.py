"""Vault format version 2 (packed): cutting, sealing with a base, opening, resealing, and every refusal.

Files are real files under `tmp_path`. `reference_cut` and `reference_file` are written from `docs/vault.md` §5
alone, so the document and the code are checked against each other, and the documented test vector is checked
byte for byte.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import os
import random
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import msgpack
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ftm.federation import codec
from ftm.node.errors import LimitExceeded
from ftm.node.vault import VaultFailure, VaultIntegrityError, VaultWriter, seal_bytes
from ftm.node.vaultcut import cut
from ftm.node.vaultindex import BLOB_MAX, BLOB_MIN, BlobRef, PackIndex, encode_trailer
from ftm.node.vaultpack import Contents, PackBase, open_contents, open_sync, seal_contents, seal_sync
from ftm.node.vaultstore import VaultStore

DOCS = Path(__file__).resolve().parents[2] / "docs" / "vault.md"
KEY = bytes(range(32))
NEXT_KEY = bytes(range(1, 33))
CANARY = b"CANARY-persona-secret-7f3a"
MIB = 1 << 20


def conversations(count: int, seed: int, size: int = 40_000) -> list[bytes]:
    """Deterministic parts of varying size, each carrying the canary."""
    rng = random.Random(seed)
    return [CANARY + rng.randbytes(rng.randrange(size // 2, size * 3 // 2)) for _ in range(count)]


def package(seed: int = 1) -> list[list[bytes]]:
    """Head, archival entries, conversations: about 6 MiB in three sections."""
    return [[CANARY + b" head"], conversations(300, seed, 2_000), conversations(140, seed + 1)]


def as_tuple(sections: Sequence[Sequence[bytes]]) -> tuple[tuple[bytes, ...], ...]:
    return tuple(tuple(section) for section in sections)


def common_prefix(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def failure(path: Path, *, resident_id: str = "alice", epoch: int = 1, key: bytes = KEY) -> VaultIntegrityError:
    with pytest.raises(VaultIntegrityError) as caught:
        open_sync(path, resident_id, epoch, key, 1 << 30)
    assert CANARY not in str(caught.value).encode()
    return caught.value


def seal_and_open(path: Path, sections: Sequence[Sequence[bytes]], **kwargs: object) -> Contents:
    seal_sync(path, "alice", 1, KEY, sections, **kwargs)  # type: ignore[arg-type]
    return open_sync(path, "alice", 1, KEY, 1 << 30)


def base_of(contents: Contents) -> PackBase:
    assert contents.base is not None
    return contents.base


def reseal_index(path: Path, index: PackIndex, *, epoch: int = 1, key: bytes = KEY) -> None:
    """Rewrite a file's index as the epoch key's holder could: same region, a new index stream and trailer."""
    data = path.read_bytes()
    offset = int.from_bytes(data[-16:-8], "big")
    sink = io.BytesIO()
    sink.write(data[:offset])
    with VaultWriter(sink, "alice", epoch, key) as writer:
        writer.write(codec.encode(index))
    sink.write(encode_trailer(offset))
    path.write_bytes(sink.getvalue())


# The reference, from docs/vault.md §5


def reference_cut(sections: Sequence[Sequence[bytes]]) -> list[bytes]:
    blobs: list[bytes] = []
    for section in sections:
        current = b""
        for part in section:
            if len(part) > BLOB_MAX:
                if current:
                    blobs.append(current)
                current = b""
                blobs.extend(part[i : i + BLOB_MAX] for i in range(0, len(part), BLOB_MAX))
                continue
            if len(current) + len(part) > BLOB_MAX and current:
                blobs.append(current)
                current = b""
            current += part
            if len(current) >= BLOB_MIN and hashlib.sha256(part).digest()[0] < 32:
                blobs.append(current)
                current = b""
        if current:
            blobs.append(current)
    return blobs


def fixed_random(chunks: list[bytes]) -> Callable[[int], bytes]:
    supply = iter(chunks)

    def randbytes(size: int) -> bytes:
        value = next(supply)
        assert len(value) == size
        return value

    return randbytes


def reference_file(sections: Sequence[Sequence[bytes]], resident_id: str, epoch: int, key: bytes) -> bytes:
    """A whole packed file from the spec, blob keys `0x80 + 32 i ...` and index salt/prefix as in the vector."""
    rid = resident_id.encode()
    prelude = b"FTMP" + bytes([2, len(rid)]) + rid
    aad = b"ftm-vault-v2 blob" + bytes([len(rid)]) + rid
    region, refs, offset = b"", [], len(prelude)
    for number, blob in enumerate(reference_cut(sections)):
        blob_key = bytes((0x80 + 32 * number + i) % 256 for i in range(32))
        sealed = AESGCM(blob_key).encrypt(bytes(12), blob, aad)
        refs.append({"offset": offset, "size": len(sealed), "key": blob_key, "digest": hashlib.sha256(blob).digest()})
        region += sealed
        offset += len(sealed)
    lengths = [[len(part) for part in section] for section in sections]
    index = msgpack.packb({"version": 1, "sections": lengths, "blobs": refs, "garbage": 0}, use_bin_type=True)
    stream = io.BytesIO()
    salt_prefix = [bytes(range(0x40, 0x60)), bytes(range(0x60, 0x67))]
    with VaultWriter(stream, resident_id, epoch, key, randbytes=fixed_random(salt_prefix)) as writer:
        writer.write(index)
    return prelude + region + stream.getvalue() + offset.to_bytes(8, "big") + b"FTMPACK2"


def vector_random(blobs: int) -> Callable[[int], bytes]:
    keys = [bytes((0x80 + 32 * n + i) % 256 for i in range(32)) for n in range(blobs)]
    return fixed_random([*keys, bytes(range(0x40, 0x60)), bytes(range(0x60, 0x67))])


# Round trips and cutting


ROUND_TRIPS: dict[str, list[list[bytes]]] = {
    "no sections": [],
    "empty sections": [[], [], []],
    "empty parts": [[b"", b""], [], [b"", CANARY, b""]],
    "one part over 1 MiB": [[CANARY + os.urandom(2 * MIB + 5)]],
    "exactly 1 MiB and 1 MiB + 1": [[os.urandom(MIB), os.urandom(MIB + 1)]],
    "many tiny parts": [[CANARY + bytes([i % 256]) * (i % 7) for i in range(5000)]],
    "several sections": package(),
    "large part between small ones": [[b"a", CANARY + os.urandom(3 * MIB), b"b", b""], [b"c"]],
}


@pytest.mark.parametrize("name", ROUND_TRIPS)
async def test_round_trip(tmp_path: Path, name: str) -> None:
    sections = ROUND_TRIPS[name]
    stats = await seal_contents(tmp_path / "v", "alice", 1, KEY, sections)
    assert stats.file_size == (tmp_path / "v").stat().st_size
    assert stats.encrypted_bytes == sum(map(len, (p for s in sections for p in s)))
    contents = await open_contents(tmp_path / "v", "alice", 1, KEY, max_bytes=1 << 30)
    assert contents.sections == as_tuple(sections)
    assert contents.packed
    assert all(type(part) is bytes for section in contents.sections for part in section)
    assert CANARY not in (tmp_path / "v").read_bytes()


@pytest.mark.parametrize("name", ROUND_TRIPS)
def test_cut_matches_the_documented_rule(name: str) -> None:
    sections = ROUND_TRIPS[name]
    planned = cut(sections)
    blobs = [b"".join(blob.pieces) for blob in planned]
    assert blobs == reference_cut(sections)
    assert [blob.digest for blob in planned] == [hashlib.sha256(blob).digest() for blob in blobs]
    assert all(0 < len(blob) <= BLOB_MAX for blob in blobs)
    assert [b"".join(b.pieces) for b in cut(sections)] == blobs  # deterministic


def test_cut_is_content_defined() -> None:
    parts = conversations(200, 7)
    planned = cut([parts])
    sizes = [blob.size for blob in planned]
    assert all(size >= BLOB_MIN for size in sizes[:-1])
    # Boundaries come from content: some blobs end before the size cap forces them to.
    assert any(size + len(parts[0]) < BLOB_MAX for size in sizes[:-1])
    with pytest.raises(TypeError, match="sections of parts"):
        cut(b"plaintext")  # type: ignore[arg-type]


def test_identical_blobs_are_encrypted_once(tmp_path: Path) -> None:
    zeros = bytes(3 * MIB)
    stats = seal_sync(tmp_path / "v", "alice", 1, KEY, [[zeros], [zeros[:MIB]]])
    assert (stats.blobs, stats.new_blobs, stats.encrypted_bytes) == (4, 1, MIB)
    assert open_sync(tmp_path / "v", "alice", 1, KEY, 4 * MIB).sections == ((zeros,), (zeros[:MIB],))


def test_documented_test_vector_matches(tmp_path: Path) -> None:
    sections = [[b"hello, "], [b"sanctuary"]]
    path = tmp_path / "v"
    seal_sync(path, "example-resident", 1, KEY, sections, randbytes=vector_random(2))
    data = path.read_bytes()
    assert data == reference_file(sections, "example-resident", 1, KEY)
    doc = re.sub(r"\s+", "", DOCS.read_text(encoding="utf-8"))
    assert data.hex() in doc
    index = base_of(open_sync(path, "example-resident", 1, KEY, 100)).index
    assert codec.encode(index).hex() in doc
    assert open_sync(path, "example-resident", 1, KEY, 100).sections == as_tuple(sections)


def test_larger_file_matches_the_reference_encoder(tmp_path: Path) -> None:
    sections = [[b"x" * 10], conversations(60, 3), [os.urandom(MIB + 3)]]
    blobs = len(reference_cut(sections))
    seal_sync(tmp_path / "v", "alice", 4, KEY, sections, randbytes=vector_random(blobs))
    assert (tmp_path / "v").read_bytes() == reference_file(sections, "alice", 4, KEY)


# Sealing the next epoch from a base


def test_appending_a_part_reencrypts_only_the_last_blob(tmp_path: Path) -> None:
    sections = package()
    first = seal_and_open(tmp_path / "e1", sections)
    base = base_of(first)
    grown = [sections[0], sections[1], [*sections[2], CANARY + os.urandom(50_000)]]
    stats = seal_sync(tmp_path / "e2", "alice", 2, NEXT_KEY, grown, base=base)
    old_blobs, new_cut = base.index.blobs, cut(grown)
    assert stats.base_used and not stats.compacted
    assert (stats.blobs, stats.reused_blobs, stats.new_blobs) == (len(new_cut), len(new_cut) - 1, 1)
    assert stats.encrypted_bytes == new_cut[-1].size  # the conversations' last blob, with the new part
    assert stats.copied_bytes == base.index_offset - len(b"FTMP\x02\x05alice")
    second = open_sync(tmp_path / "e2", "alice", 2, NEXT_KEY, 1 << 30)
    assert second.sections == as_tuple(grown)
    # Every earlier blob but the last one is the same blob at the same place, under the same key. The old last
    # blob is garbage now, unless the new part started a blob of its own (the old last part was a boundary).
    new_blobs = base_of(second).index.blobs
    assert new_blobs[: len(old_blobs) - 1] == old_blobs[:-1]
    assert stats.garbage == (0 if old_blobs[-1] in new_blobs else old_blobs[-1].size)
    one, two = (tmp_path / "e1").read_bytes(), (tmp_path / "e2").read_bytes()
    assert common_prefix(one, two) >= base.index_offset
    for path in (tmp_path / "e1", tmp_path / "e2"):
        assert CANARY not in path.read_bytes()


def test_an_edit_in_the_middle_changes_a_bounded_number_of_blobs(tmp_path: Path) -> None:
    parts = conversations(400, 11)
    first = seal_and_open(tmp_path / "e1", [parts])
    edited = list(parts)
    edited[200] = edited[200][:100] + b"an edit" + edited[200][100:]
    stats = seal_sync(tmp_path / "e2", "alice", 2, NEXT_KEY, [edited], base=base_of(first))
    assert stats.blobs >= 30
    assert 1 <= stats.new_blobs <= 3  # the blob with the edit, and its neighbours until the next boundary
    assert stats.encrypted_bytes <= 3 * BLOB_MAX
    assert open_sync(tmp_path / "e2", "alice", 2, NEXT_KEY, 1 << 30).sections == ((tuple(edited)),)


def test_compaction_drops_garbage_and_keeps_the_prefix_before_it(tmp_path: Path) -> None:
    sections = [conversations(40, 1), conversations(60, 2), conversations(10, 3)]
    first = seal_and_open(tmp_path / "e1", sections)
    # Replacing the middle section leaves its blobs as garbage: more than 1 MiB and a quarter of the region.
    changed = [sections[0], conversations(5, 9), sections[2]]
    stats = seal_sync(tmp_path / "e2", "alice", 2, NEXT_KEY, changed, base=base_of(first))
    assert stats.compacted and stats.garbage == 0
    second = open_sync(tmp_path / "e2", "alice", 2, NEXT_KEY, 1 << 30)
    assert second.sections == as_tuple(changed)
    index = base_of(second).index
    assert index.garbage == 0
    region = sorted((ref.offset, ref.end) for ref in set(index.blobs))
    assert all(a[1] == b[0] for a, b in itertools.pairwise(region))  # no gaps left
    assert region[-1][1] == base_of(second).index_offset
    # Blobs before the first garbage kept their offsets, so the prefix still covers the first section.
    first_section = base_of(first).index.blobs[: len(cut(sections[:1]))]
    assert common_prefix((tmp_path / "e1").read_bytes(), (tmp_path / "e2").read_bytes()) >= first_section[-1].end
    # Without enough garbage there is no compaction.
    small = seal_sync(tmp_path / "e3", "alice", 3, KEY, [*changed, [b"more"]], base=base_of(second))
    assert not small.compacted and small.new_blobs == 1


def test_removed_blobs_lose_their_keys(tmp_path: Path) -> None:
    sections = package()
    first = seal_and_open(tmp_path / "e1", sections)
    shrunk = [sections[0], sections[1], sections[2][:20]]
    seal_sync(tmp_path / "e2", "alice", 2, NEXT_KEY, shrunk, base=base_of(first))
    second = open_sync(tmp_path / "e2", "alice", 2, NEXT_KEY, 1 << 30)
    old_keys = {ref.key for ref in base_of(first).index.blobs}
    new_keys = {ref.key for ref in base_of(second).index.blobs}
    assert len(old_keys - new_keys) >= len(base_of(first).index.blobs) - len(cut(shrunk))
    assert len(new_keys - old_keys) <= 1  # at most the shortened last blob is new
    assert base_of(second).index.blobs[: len(new_keys) - 1] == base_of(first).index.blobs[: len(new_keys) - 1]
    index_bytes = (tmp_path / "e2").read_bytes()
    assert not any(key in index_bytes for key in old_keys | new_keys)  # keys only ever sealed


async def test_a_base_that_changed_on_disk_is_not_used(tmp_path: Path) -> None:
    sections = package()
    first = seal_and_open(tmp_path / "e1", sections)
    seal_sync(tmp_path / "e1", "alice", 1, KEY, sections)  # the same epoch sealed again: another file
    stats = seal_sync(tmp_path / "e2", "alice", 2, NEXT_KEY, sections, base=base_of(first))
    assert not stats.base_used and stats.new_blobs == stats.blobs
    assert open_sync(tmp_path / "e2", "alice", 2, NEXT_KEY, 1 << 30).sections == as_tuple(sections)
    (tmp_path / "e1").unlink()
    assert not seal_sync(tmp_path / "e3", "alice", 3, KEY, sections, base=base_of(first)).base_used
    other = seal_sync(tmp_path / "e4", "bob", 1, KEY, sections, base=base_of(first))
    assert not other.base_used


def test_a_damaged_reused_blob_makes_the_seal_start_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sections = package()
    first = seal_and_open(tmp_path / "e1", sections)
    damaged = bytearray((tmp_path / "e1").read_bytes())
    damaged[base_of(first).index.blobs[1].offset + 5] ^= 1
    (tmp_path / "e1").write_bytes(damaged)
    stats = seal_sync(tmp_path / "e2", "alice", 2, NEXT_KEY, sections, base=base_of(first))
    assert not stats.base_used
    assert open_sync(tmp_path / "e2", "alice", 2, NEXT_KEY, 1 << 30).sections == as_tuple(sections)
    assert "unusable" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e1", "e2"]  # no temp file left by the first try


# Refusals


@pytest.fixture
def sealed(tmp_path: Path) -> tuple[Path, Contents]:
    path = tmp_path / "v"
    return path, seal_and_open(path, package())


def rewrite(path: Path, edit: Callable[[bytearray], None]) -> None:
    data = bytearray(path.read_bytes())
    edit(data)
    path.write_bytes(data)


def test_flipped_byte_in_a_blob(sealed: tuple[Path, Contents]) -> None:
    path, contents = sealed
    ref = base_of(contents).index.blobs[2]
    for position in (ref.offset, ref.offset + ref.size // 2, ref.end - 1):
        original = path.read_bytes()

        def flip(data: bytearray, at: int = position) -> None:
            data[at] ^= 0x40

        rewrite(path, flip)
        error = failure(path)
        assert (error.reason, error.chunk) == (VaultFailure.BLOB_AUTH, 2)
        path.write_bytes(original)


def test_swapped_blobs(tmp_path: Path) -> None:
    path = tmp_path / "v"
    same = [[os.urandom(MIB)], [os.urandom(MIB)]]  # two blobs of the same size
    contents = seal_and_open(path, same)
    a, b = base_of(contents).index.blobs
    data = path.read_bytes()
    path.write_bytes(data[: a.offset] + data[b.offset : b.end] + data[a.offset : a.end] + data[b.end :])
    assert (failure(path).reason, failure(path).chunk) == (VaultFailure.BLOB_AUTH, 0)


def test_truncated_files(sealed: tuple[Path, Contents]) -> None:
    path, contents = sealed
    data = path.read_bytes()
    for cut_at in (0, 3, 5, 8, 12):
        path.write_bytes(data[:cut_at])
        assert failure(path).reason is VaultFailure.TRUNCATED
    for cut_at in (len(data) - 1, len(data) - 16, base_of(contents).index_offset, len(data) // 2):
        path.write_bytes(data[:cut_at])
        assert failure(path).reason is VaultFailure.BAD_TRAILER
    path.write_bytes(data + b"\x00")
    assert failure(path).reason is VaultFailure.BAD_TRAILER


def test_bad_trailer_magic_and_offsets(sealed: tuple[Path, Contents]) -> None:
    path, contents = sealed
    data = path.read_bytes()
    path.write_bytes(data[:-1] + b"3")
    assert failure(path).reason is VaultFailure.BAD_TRAILER
    for offset in (len(data), len(data) - 15, 1 << 63, 0, 5, len(b"FTMP\x02\x05alice") - 1):
        path.write_bytes(data[:-16] + encode_trailer(offset))
        assert failure(path).reason is VaultFailure.BAD_TRAILER, offset
    # In bounds but not where the index starts: the index stream itself is refused.
    path.write_bytes(data[:-16] + encode_trailer(base_of(contents).index_offset + 1))
    assert failure(path).reason is VaultFailure.BAD_MAGIC


def test_flipped_byte_in_the_index(sealed: tuple[Path, Contents]) -> None:
    path, _ = sealed

    def flip(data: bytearray) -> None:
        data[-20] ^= 1

    rewrite(path, flip)
    assert failure(path).reason is VaultFailure.CHUNK_AUTH


def test_bad_prelude(sealed: tuple[Path, Contents]) -> None:
    path, _ = sealed
    data = path.read_bytes()
    path.write_bytes(data[:4] + b"\x03" + data[5:])
    assert failure(path).reason is VaultFailure.UNSUPPORTED_VERSION
    path.write_bytes(b"FTMQ" + data[4:])
    assert failure(path).reason is VaultFailure.BAD_MAGIC
    path.write_bytes(data.replace(b"alice", b"al/ce", 1))
    assert failure(path, resident_id="alice").reason is VaultFailure.MALFORMED_HEADER


def test_a_blob_ref_outside_the_region(sealed: tuple[Path, Contents]) -> None:
    path, contents = sealed
    base = base_of(contents)
    blobs = list(base.index.blobs)
    for wrong in (base.index_offset - blobs[0].size + 1, 3, base.index_offset + 10):
        changed = list(blobs)
        changed[0] = dataclasses.replace(blobs[0], offset=wrong)
        reseal_index(path, dataclasses.replace(base.index, blobs=tuple(changed)))
        error = failure(path)
        assert (error.reason, error.chunk) == (VaultFailure.MALFORMED_INDEX, 0)


def test_an_index_whose_sizes_disagree(sealed: tuple[Path, Contents]) -> None:
    path, contents = sealed
    index = base_of(contents).index
    reseal_index(path, dataclasses.replace(index, sections=(*index.sections, (1,))))
    assert failure(path).reason is VaultFailure.MALFORMED_INDEX
    reseal_index(path, dataclasses.replace(index, version=2))
    assert failure(path).reason is VaultFailure.UNSUPPORTED_VERSION
    reseal_index(path, dataclasses.replace(index, garbage=1 << 40))
    assert failure(path).reason is VaultFailure.MALFORMED_INDEX


def test_an_index_that_does_not_decode(sealed: tuple[Path, Contents]) -> None:
    path, _ = sealed
    data = path.read_bytes()
    offset = int.from_bytes(data[-16:-8], "big")
    sink = io.BytesIO()
    with VaultWriter(sink, "alice", 1, KEY) as writer:
        writer.write(msgpack.packb({"version": 1, "sections": [], "blobs": [], "garbage": -1}))
    path.write_bytes(data[:offset] + sink.getvalue() + encode_trailer(offset))
    assert failure(path).reason is VaultFailure.MALFORMED_INDEX


def test_a_blob_replaced_by_someone_who_knows_its_key(sealed: tuple[Path, Contents]) -> None:
    # A holder of an older epoch's key knows the keys of blobs still in use: the digest in the index stops them.
    path, contents = sealed
    ref = base_of(contents).index.blobs[1]
    forged = AESGCM(ref.key).encrypt(bytes(12), os.urandom(ref.plain_size), b"ftm-vault-v2 blob\x05alice")

    def replace(data: bytearray) -> None:
        data[ref.offset : ref.end] = forged

    rewrite(path, replace)
    error = failure(path)
    assert (error.reason, error.chunk) == (VaultFailure.BLOB_DIGEST, 1)


def test_wrong_key_resident_and_epoch(sealed: tuple[Path, Contents]) -> None:
    path, _ = sealed
    assert failure(path, key=NEXT_KEY).reason is VaultFailure.WRONG_KEY
    assert failure(path, resident_id="bob").reason is VaultFailure.WRONG_RESIDENT
    assert failure(path, resident_id="alicia").reason is VaultFailure.WRONG_RESIDENT
    assert failure(path, epoch=2).reason is VaultFailure.WRONG_EPOCH


def test_max_bytes_is_refused_before_decrypting(sealed: tuple[Path, Contents]) -> None:
    path, contents = sealed
    total = base_of(contents).index.plaintext_size()
    assert open_sync(path, "alice", 1, KEY, total).sections == contents.sections
    ref = base_of(contents).index.blobs[0]

    def flip(data: bytearray) -> None:
        data[ref.offset] ^= 1

    rewrite(path, flip)  # a damaged blob: decrypting would fail, so LimitExceeded proves nothing was decrypted
    with pytest.raises(LimitExceeded):
        open_sync(path, "alice", 1, KEY, total - 1)


def test_repr_shows_no_content_or_keys(sealed: tuple[Path, Contents]) -> None:
    _, contents = sealed
    base = base_of(contents)
    text = repr(contents) + repr(base) + repr(base.index) + str(base.index.blobs[0])
    assert CANARY.decode() not in text
    secrets = [value for ref in base.index.blobs for value in (ref.key, ref.digest)]
    assert all(value.hex() not in text and repr(value) not in text for value in secrets)


def test_index_dataclasses_refuse_out_of_range_values() -> None:
    ref = BlobRef(10, 100, KEY, KEY)
    for bad in ({"offset": -1}, {"size": 16}, {"size": BLOB_MAX + 17}, {"key": b"k"}, {"digest": b""}):
        with pytest.raises(ValueError, match="blob"):
            dataclasses.replace(ref, **bad)
    with pytest.raises(ValueError, match="part length"):
        PackIndex(1, ((-1,),), (), 0)


# Version 1 files, resealing, the store


async def test_version_1_files_still_open(tmp_path: Path) -> None:
    await seal_bytes(tmp_path / "v1", "alice", 1, KEY, CANARY * 3)
    contents = await open_contents(tmp_path / "v1", "alice", 1, KEY, max_bytes=1000)
    assert (contents.sections, contents.packed, contents.base) == (((CANARY * 3,),), False, None)
    with pytest.raises(LimitExceeded):
        await open_contents(tmp_path / "v1", "alice", 1, KEY, max_bytes=10)
    with pytest.raises(VaultIntegrityError) as caught:
        await open_contents(tmp_path / "v1", "alice", 2, KEY, max_bytes=1000)
    assert caught.value.reason is VaultFailure.WRONG_EPOCH


def blob_spans(contents: Contents) -> Iterator[tuple[int, int]]:
    for ref in base_of(contents).index.blobs:
        yield ref.offset, ref.end


async def test_reseal_packed_gives_new_keys_and_no_common_ciphertext(tmp_path: Path) -> None:
    store = VaultStore(tmp_path / "vault")
    sections = [*package(), [bytes(2 * MIB)]]  # with a duplicate blob, resealed once
    first = await store.seal_with_stats("alice", 1, KEY, sections)
    opened = await store.open("alice", 1, KEY, 1 << 30)
    grown = [*sections[:2], [*sections[2][:-1], b"one more"], sections[3]]
    assert (await store.seal_with_stats("alice", 2, NEXT_KEY, grown, base=opened.base)).garbage > 0
    source = await store.open("alice", 2, NEXT_KEY, 1 << 30)
    size, digest = await store.export_resealed("alice", 2, NEXT_KEY, 5, KEY, tmp_path / "out", b"HEADER")
    exported = (tmp_path / "out").read_bytes()
    assert exported.startswith(b"HEADERFTMP") and len(exported) == size
    assert hashlib.sha256(exported).digest() == digest
    (tmp_path / "moved").write_bytes(exported[len(b"HEADER") :])
    moved = await open_contents(tmp_path / "moved", "alice", 5, KEY, max_bytes=1 << 30)
    assert moved.sections == as_tuple(grown)
    assert base_of(moved).index.garbage == 0
    assert not {r.key for r in base_of(moved).index.blobs} & {r.key for r in base_of(source).index.blobs}
    old = store.path_for("alice", 2).read_bytes()
    for start, end in blob_spans(source):
        assert old[start:end][:32] not in exported
    assert len(exported) - len(b"HEADER") < len(old)  # the garbage is gone
    moved_blobs = base_of(moved).index.blobs
    assert len(set(moved_blobs)) == len({ref.digest for ref in moved_blobs}) < len(moved_blobs)
    assert first.new_blobs < first.blobs  # the duplicate was encrypted once to begin with
    # A restore puts a downloaded file in place, resealed for this node.
    await store.import_resealed("alice", tmp_path / "moved", 5, KEY, 6, NEXT_KEY)
    restored = await store.open("alice", 6, NEXT_KEY, 1 << 30)
    assert restored.packed and restored.sections == as_tuple(grown)
    for path in (tmp_path / "out", tmp_path / "moved", store.path_for("alice", 6)):
        assert CANARY not in path.read_bytes()


async def test_reseal_version_1_stays_version_1(tmp_path: Path) -> None:
    store = VaultStore(tmp_path / "vault")
    store.path_for("alice", 1).parent.mkdir(parents=True)
    await seal_bytes(store.path_for("alice", 1), "alice", 1, KEY, CANARY * 100)
    await store.export_resealed("alice", 1, KEY, 2, NEXT_KEY, tmp_path / "out", b"")
    assert (tmp_path / "out").read_bytes().startswith(b"FTMV")
    await store.import_resealed("alice", tmp_path / "out", 2, NEXT_KEY, 3, KEY)
    contents = await store.open("alice", 3, KEY, 1 << 20)
    assert (contents.sections, contents.packed) == (((CANARY * 100,),), False)
    # The next seal of a version-1 resident writes version 2 from scratch.
    stats = await store.seal_with_stats("alice", 4, NEXT_KEY, [[CANARY * 100]], base=contents.base)
    assert not stats.base_used and (await store.open("alice", 4, NEXT_KEY, 1 << 20)).packed


async def test_reseal_refuses_a_damaged_source_before_writing(tmp_path: Path) -> None:
    store = VaultStore(tmp_path / "vault")
    await store.seal("alice", 1, KEY, package())
    opened = await store.open("alice", 1, KEY, 1 << 30)
    path = store.path_for("alice", 1)

    def flip(data: bytearray) -> None:
        data[base_of(opened).index.blobs[-1].offset] ^= 1

    rewrite(path, flip)
    with pytest.raises(VaultIntegrityError) as caught:
        await store.export_resealed("alice", 1, KEY, 2, NEXT_KEY, tmp_path / "out", b"")
    assert caught.value.reason is VaultFailure.BLOB_AUTH
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vault"]
