"""Verifiable secret sharing for threshold custody: Shamir k-of-n over the Ed25519 scalar field with Feldman
commitments, the epoch key derived from the shared secret, and Schnorr proofs that a keeper still holds its share.

A dealer draws f(X) = a_0 + a_1·X + … + a_(k-1)·X^(k-1) with uniform non-zero coefficients (a_0 is the secret),
gives holder x the share f(x) for x = 1..n, and publishes the commitments C_j = a_j·G. Anyone can check a share
against the commitments, f(x)·G == Σ C_j·x^j, without learning it; any k verified shares give back a_0 by Lagrange
interpolation at 0; any k-1 shares are uniformly distributed whatever the secret (the commitments hide it only
computationally: C_0 = a_0·G). The vault key is HKDF of the secret bound to resident and epoch, never the scalar
itself. A keeper proves possession with a Schnorr proof of knowledge of s_x for the public share point
S_x = Σ C_j·x^j, bound to the host's nonce and the keeper's key id, so it proves without revealing.

Arithmetic on secret values goes through `ftm.keeper.scalars` (libsodium, constant time). Every operation here
takes well under a millisecond, so callers may run it on the event loop. Byte layouts are in `docs/custody.md`.

Errors (decoding errors come from the house codec, which wraps the messages below):

    ValueError
    ├── ShareError            unusable share material: bad encoding, duplicate x, a zero share to prove
    │   ├── ShareRejected     a share does not verify against the commitments; `.x` names it, `.reason` says why
    │   └── NotEnoughShares   fewer valid shares than the threshold
    └── codec.DecodeError     bytes that are not a valid Share, Commitments or ShareSet
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ftm.federation import codec
from ftm.keeper import scalars
from ftm.keeper.scalars import RandBytes

MAX_SHARES = 255  # x fits in one byte, and 255 keepers is far beyond any custody policy
EPOCH_KEY_BYTES = 32
PROOF_BYTES = 64
MIN_NONCE_BYTES = 16  # a host's challenge must be unguessable, or a keeper could precompute answers
MAX_LABEL_BYTES = 255  # nonce and binding are length-prefixed with one byte
COMMITMENTS_DOMAIN = b"ftm-commitments-v1\x00"
EPOCH_KEY_DOMAIN = b"ftm-epoch-key-v1\x00"
POSSESSION_DOMAIN = b"ftm-share-possession-v1\x00"
_ONE = scalars.scalar_from_int(1)
_ZERO = scalars.scalar_from_int(0)
_MAX_SHARE_MESSAGE = 128
_MAX_COMMITMENTS_MESSAGE = 16 * 1024
_MAX_SHARE_SET_MESSAGE = 64 * 1024


class ShareError(ValueError):
    """Share material that cannot be used; the message names the x or the field, never a value."""


class ShareRejected(ShareError):
    """A share failed verification against the commitments."""

    def __init__(self, x: int, reason: str) -> None:
        super().__init__(f"share x={x} rejected: {reason}")
        self.x = x
        self.reason = reason


class NotEnoughShares(ShareError):
    """Fewer valid shares than the threshold; `rejected` lists any that were dropped for failing verification."""

    def __init__(self, have: int, need: int, rejected: tuple[ShareRejected, ...] = ()) -> None:
        dropped = f" ({len(rejected)} rejected: x={', '.join(str(r.x) for r in rejected)})" if rejected else ""
        super().__init__(f"{have} valid shares, {need} needed{dropped}")
        self.have = have
        self.need = need
        self.rejected = rejected


def _check_x(x: object) -> None:
    if type(x) is not int or not 1 <= x <= MAX_SHARES:
        raise ShareError(f"a share's x is an integer from 1 to {MAX_SHARES}")


@dataclass(frozen=True, slots=True, eq=False)
class Secret:
    """The dealt secret: a non-zero canonical scalar. Its repr hides the value; equality is constant-time."""

    value: bytes

    def __post_init__(self) -> None:
        if type(self.value) is not bytes or not scalars.is_canonical(self.value):
            raise ShareError("a secret is a canonical 32-byte scalar (below L)")
        if scalars.is_zero(self.value):
            raise ShareError("a secret is non-zero")

    @classmethod
    def generate(cls, randbytes: RandBytes = secrets.token_bytes) -> Secret:
        return cls(scalars.random_scalar(randbytes))

    def __repr__(self) -> str:
        return "Secret(…)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.value, other.value)

    __hash__ = None  # type: ignore[assignment]  # secrets are not dict keys


@dataclass(frozen=True, slots=True, eq=False)
class Share:
    """One holder's share: x in 1..255 and the canonical scalar f(x). Its repr hides the value."""

    x: int
    value: bytes

    def __post_init__(self) -> None:
        _check_x(self.x)
        if type(self.value) is not bytes or not scalars.is_canonical(self.value):
            raise ShareError(f"share x={self.x}: the value is a canonical 32-byte scalar (below L)")

    def __repr__(self) -> str:
        return f"Share(x={self.x}, value=…)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Share):
            return NotImplemented
        return self.x == other.x and hmac.compare_digest(self.value, other.value)

    __hash__ = None  # type: ignore[assignment]

    def encode(self) -> bytes:
        return codec.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> Share:
        return codec.decode(cls, data, max_bytes=_MAX_SHARE_MESSAGE)


