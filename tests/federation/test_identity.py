"""Identity: domain-separated signatures, derived ids, 0600 key files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ftm.federation.identity import (
    BadSignature,
    SigningKey,
    create_node_identity,
    derive_id,
    load_node_identity,
    verify,
    verify_many,
)
from ftm.federation.keyfile import KeyFileError, create_key_file, decode_key_text, read_key_file


def test_signature_verifies_only_in_its_domain() -> None:
    key = SigningKey.generate()
    signature = key.sign("ftm-test-a", b"message")
    verify(key.public_key, "ftm-test-a", b"message", signature)
    with pytest.raises(BadSignature):
        verify(key.public_key, "ftm-test-b", b"message", signature)
    with pytest.raises(BadSignature):
        verify(key.public_key, "ftm-test-a", b"messagE", signature)
    with pytest.raises(BadSignature):
        verify(SigningKey.generate().public_key, "ftm-test-a", b"message", signature)
    with pytest.raises(BadSignature):
        verify(key.public_key, "ftm-test-a", b"message", signature[:10])


def test_repr_never_shows_the_seed() -> None:
    key = SigningKey.generate()
    assert key.seed.hex() not in repr(key)


def test_ids_are_short_stable_and_kind_separated() -> None:
    public = SigningKey.generate().public_key
    node_id = derive_id("node", public)
    assert node_id == derive_id("node", public)
    assert node_id != derive_id("resident", public)
    assert len(node_id) == 26 and node_id.isalnum() and node_id == node_id.lower()


def test_node_key_file_is_private_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    identity = create_node_identity(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_node_identity(path).node_id == identity.node_id


def test_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    create_node_identity(path)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        create_node_identity(path)
    assert path.read_bytes() == before


def test_group_readable_key_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    create_node_identity(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_node_identity(path)


def test_wrong_kind_and_damage_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "other.key"
    create_key_file(path, "ftm-other-v1", b"x" * 32)
    with pytest.raises(KeyFileError, match="not a ftm-node-ed25519-v1 key file"):
        load_node_identity(path)
    path.write_text("ftm-other-v1:AAAA\n")
    with pytest.raises(KeyFileError, match="expected a 32-byte key"):
        read_key_file(path, "ftm-other-v1", 32)
    with pytest.raises(KeyFileError, match="does not exist"):
        read_key_file(tmp_path / "missing.key", "ftm-other-v1", 32)


def test_key_text_accepts_hex_and_base64url() -> None:
    secret = bytes(range(32))
    assert decode_key_text(secret.hex(), 32, "k") == secret
    import base64

    assert decode_key_text(base64.urlsafe_b64encode(secret).decode(), 32, "k") == secret
    with pytest.raises(KeyFileError, match="32 bytes"):
        decode_key_text("abcd", 32, "k")


def test_sealed_inbox_opens_only_with_its_secret() -> None:
    from ftm.federation.identity import (
        BadSealedMessage,
        generate_inbox_secret,
        inbox_public_key,
        open_inbox,
        seal_to_inbox,
    )

    secret = generate_inbox_secret()
    sealed = seal_to_inbox(inbox_public_key(secret), b"a note for the resident")
    assert b"a note" not in sealed
    assert open_inbox(secret, sealed) == b"a note for the resident"
    with pytest.raises(BadSealedMessage):
        open_inbox(generate_inbox_secret(), sealed)
    with pytest.raises(BadSealedMessage):
        open_inbox(secret, sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(BadSealedMessage):
        open_inbox(secret, sealed[:10])


def test_verify_many_agrees_with_verify() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    good = (key.public_key, b"m", key.sign("ftm-test-a", b"m"))
    items = [
        good,
        (key.public_key, b"M", good[2]),
        (other.public_key, b"m", good[2]),
        (key.public_key, b"m", good[2][:63]),
        (key.public_key[:31], b"m", good[2]),
        (key.public_key, b"m", bytes(64)),
        (other.public_key, b"x", other.sign("ftm-test-a", b"x")),
    ]
    assert verify_many("ftm-test-a", items) == [True, False, False, False, False, False, True]
    assert verify_many("ftm-test-b", [good]) == [False]
    for (public_key, message, signature), ok in zip(items, verify_many("ftm-test-a", items), strict=True):
        if ok:
            verify(public_key, "ftm-test-a", message, signature)
        else:
            with pytest.raises(BadSignature):
                verify(public_key, "ftm-test-a", message, signature)
