"""The sealed-share box both sides of custody use: `SHARE_BOX_PREFIX ‖ share_binding(resident, epoch, x) ‖ value`
sealed to a key (docs/custody.md, "An epoch's life"). A host seals each keeper's share to that keeper's node key
(`seal_share_to_keeper`); a keeper opens it only in memory (`open_share`) and, on release, seals it again to the
requester's one-run ephemeral X25519 key (`seal_share_to_requester`). The binding makes a box copied to another
resident, epoch or x fail to open as that one.
"""

from __future__ import annotations

from ftm.federation.identity import BadSealedMessage, SigningKey, open_inbox, seal_to_inbox, seal_to_node
from ftm.keeper.protocol import SHARE_BOX_PREFIX, share_binding
from ftm.keeper.shares import Share, ShareError

SHARE_VALUE_BYTES = 32
EPHEMERAL_KEY_BYTES = 32


class ShareBoxError(ValueError):
    """A sealed share that does not open with this key, or opens to something else than the share it should be;
    the message says which, never what it holds."""


def _plaintext(resident_id: str, epoch: int, share: Share) -> bytes:
    return SHARE_BOX_PREFIX + share_binding(resident_id, epoch, share.x) + share.value


def seal_share_to_keeper(keeper_key: bytes, resident_id: str, epoch: int, share: Share) -> bytes:
    """The host's side: share `share` of this epoch sealed to the keeper whose Ed25519 key is `keeper_key`."""
    return seal_to_node(keeper_key, _plaintext(resident_id, epoch, share))


def seal_share_to_requester(ephemeral_key: bytes, resident_id: str, epoch: int, share: Share) -> bytes:
    """The keeper's side of a release: the share sealed to the requester's ephemeral X25519 key."""
    if type(ephemeral_key) is not bytes or len(ephemeral_key) != EPHEMERAL_KEY_BYTES:
        raise ShareBoxError(f"an ephemeral key is {EPHEMERAL_KEY_BYTES} bytes")
    return seal_to_inbox(ephemeral_key, _plaintext(resident_id, epoch, share))


def open_share(key: SigningKey, sealed: bytes, resident_id: str, epoch: int, x: int) -> Share:
    """Open a box sealed to `key` and check it holds share `x` of this resident's epoch."""
    try:
        plaintext = key.open_sealed(sealed)
    except BadSealedMessage:
        raise ShareBoxError("the sealed share does not open with this keeper's key") from None
    return _share(plaintext, resident_id, epoch, x)


def open_released_share(ephemeral_secret: bytes, sealed: bytes, resident_id: str, epoch: int, x: int) -> Share:
    """The requester's side of a release: open with the ephemeral X25519 secret and check the binding."""
    try:
        plaintext = open_inbox(ephemeral_secret, sealed)
    except BadSealedMessage:
        raise ShareBoxError("the released share does not open with this ephemeral key") from None
    return _share(plaintext, resident_id, epoch, x)


def _share(plaintext: bytes, resident_id: str, epoch: int, x: int) -> Share:
    expected = SHARE_BOX_PREFIX + share_binding(resident_id, epoch, x)
    if len(plaintext) != len(expected) + SHARE_VALUE_BYTES or plaintext[: len(expected)] != expected:
        raise ShareBoxError("the sealed share is bound to another resident, epoch or x")
    try:
        return Share(x, plaintext[len(expected) :])
    except ShareError:
        raise ShareBoxError("the sealed share's value is not a canonical scalar") from None