@dataclass(frozen=True, slots=True)
class Commitments:
    """The Feldman commitments C_0..C_(k-1) of one dealing; their count is the threshold k."""

    points: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if type(self.points) is not tuple or not 1 <= len(self.points) <= MAX_SHARES:
            raise ShareError(f"commitments are a tuple of 1 to {MAX_SHARES} points")
        for index, point in enumerate(self.points):
            if type(point) is not bytes or not scalars.is_valid_point(point):
                raise ShareError(f"commitment {index} is not a valid Ed25519 point of prime order")

    @property
    def threshold(self) -> int:
        return len(self.points)

    def digest(self) -> bytes:
        """SHA-256 over the domain, the count and the points: what a possession proof binds."""
        return hashlib.sha256(COMMITMENTS_DOMAIN + bytes([len(self.points)]) + b"".join(self.points)).digest()

    def encode(self) -> bytes:
        return codec.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> Commitments:
        return codec.decode(cls, data, max_bytes=_MAX_COMMITMENTS_MESSAGE)


@dataclass(frozen=True, slots=True)
class ShareSet:
    """Shares of one dealing with its commitments (a restore's harvest, or a keeper holding several shares).
    Construction checks the encoding and distinct x; verification is `combine`'s job."""

    commitments: Commitments
    shares: tuple[Share, ...]

    def __post_init__(self) -> None:
        if type(self.shares) is not tuple or not 1 <= len(self.shares) <= MAX_SHARES:
            raise ShareError(f"a share set holds 1 to {MAX_SHARES} shares")
        _check_distinct(self.shares)

    def encode(self) -> bytes:
        return codec.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> ShareSet:
        return codec.decode(cls, data, max_bytes=_MAX_SHARE_SET_MESSAGE)


@dataclass(frozen=True, slots=True)
class Dealing:
    """What the dealer made: the secret (kept only long enough to derive the key), n shares, the commitments."""

    secret: Secret
    shares: tuple[Share, ...]
    commitments: Commitments


def deal(k: int, n: int, *, secret: Secret | None = None, randbytes: RandBytes = secrets.token_bytes) -> Dealing:
    """Deal `secret` (a fresh one if None) k-of-n to holders x = 1..n.

    Coefficients are uniform non-zero scalars (64 random bytes reduced mod L); a dealing in which some share would
    be zero (probability n/L) is redrawn, because a zero share can neither be verified nor proved. `randbytes`
    exists only to reproduce the documented test vector.
    """
    if type(k) is not int or type(n) is not int or not 1 <= k <= n <= MAX_SHARES:
        raise ValueError(f"a dealing needs 1 <= k <= n <= {MAX_SHARES}")
    if secret is None:
        secret = Secret.generate(randbytes)
    xs = [scalars.scalar_from_int(x) for x in range(1, n + 1)]
    while True:
        coefficients = [secret.value, *(scalars.random_scalar(randbytes) for _ in range(k - 1))]
        values = [scalars.evaluate_polynomial(coefficients, x) for x in xs]
        zeros = [scalars.is_zero(value) for value in values]  # all of them: no early exit on a secret value
        if not any(zeros):
            break
    commitments = _made_commitments(tuple(scalars.base_mult(a) for a in coefficients))
    shares = tuple(Share(x, value) for x, value in enumerate(values, start=1))
    return Dealing(secret, shares, commitments)


def _made_commitments(points: tuple[bytes, ...]) -> Commitments:
    """Commitments just computed from non-zero scalars, which are valid points by construction: skips the point
    validation `Commitments` does for what arrives from elsewhere (60 µs a point, a third of a 3-of-5 dealing)."""
    commitments = object.__new__(Commitments)
    object.__setattr__(commitments, "points", points)
    return commitments


