"""Secret files on disk: created 0600 atomically, refused when anyone but the owner could read them.

Key files hold one line, `<prefix>:<base64url>`, so a key of one kind can never be mistaken for another (the
prefix carries the kind and its version) and a truncated or edited file is caught on load.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path


class KeyFileError(Exception):
    """A key file is missing, unreadable, of the wrong kind, malformed, or readable by others."""


def create_key_file(path: Path, prefix: str, secret: bytes) -> None:
    """Write `secret` to a new file readable only by its owner; never overwrite an existing key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = f"{prefix}:{base64.urlsafe_b64encode(secret).decode('ascii')}\n".encode("ascii")
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        # link() fails if the target exists, so two processes initialising at once cannot clobber a key.
        os.link(tmp, path)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key") from None
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def read_key_file(path: Path, prefix: str, length: int) -> bytes:
    """Read a key written by `create_key_file`, checking owner-only permissions, kind and length."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"key file {path} is accessible by group or others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run: chmod 600 {path}"
        )
    text = path.read_text(encoding="ascii", errors="replace").strip()
    kind, sep, encoded = text.partition(":")
    if not sep or kind != prefix:
        raise KeyFileError(f"{path} is not a {prefix} key file")
    try:
        secret = base64.urlsafe_b64decode(encoded.encode("ascii"))
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{path} is damaged: the key is not valid base64url") from None
    if len(secret) != length:
        raise KeyFileError(f"{path} is damaged: expected a {length}-byte key, found {len(secret)} bytes")
    return secret


def decode_key_text(text: str, length: int, what: str) -> bytes:
    """Decode a key given as base64url or hex text (e.g. from an environment variable)."""
    text = text.strip()
    for decoder in (bytes.fromhex, lambda t: base64.urlsafe_b64decode(t.encode("ascii"))):
        try:
            secret = decoder(text)
        except (binascii.Error, ValueError):
            continue
        if len(secret) == length:
            return secret
    raise KeyFileError(f"{what} must be {length} bytes as hex or base64url")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
