"""Identity and signing: the only module that touches Ed25519 (and the X25519 keys beside it).

A node has only its Ed25519 key. What is sealed to a node (a moving resident's package key) is sealed to the X25519
key libsodium derives from it (`crypto_sign_ed25519_pk_to_curve25519`, and `..._sk_to_...` for the secret half),
as age does for ssh-ed25519 keys: one key pair to pin and publish, used for signing and, converted, for sealing.

Every signature is domain-separated: what is signed is `domain ‖ 0x00 ‖ message`, so a signature made for one
purpose (an event-log entry, say) can never be replayed as another (a federation event). Library errors become
our own `BadSignature`. Ids are derived from public keys, so they need no registry and cannot be forged.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing
import nacl.utils

from ftm.federation.keyfile import create_key_file, read_key_file

NODE_KEY_PREFIX = "ftm-node-ed25519-v1"
SEED_BYTES = 32
SIGNATURE_BYTES = 64
ID_CHARS = 26  # 130 bits of base32: collision-free for any realistic number of nodes or residents


class BadSignature(Exception):
    """A signature did not verify (wrong key, wrong domain, altered message or malformed signature)."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An Ed25519 key held as its 32-byte seed."""

    seed: bytes

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_BYTES:
            raise ValueError("an Ed25519 seed is 32 bytes")

    def __repr__(self) -> str:  # never print secrets, even by accident in a traceback or log
        return f"SigningKey(public={self.public_key.hex()[:16]}…)"

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(nacl.utils.random(SEED_BYTES))

    @property
    def public_key(self) -> bytes:
        return bytes(nacl.signing.SigningKey(self.seed).verify_key)

    def sign(self, domain: str, message: bytes) -> bytes:
        """A detached 64-byte signature over `domain ‖ 0x00 ‖ message`."""
        signed = nacl.signing.SigningKey(self.seed).sign(_framed(domain, message))
        return bytes(signed.signature)

    def open_sealed(self, sealed: bytes) -> bytes:
        """Open what `seal_to_node` sealed to this key's public half; raises `BadSealedMessage`."""
        secret = nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(self.seed + self.public_key)
        return open_inbox(secret, sealed)


def verify(public_key: bytes, domain: str, message: bytes, signature: bytes) -> None:
    """Raise `BadSignature` unless `signature` is `public_key`'s signature of `message` in `domain`."""
    if len(signature) != SIGNATURE_BYTES or len(public_key) != SEED_BYTES:
        raise BadSignature("malformed signature or public key")
    try:
        nacl.signing.VerifyKey(public_key).verify(_framed(domain, message), signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        raise BadSignature(f"signature does not verify for domain {domain!r}") from None


def verify_many(domain: str, items: Iterable[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """For each `(public_key, message, signature)`, whether it verifies in `domain`: the same check as `verify`,
    for batches (federation ingest). It answers with a flag instead of raising, because a failure is an expected
    answer there, and it calls libsodium directly, because per-item objects and exceptions would cost more than
    the bookkeeping around a verification should. libsodium releases the GIL while it verifies, so a caller may
    split a batch across worker threads."""
    prefix = _framed(domain, b"")
    results = []
    for public_key, message, signature in items:
        if len(signature) != SIGNATURE_BYTES or len(public_key) != SEED_BYTES:
            results.append(False)
            continue
        try:
            nacl.bindings.crypto_sign_open(signature + prefix + message, public_key)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
            results.append(False)
        else:
            results.append(True)
    return results


def derive_id(kind: str, public_key: bytes) -> str:
    """A short, lowercase, URL-safe id for a node or resident, derived from its public key."""
    digest = hashlib.sha256(f"ftm-id-v1 {kind}".encode() + b"\x00" + public_key).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:ID_CHARS]


def generate_inbox_secret() -> bytes:
    """A new X25519 secret for a resident's sealed inbox."""
    return bytes(nacl.public.PrivateKey.generate())


def inbox_public_key(secret: bytes) -> bytes:
    return bytes(nacl.public.PrivateKey(secret).public_key)


def derive_inbox_secret(domain: str, token: str) -> bytes:
    """An X25519 secret derived from a bearer token, so whoever holds the token (and only they) can open what
    is sealed to its public half; the node stores only that public half."""
    return hashlib.sha256(domain.encode() + b"\x00" + token.encode()).digest()


class BadSealedMessage(Exception):
    """A sealed message could not be opened with this inbox key (wrong key, altered or truncated)."""


def seal_to_inbox(public_key: bytes, plaintext: bytes) -> bytes:
    """Seal `plaintext` so only the holder of the inbox secret can read it (X25519 + XSalsa20-Poly1305)."""
    return bytes(nacl.public.SealedBox(nacl.public.PublicKey(public_key)).encrypt(plaintext))


def open_inbox(secret: bytes, sealed: bytes) -> bytes:
    try:
        return bytes(nacl.public.SealedBox(nacl.public.PrivateKey(secret)).decrypt(sealed))
    except (nacl.exceptions.CryptoError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        raise BadSealedMessage("the sealed message does not open with this inbox key") from None


def node_box_key(node_public_key: bytes) -> bytes:
    """The X25519 public key that what is sealed to the node with Ed25519 key `node_public_key` is sealed to (what
    outside clients are given to seal to). Raises `ValueError` for a key that is not a valid Ed25519 point."""
    try:
        return bytes(nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(node_public_key))
    except (nacl.exceptions.RuntimeError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        raise ValueError("not an Ed25519 public key that converts to X25519") from None


def seal_to_node(node_public_key: bytes, plaintext: bytes) -> bytes:
    """Seal `plaintext` so only the holder of the Ed25519 key `node_public_key` can read it: a sealed box to the
    X25519 key converted from it. Raises `ValueError` for a public key that is not a valid Ed25519 point."""
    return seal_to_inbox(node_box_key(node_public_key), plaintext)


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """This node's long-term signing key and the id derived from it."""

    key: SigningKey

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    @property
    def node_id(self) -> str:
        return derive_id("node", self.public_key)

    def sign(self, domain: str, message: bytes) -> bytes:
        return self.key.sign(domain, message)


def create_node_identity(path: Path) -> NodeIdentity:
    """Generate a node key and store it in a new 0600 file."""
    key = SigningKey.generate()
    create_key_file(path, NODE_KEY_PREFIX, key.seed)
    return NodeIdentity(key)


def load_node_identity(path: Path) -> NodeIdentity:
    return NodeIdentity(SigningKey(read_key_file(path, NODE_KEY_PREFIX, SEED_BYTES)))


def _framed(domain: str, message: bytes) -> bytes:
    if not domain or "\x00" in domain:
        raise ValueError("a signing domain is a non-empty string without NUL")
    return domain.encode("utf-8") + b"\x00" + message