def public_share_point(x: int, commitments: Commitments) -> bytes:
    """S_x = Σ C_j·x^j = f(x)·G, the public image of holder x's share (possibly the identity for commitments a
    dishonest dealer chose; nothing then verifies against it)."""
    _check_x(x)
    point, power = commitments.points[0], 1
    for commitment in commitments.points[1:]:
        power = power * x % scalars.L  # public: x is public
        point = scalars.point_add(point, scalars.point_mult(scalars.scalar_from_int(power), commitment))
    return point


def _rejection(share: Share, commitments: Commitments) -> str | None:
    """Why `share` fails against `commitments`, or None if it verifies."""
    try:
        actual = scalars.base_mult(share.value)
    except scalars.Degenerate:
        return "the share value is zero"
    if not hmac.compare_digest(actual, public_share_point(share.x, commitments)):
        return "it does not match the commitments"
    return None


def verify_share(share: Share, commitments: Commitments) -> bool:
    """Whether share.value·G == Σ C_j·x^j."""
    return _rejection(share, commitments) is None


def combine(shares: Iterable[Share], commitments: Commitments) -> Secret:
    """The secret from at least k shares, every one of which must verify: the first that does not raises
    `ShareRejected` naming its x. Duplicate x raises `ShareError`; too few shares `NotEnoughShares`."""
    valid, rejected = _screen(shares, commitments)
    if rejected:
        raise rejected[0]
    if len(valid) < commitments.threshold:
        raise NotEnoughShares(len(valid), commitments.threshold)
    return _interpolate(valid[: commitments.threshold])


def combine_valid(shares: Iterable[Share], commitments: Commitments) -> tuple[Secret, tuple[ShareRejected, ...]]:
    """The secret from the shares that verify, and a `ShareRejected` for each one dropped. Raises
    `NotEnoughShares` (carrying the rejections) if fewer than k verify, `ShareError` for duplicate x."""
    valid, rejected = _screen(shares, commitments)
    if len(valid) < commitments.threshold:
        raise NotEnoughShares(len(valid), commitments.threshold, rejected)
    return _interpolate(valid[: commitments.threshold]), rejected


def _interpolate(shares: Sequence[Share]) -> Secret:
    return Secret(scalars.interpolate_at_zero([(share.x, share.value) for share in shares]))


def _screen(shares: Iterable[Share], commitments: Commitments) -> tuple[list[Share], tuple[ShareRejected, ...]]:
    """The shares that verify, in the order given, and a rejection for each that does not. All at once first;
    one by one, to name the culprits, only if that fails."""
    given = list(shares)
    _check_distinct(given)
    if _all_verify(given, commitments):
        return given, ()
    valid: list[Share] = []
    rejected: list[ShareRejected] = []
    for share in given:
        reason = _rejection(share, commitments)
        if reason is None:
            valid.append(share)
        else:
            rejected.append(ShareRejected(share.x, reason))
    return valid, tuple(rejected)


def _all_verify(shares: Sequence[Share], commitments: Commitments) -> bool:
    """Whether every share verifies, checked at once: with fresh random weights w_i,
    (Σ w_i·s_i)·G == Σ_j (Σ_i w_i·x_i^j)·C_j. That costs k scalar multiplications instead of k-1 per share,
    and passes with a bad share among the good only with probability 1/L. False means "look one by one"."""
    if len(shares) < 2:
        return len(shares) == 1 and verify_share(shares[0], commitments)
    weights = [scalars.random_scalar(secrets.token_bytes) for _ in shares]
    powers = [_ONE] * len(shares)  # x_i^j, public
    weighted_secret: bytes | None = None
    for weight, share in zip(weights, shares, strict=True):
        term = scalars.mul(weight, share.value)
        weighted_secret = term if weighted_secret is None else scalars.add(weighted_secret, term)
    assert weighted_secret is not None
    expected: bytes | None = None
    try:
        for j, commitment in enumerate(commitments.points):
            if j:
                powers = [scalars.scalar_from_int(pow(share.x, j, scalars.L)) for share in shares]
            combined = _ZERO
            for weight, power in zip(weights, powers, strict=True):
                combined = scalars.add(combined, scalars.mul(weight, power))
            term = scalars.point_mult(combined, commitment)
            expected = term if expected is None else scalars.point_add(expected, term)
        actual = scalars.base_mult(weighted_secret)
    except scalars.Degenerate:  # a zero share sum or weight sum (probability 2^-252), or a zero share
        return False
    assert expected is not None
    return hmac.compare_digest(actual, expected)


def _check_distinct(shares: Sequence[Share]) -> None:
    seen: set[int] = set()
    for share in shares:
        if share.x in seen:
            raise ShareError(f"two shares have x={share.x}")
        seen.add(share.x)


