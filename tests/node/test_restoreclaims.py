"""Disaster claim files: written by the new host, signed by guardians in turn, read back with every signature
checked; guardian key files."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from ftm.federation.identity import SigningKey, verify
from ftm.federation.keyfile import KeyFileError
from ftm.keeper.protocol import CLAIM_DOMAIN, DisasterTerms, claim_id, decode, encode
from ftm.node.restoreclaims import (
    CLAIM_PREFIX,
    ClaimFileError,
    load_guardian_key,
    new_claim,
    new_guardian_key,
    read_claim,
    sign_claim_file,
    write_claim,
)

NOW = 1_800_000_000


def test_a_claim_is_written_signed_by_guardians_in_turn_and_read_back(tmp_path: Path) -> None:
    node, old_host = SigningKey.generate(), SigningKey.generate().public_key
    path = tmp_path / "lumen.claim"
    write_claim(path, new_claim(node, old_host, "https://new.example", ["b" * 26, "a" * 26], NOW))
    guardians = [new_guardian_key(tmp_path / f"g{i}.key") for i in range(2)]
    for index in range(len(guardians)):
        assert stat.S_IMODE((tmp_path / f"g{index}.key").stat().st_mode) == 0o600
        loaded = load_guardian_key(tmp_path / f"g{index}.key")
        write_claim(path, sign_claim_file(read_claim(path), loaded))
    write_claim(path, sign_claim_file(read_claim(path), guardians[0]))  # signing again replaces, not adds

    claim = read_claim(path)
    terms = decode(DisasterTerms, claim.claim.body)
    assert (terms.old_host_key, terms.new_host_key, terms.new_host_url) == (
        old_host, node.public_key, "https://new.example"
    )  # fmt: skip
    assert terms.resident_ids == ("a" * 26, "b" * 26) and terms.created_at == NOW
    assert sorted(claim.signers) == sorted([node.public_key, *(g.public_key for g in guardians)])
    assert claim.id == claim_id(claim.claim.body)
    for signature in claim.claim.signatures:
        verify(signature.key, CLAIM_DOMAIN, claim.claim.body, signature.signature)
    text = path.read_text()
    assert claim.id.hex() in text and "a" * 26 in text  # the comment lines say what is signed
    assert sum(1 for line in text.splitlines() if not line.startswith("#")) == 1


def test_an_altered_or_foreign_file_is_refused(tmp_path: Path) -> None:
    node = SigningKey.generate()
    path = tmp_path / "lumen.claim"
    claim = new_claim(node, SigningKey.generate().public_key, "https://new.example", ["a" * 26], NOW)
    forged = type(claim.claim)(claim.claim.body.replace(b"https", b"httpx"), claim.claim.signatures)
    write_claim(path, claim)
    armoured = path.read_text().splitlines()[-1]
    path.write_text(armoured[: len(armoured) // 2] + "\n")  # cut in transit
    with pytest.raises(ClaimFileError, match="is damaged"):
        read_claim(path)
    (tmp_path / "forged").write_text(f"{CLAIM_PREFIX}:{base64.urlsafe_b64encode(encode(forged)).decode()}\n")
    with pytest.raises(ClaimFileError, match="does not verify"):
        read_claim(tmp_path / "forged")
    (tmp_path / "other").write_text(f"{CLAIM_PREFIX}x:abc\n")
    with pytest.raises(ClaimFileError, match="not a disaster claim"):
        read_claim(tmp_path / "other")
    with pytest.raises(ClaimFileError, match="cannot read"):
        read_claim(tmp_path / "missing")
    with pytest.raises(ValueError, match="must not be the old host"):
        new_claim(node, node.public_key, "https://new.example", ["a" * 26], NOW)


def test_guardian_keys_are_never_overwritten_nor_read_when_others_may(tmp_path: Path) -> None:
    path = tmp_path / "guardian.key"
    key = new_guardian_key(path)
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        new_guardian_key(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_guardian_key(path)
    path.chmod(0o600)
    assert load_guardian_key(path).public_key == key.public_key
