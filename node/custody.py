"""Custody of epoch keys: the `Custody` protocol every mode implements, and `LocalCustody`.

The vault seals each epoch of a resident under a 32-byte epoch key; custody makes that key (`new_epoch_key`),
turns it into an opaque record the caller stores in the database (`seal_epoch_key`), and back (`open_epoch_key`).
In `local` mode the key is random and the record is the key wrapped (AES-256-GCM) by the node's master key, so the
operator of such a node can decrypt its residents, and the UI must say so; the record format is in
`docs/vault.md`. In `threshold` mode (`ftm.node.thresholdcustody`) the key is derived from a secret dealt to
keepers, and opening asks them for their shares; the format is in `docs/custody-host.md`.

Every caller that needs a key for a new epoch asks custody for it (`new_epoch_key`), then seals the epoch's vault
file, then seals the key: threshold custody binds the record to the vault file's Merkle root. A custody whose
epochs open only once (`opens_once`: keepers release each epoch once) makes whoever opened an epoch rotate to a new
one, whether or not what it opened for succeeded.

The master key lives in a 0600 key file (`ftm-master-key-v1:<base64url>`) or in the `FTM_MASTER_KEY`
environment variable; problems loading it are the operator's to fix and raise `ConfigurationError`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ftm.federation.keyfile import KeyFileError, create_key_file, decode_key_text, read_key_file
from ftm.node.errors import ConfigurationError, FtmError, IntegrityError
from ftm.node.vault import KEY_SIZE, MAX_EPOCH, new_epoch_key, resident_id_bytes

logger = logging.getLogger(__name__)

MASTER_KEY_PREFIX = "ftm-master-key-v1"
MASTER_KEY_ENV = "FTM_MASTER_KEY"
LOCAL_RECORD_VERSION = 1
_NONCE_SIZE = 12
_TAG_SIZE = 16
LOCAL_RECORD_SIZE = 1 + _NONCE_SIZE + KEY_SIZE + _TAG_SIZE


def is_local_record(record: bytes) -> bool:
    """Whether `record` has the shape of a local record (threshold custody still opens those it inherited)."""
    return len(record) == LOCAL_RECORD_SIZE and record[0] == LOCAL_RECORD_VERSION


_AAD_DOMAIN = b"ftm-custody-local-v1"


class CustodyIntegrityError(IntegrityError):
    """A custody record failed authentication, or is not a record this custody mode understands."""


class CustodyUnavailable(FtmError):
    """The key cannot be had now (too few keepers answered or released, or too few to deal to); try again later.
    Nothing is wrong with the stored data."""

    code = "custody_unavailable"


class Custody(Protocol):
    """Where epoch keys live between runs. `mode` names the scheme (shown to visitors and in node descriptors)."""

    mode: str
    opens_once: bool  # an opened epoch cannot be opened again: its opener must rotate to a new one

    async def new_epoch_key(self, resident_id: str, epoch: int) -> bytes:
        """A fresh key for (resident, epoch), to seal its vault file with and then pass to `seal_epoch_key`."""
        ...

    def epoch_stored(self) -> None:
        """A record from `seal_epoch_key` was committed to the database: custody may start working on it."""
        ...

    async def seal_epoch_key(self, resident_id: str, epoch: int, key: bytes) -> bytes:
        """Protect `key` for (resident, epoch); returns the opaque record the caller stores."""
        ...

    async def open_epoch_key(self, resident_id: str, epoch: int, record: bytes) -> bytes:
        """Recover the key from a record made by `seal_epoch_key` for the same resident and epoch."""
        ...


def _aad(resident_id: str, epoch: int) -> bytes:
    # Binding the resident and epoch means a record copied to another row of the database fails to open.
    if not 0 <= epoch <= MAX_EPOCH:
        raise ValueError("epoch must fit in an unsigned 64-bit integer")
    rid = resident_id_bytes(resident_id)
    return b"".join((_AAD_DOMAIN, bytes((LOCAL_RECORD_VERSION, len(rid))), rid, epoch.to_bytes(8, "big")))


class LocalCustody:
    """Epoch keys wrapped by the node's master key: record = version ‖ 12-byte nonce ‖ AES-256-GCM(key).

    The operations are a single AES-GCM call on 32 bytes (microseconds), so they run on the event loop; a thread
    hand-off would cost more than the work. `randbytes` exists only to reproduce the documented test vector.
    """

    mode: str = "local"
    opens_once: bool = False

    def __init__(self, master_key: bytes, *, randbytes: Callable[[int], bytes] = secrets.token_bytes) -> None:
        if len(master_key) != KEY_SIZE:
            raise ValueError(f"master key must be {KEY_SIZE} bytes")
        self._aead = AESGCM(master_key)
        self._randbytes = randbytes

    async def new_epoch_key(self, resident_id: str, epoch: int) -> bytes:
        return new_epoch_key()

    def epoch_stored(self) -> None:
        """Nothing to do: the record is complete once stored."""

    async def seal_epoch_key(self, resident_id: str, epoch: int, key: bytes) -> bytes:
        if len(key) != KEY_SIZE:
            raise ValueError(f"epoch key must be {KEY_SIZE} bytes")
        nonce = self._randbytes(_NONCE_SIZE)  # random is safe: far fewer than 2^32 records per master key
        wrapped = self._aead.encrypt(nonce, key, _aad(resident_id, epoch))
        return bytes((LOCAL_RECORD_VERSION,)) + nonce + wrapped

    async def open_epoch_key(self, resident_id: str, epoch: int, record: bytes) -> bytes:
        aad = _aad(resident_id, epoch)
        if len(record) != LOCAL_RECORD_SIZE or record[0] != LOCAL_RECORD_VERSION:
            logger.warning("malformed local custody record for resident %s epoch %d", resident_id, epoch)
            raise CustodyIntegrityError(
                f"the custody record for resident {resident_id} epoch {epoch} is not a version "
                f"{LOCAL_RECORD_VERSION} local record of {LOCAL_RECORD_SIZE} bytes"
            )
        try:
            return self._aead.decrypt(record[1 : 1 + _NONCE_SIZE], record[1 + _NONCE_SIZE :], aad)
        except InvalidTag:
            logger.warning("local custody record failed authentication: resident %s epoch %d", resident_id, epoch)
            raise CustodyIntegrityError(
                f"the custody record for resident {resident_id} epoch {epoch} failed authentication: wrong "
                "master key, a record belonging to another resident or epoch, or an altered record"
            ) from None


def create_master_key(path: Path) -> None:
    """Create a new random master key in a 0600 key file; refuses to overwrite an existing one."""
    try:
        create_key_file(path, MASTER_KEY_PREFIX, secrets.token_bytes(KEY_SIZE))
    except KeyFileError as exc:
        raise ConfigurationError(str(exc)) from None
    logger.info("created master key file %s", path)


def load_master_key(path: Path, env: Mapping[str, str]) -> bytes:
    """The master key from `FTM_MASTER_KEY` (hex or base64url) if set, else from the key file at `path`."""
    try:
        text = env.get(MASTER_KEY_ENV)
        if text is not None:
            return decode_key_text(text, KEY_SIZE, MASTER_KEY_ENV)
        return read_key_file(path, MASTER_KEY_PREFIX, KEY_SIZE)
    except KeyFileError as exc:
        raise ConfigurationError(str(exc)) from None
