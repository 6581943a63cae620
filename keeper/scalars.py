"""Arithmetic in the Ed25519 group and its scalar field: the keeper's one door to libsodium's group operations.

Everything here is a thin wrapper over pynacl's `crypto_core_ed25519_*` and `crypto_scalarmult_ed25519_*noclamp`
bindings, which run in constant time. Secret values (shares, coefficients, the dealt secret, proof nonces) only
ever pass through these wrappers: no Python-int arithmetic touches them, because Python's big integers take time
that depends on their value. Python ints appear only for public numbers (share x coordinates and their powers,
encoded with `scalar_from_int`).

Scalars are 32-byte little-endian integers below the group order `L`; points are 32-byte compressed Edwards
points. libsodium refuses a zero scalar or an identity result in a scalar multiplication; that surfaces here as
`Degenerate`, which callers turn into a verification failure (it never happens with honestly made values).
Polynomial evaluation and Lagrange interpolation over the field are here too, built from the same calls.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence

import nacl.bindings
import nacl.exceptions

L = 2**252 + 27742317777372353535851937790883648493
SCALAR_BYTES = 32
POINT_BYTES = 32
WIDE_BYTES = 64  # uniform draws are this wide, so reducing them mod L leaves a bias below 2^-250
_ZERO = bytes(SCALAR_BYTES)
_ONE = (1).to_bytes(SCALAR_BYTES, "little")

RandBytes = Callable[[int], bytes]


class Degenerate(ArithmeticError):
    """A scalar multiplication was refused: a zero scalar, an invalid point, or an identity result."""


def random_scalar(randbytes: RandBytes) -> bytes:
    """A uniform non-zero scalar: 64 random bytes reduced mod L (redrawn in the 2^-252 case of zero)."""
    while True:
        wide = randbytes(WIDE_BYTES)
        if len(wide) != WIDE_BYTES:
            raise ValueError("randbytes returned the wrong number of bytes")
        scalar = reduce_wide(wide)
        if not is_zero(scalar):
            return scalar


def reduce_wide(wide: bytes) -> bytes:
    """A 64-byte little-endian integer reduced mod L (how hashes and random draws become scalars)."""
    return bytes(nacl.bindings.crypto_core_ed25519_scalar_reduce(wide))


def scalar_from_int(value: int) -> bytes:
    """The scalar encoding of a PUBLIC integer in [0, L) (an x coordinate, a power of one)."""
    if not 0 <= value < L:
        raise ValueError("a scalar is an integer in [0, L)")
    return value.to_bytes(SCALAR_BYTES, "little")


def is_canonical(scalar: bytes) -> bool:
    """Whether `scalar` is 32 bytes encoding an integer below L, checked without branching on its value."""
    if len(scalar) != SCALAR_BYTES:
        return False
    return hmac.compare_digest(reduce_wide(scalar + _ZERO), scalar)


def is_zero(scalar: bytes) -> bool:
    return hmac.compare_digest(scalar, _ZERO)


def add(a: bytes, b: bytes) -> bytes:
    return bytes(nacl.bindings.crypto_core_ed25519_scalar_add(a, b))


def sub(a: bytes, b: bytes) -> bytes:
    return bytes(nacl.bindings.crypto_core_ed25519_scalar_sub(a, b))


def mul(a: bytes, b: bytes) -> bytes:
    return bytes(nacl.bindings.crypto_core_ed25519_scalar_mul(a, b))


def invert(a: bytes) -> bytes:
    """The multiplicative inverse mod L; `Degenerate` for zero."""
    try:
        return bytes(nacl.bindings.crypto_core_ed25519_scalar_invert(a))
    except nacl.exceptions.RuntimeError:
        raise Degenerate("zero has no inverse") from None


def base_mult(scalar: bytes) -> bytes:
    """scalar·G for the standard base point G; `Degenerate` for a zero scalar."""
    try:
        return bytes(nacl.bindings.crypto_scalarmult_ed25519_base_noclamp(scalar))
    except nacl.exceptions.RuntimeError:
        raise Degenerate("base multiplication by zero") from None


def point_mult(scalar: bytes, point: bytes) -> bytes:
    """scalar·point; `Degenerate` if the point is not a valid prime-order point, the scalar is zero, or the
    result is the identity."""
    try:
        return bytes(nacl.bindings.crypto_scalarmult_ed25519_noclamp(scalar, point))
    except nacl.exceptions.RuntimeError:
        raise Degenerate("scalar multiplication refused") from None


def point_add(p: bytes, q: bytes) -> bytes:
    """p + q; `Degenerate` if either is not a point on the curve. The identity is a possible (public) result."""
    try:
        return bytes(nacl.bindings.crypto_core_ed25519_add(p, q))
    except nacl.exceptions.RuntimeError:
        raise Degenerate("point addition refused") from None


def point_sub(p: bytes, q: bytes) -> bytes:
    try:
        return bytes(nacl.bindings.crypto_core_ed25519_sub(p, q))
    except nacl.exceptions.RuntimeError:
        raise Degenerate("point subtraction refused") from None


def is_valid_point(point: bytes) -> bool:
    """Whether `point` is a canonical encoding of a point in the prime-order subgroup other than the identity."""
    return len(point) == POINT_BYTES and bool(nacl.bindings.crypto_core_ed25519_is_valid_point(point))


def evaluate_polynomial(coefficients: Sequence[bytes], x: bytes) -> bytes:
    """f(x) for f = coefficients[0] + coefficients[1]·X + …, by Horner's rule (at least one coefficient)."""
    result = coefficients[-1]
    for a in reversed(coefficients[:-1]):
        result = add(mul(result, x), a)
    return result


def interpolate_at_zero(points: Sequence[tuple[int, bytes]]) -> bytes:
    """f(0) from (x, f(x)) pairs with distinct public x: Σ y_i·λ_i with λ_i = Π_(j≠i) x_j / (x_j - x_i)."""
    xs = [scalar_from_int(x) for x, _ in points]
    total = _ZERO
    for i, (_, y) in enumerate(points):
        numerator, denominator = _ONE, _ONE
        for j, x_j in enumerate(xs):
            if j != i:
                numerator = mul(numerator, x_j)
                denominator = mul(denominator, sub(x_j, xs[i]))
        total = add(total, mul(mul(numerator, invert(denominator)), y))
    return total