def epoch_context(resident_id: str, epoch: int) -> bytes:
    """The HKDF context threshold custody uses: len(id) ‖ UTF-8 resident id ‖ epoch as 8 bytes big-endian."""
    rid = resident_id.encode("utf-8")
    if not 1 <= len(rid) <= MAX_LABEL_BYTES or not 0 <= epoch < 1 << 64:
        raise ValueError("a resident id is 1 to 255 bytes and an epoch fits in 64 bits")
    return bytes([len(rid)]) + rid + epoch.to_bytes(8, "big")


def derive_epoch_key(secret: Secret, *, context: bytes) -> bytes:
    """The 32-byte epoch key: HKDF-SHA256 of the secret scalar, no salt, info = EPOCH_KEY_DOMAIN ‖ context.

    The context (see `epoch_context`) binds the key to one resident and epoch, so one secret can never yield the
    same key for two purposes."""
    if type(context) is not bytes or not context:
        raise ValueError("an epoch key needs a non-empty context")
    return HKDF(SHA256(), EPOCH_KEY_BYTES, None, EPOCH_KEY_DOMAIN + context).derive(secret.value)


def prove_possession(
    share: Share,
    commitments: Commitments,
    *,
    nonce: bytes,
    binding: bytes,
    randbytes: RandBytes = secrets.token_bytes,
) -> bytes:
    """A 64-byte Schnorr proof R ‖ z that the holder knows s with s·G = S_x, for the host's `nonce` and the
    keeper's key id `binding`: R = r·G, c = H(transcript ‖ R), z = r + c·s.

    The nonce r is drawn fresh (64 random bytes reduced mod L), never derived deterministically as Ed25519 does.
    Two proofs with the same r and different challenges give the share away (s = (z1 - z2) / (c1 - c2)). A
    derived r repeats whenever its derivation covers less than the challenge does (a field left out, an encoding
    changed between versions), and a fault during the computation of c yields such a pair from one derivation;
    both are known breaks of deterministic Schnorr. A share also has no separate nonce key to derive from. A fresh
    draw repeats with probability about 2^-252 and trusts only the generator that dealt the share. `randbytes`
    exists only to reproduce the documented test vector."""
    _check_labels(nonce, binding)
    try:
        public = scalars.base_mult(share.value)
    except scalars.Degenerate:
        raise ShareError(f"share x={share.x} is zero and cannot be proved") from None
    prefix = _transcript_prefix(nonce, binding, share.x, commitments, public)
    while True:
        r = scalars.random_scalar(randbytes)
        commitment = scalars.base_mult(r)
        z = scalars.add(r, scalars.mul(_challenge(prefix, commitment), share.value))
        if not scalars.is_zero(z):  # z = 0 (probability 2^-252) cannot be checked: z·G is refused
            return commitment + z


def verify_possession(proof: bytes, x: int, commitments: Commitments, *, nonce: bytes, binding: bytes) -> bool:
    """Whether `proof` shows knowledge of holder x's share for this nonce and binding: z·G - c·S_x == R."""
    _check_labels(nonce, binding)
    if type(proof) is not bytes or len(proof) != PROOF_BYTES:
        return False
    commitment, z = proof[:32], proof[32:]
    if not scalars.is_canonical(z):
        return False  # a non-canonical z would make proofs malleable
    public = public_share_point(x, commitments)
    c = _challenge(_transcript_prefix(nonce, binding, x, commitments, public), commitment)
    try:
        expected = scalars.point_sub(scalars.base_mult(z), scalars.point_mult(c, public))
    except scalars.Degenerate:
        return False
    return hmac.compare_digest(expected, commitment)


def _check_labels(nonce: bytes, binding: bytes) -> None:
    if type(nonce) is not bytes or not MIN_NONCE_BYTES <= len(nonce) <= MAX_LABEL_BYTES:
        raise ValueError(f"a possession nonce is {MIN_NONCE_BYTES} to {MAX_LABEL_BYTES} bytes")
    if type(binding) is not bytes or not 1 <= len(binding) <= MAX_LABEL_BYTES:
        raise ValueError(f"a possession binding is 1 to {MAX_LABEL_BYTES} bytes")


def _transcript_prefix(nonce: bytes, binding: bytes, x: int, commitments: Commitments, public: bytes) -> bytes:
    return b"".join(
        (
            POSSESSION_DOMAIN,
            bytes([len(nonce)]),
            nonce,
            bytes([len(binding)]),
            binding,
            bytes([x]),
            commitments.digest(),
            public,
        )
    )


def _challenge(prefix: bytes, commitment: bytes) -> bytes:
    return scalars.reduce_wide(hashlib.sha512(prefix + commitment).digest())
