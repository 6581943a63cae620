"""Verifiable secret sharing: reconstruction from any k shares, secrecy of k-1, detection and naming of bad shares
and commitments, possession proofs, strict encodings, the epoch key, and the worked example in docs/custody.md.

Checks of the arithmetic are made independently here with Python integers mod L (allowed in tests: nothing here
is a secret), so the module and the document are held against a second implementation of the same math.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import msgpack
import nacl.bindings
import pytest
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from ftm.federation.codec import DecodeError
from ftm.keeper import scalars
from ftm.keeper.scalars import L
from ftm.keeper.shares import (
    Commitments,
    NotEnoughShares,
    Secret,
    Share,
    ShareError,
    ShareRejected,
    ShareSet,
    combine,
    combine_valid,
    deal,
    derive_epoch_key,
    epoch_context,
    prove_possession,
    public_share_point,
    verify_possession,
    verify_share,
)

NONCE = bytes(range(16))
BINDING = b"keeper-key-id"
G = nacl.bindings.crypto_scalarmult_ed25519_base_noclamp(scalars.scalar_from_int(1))


# Helpers: integers mod L, and randomness the test controls


def to_int(scalar: bytes) -> int:
    return int.from_bytes(scalar, "little")


def scalar(value: int) -> bytes:
    return (value % L).to_bytes(32, "little")


def scripted(*draws: bytes) -> Callable[[int], bytes]:
    """A `randbytes` that returns these 64-byte draws in order, and fails if asked for more."""
    queue = list(draws)

    def randbytes(size: int) -> bytes:
        assert size == 64 and queue, "unexpected draw"
        return queue.pop(0)

    return randbytes


def wide(value: int) -> bytes:
    """A 64-byte draw that reduces to exactly `value`."""
    return scalar(value) + bytes(32)


def vector_randbytes() -> Callable[[int], bytes]:
    """The draws of the worked example in docs/custody.md: the i-th is SHA-512("ftm-custody-vector" ‖ byte i)."""
    count = 0

    def randbytes(size: int) -> bytes:
        nonlocal count
        assert size == 64
        draw = hashlib.sha512(b"ftm-custody-vector" + bytes([count])).digest()
        count += 1
        return draw

    return randbytes


def lagrange_at_zero(points: Sequence[tuple[int, int]]) -> int:
    """f(0) from (x, f(x)) pairs, with Python integers: the independent check of `combine`."""
    total = 0
    for i, (x_i, y_i) in enumerate(points):
        numerator, denominator = 1, 1
        for j, (x_j, _) in enumerate(points):
            if j != i:
                numerator = numerator * x_j % L
                denominator = denominator * (x_j - x_i) % L
        total = (total + y_i * numerator * pow(denominator, -1, L)) % L
    return total


def poly_times_linear(poly: list[int], root: int) -> list[int]:
    """poly(X)·(X - root), coefficients lowest first."""
    out = [0] * (len(poly) + 1)
    for j, a in enumerate(poly):
        out[j + 1] = (out[j + 1] + a) % L
        out[j] = (out[j] - a * root) % L
    return out


def coefficients_through(secret: int, points: Sequence[tuple[int, int]]) -> list[int]:
    """a_1..a_(k-1) of the unique f with f(0) = secret and f(x) = y at the k-1 given points.

    f(X) = secret + X·h(X), where h (degree k-2) passes through (x, (y - secret)/x): Lagrange in coefficient form.
    """
    h = [0] * len(points)
    for i, (x_i, y_i) in enumerate(points):
        target = (y_i - secret) * pow(x_i, -1, L) % L
        basis, denominator = [1], 1
        for j, (x_j, _) in enumerate(points):
            if j != i:
                basis = poly_times_linear(basis, x_j)
                denominator = denominator * (x_i - x_j) % L
        factor = target * pow(denominator, -1, L) % L
        for j, b in enumerate(basis):
            h[j] = (h[j] + b * factor) % L
    return h


def flip(data: bytes, index: int = 0, bit: int = 1) -> bytes:
    return data[:index] + bytes([data[index] ^ bit]) + data[index + 1 :]


def point_of(value: int) -> bytes:
    return scalars.base_mult(scalar(value))


# Dealing and reconstruction


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_k_of_n_shares_reconstruct_the_secret(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 9), label="n")
    k = data.draw(st.integers(1, n), label="k")
    dealing = deal(k, n)
    chosen = data.draw(st.lists(st.sampled_from(dealing.shares), min_size=k, max_size=n, unique_by=lambda s: s.x))
    assert combine(chosen, dealing.commitments) == dealing.secret
    assert combine_valid(chosen, dealing.commitments) == (dealing.secret, ())
    assert all(verify_share(share, dealing.commitments) for share in chosen)
    # The same answer from the documented math alone: Lagrange at 0 over the integers mod L.
    assert lagrange_at_zero([(s.x, to_int(s.value)) for s in chosen[:k]]) == to_int(dealing.secret.value)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, L - 1), st.integers(1, 6), st.integers(0, 3))
def test_a_given_secret_is_dealt_and_its_commitment_is_secret_times_g(value: int, k: int, extra: int) -> None:
    secret = Secret(scalar(value))
    dealing = deal(k, k + extra, secret=secret)
    assert dealing.secret == secret
    assert dealing.commitments.threshold == k and [s.x for s in dealing.shares] == list(range(1, k + extra + 1))
    assert dealing.commitments.points[0] == point_of(value)
    assert combine(dealing.shares[extra:], dealing.commitments) == secret


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_k_minus_1_shares_are_consistent_with_every_secret(data: st.DataObject) -> None:
    """Secrecy of k-1 shares, shown constructively: for the k-1 shares of a dealing of A and ANY other secret B,
    the dealer's own code, fed the right coefficients, deals B with exactly those k-1 shares. For a fixed secret
    the map from (a_1..a_(k-1)) to the k-1 share values is therefore onto, and so (both sides have L^(k-1)
    elements) a bijection: uniform coefficients give uniformly distributed shares, whatever the secret."""
    n = data.draw(st.integers(2, 7), label="n")
    k = data.draw(st.integers(2, n), label="k")
    dealing = deal(k, n)
    seen = data.draw(st.lists(st.sampled_from(dealing.shares), min_size=k - 1, max_size=k - 1, unique_by=lambda s: s.x))
    other = data.draw(st.integers(1, L - 1).filter(lambda v: v != to_int(dealing.secret.value)), label="B")
    coefficients = coefficients_through(other, [(s.x, to_int(s.value)) for s in seen])
    twin = deal(k, n, secret=Secret(scalar(other)), randbytes=scripted(*(wide(a) for a in coefficients)))
    twin_shares = {share.x: share for share in twin.shares}
    assert all(twin_shares[share.x] == share for share in seen)
    assert all(verify_share(share, twin.commitments) for share in twin.shares)
    # The k-1 shares complete to either secret, depending only on the one share they lack.
    missing = next(share for share in dealing.shares if share.x not in {s.x for s in seen})
    assert combine([*seen, missing], dealing.commitments) == dealing.secret
    assert combine([*seen, twin_shares[missing.x]], twin.commitments) == Secret(scalar(other))


def test_one_of_n_gives_every_holder_the_secret_and_255_holders_are_allowed() -> None:
    single = deal(1, 4)
    assert all(share.value == single.secret.value for share in single.shares)
    wide_dealing = deal(3, 255)
    last = wide_dealing.shares[-3:]
    assert [s.x for s in last] == [253, 254, 255]
    assert combine(last, wide_dealing.commitments) == wide_dealing.secret


def test_the_largest_threshold_reconstructs() -> None:
    dealing = deal(255, 255)
    assert combine(dealing.shares, dealing.commitments) == dealing.secret


@pytest.mark.parametrize(("k", "n"), [(0, 3), (4, 3), (1, 256), (-1, 2), (True, 2), (2, 2.0)])
def test_deal_refuses_impossible_thresholds(k: object, n: object) -> None:
    with pytest.raises(ValueError, match="1 <= k <= n <= 255"):
        deal(k, n)  # type: ignore[arg-type]


def test_a_dealing_that_would_give_a_zero_share_is_redrawn() -> None:
    """A zero share can be neither verified nor proved (libsodium refuses 0·G), so the dealer redraws: here the
    first a_1 makes f(1) = s + a_1 = 0, and a zero draw for a coefficient is skipped too."""
    s = 12345
    draws = [wide(s), wide(-s), bytes(64), wide(777)]
    dealing = deal(2, 3, randbytes=scripted(*draws))
    assert [to_int(share.value) for share in dealing.shares] == [(s + 777 * x) % L for x in (1, 2, 3)]
    assert dealing.commitments.points == (point_of(s), point_of(777))


def test_coefficients_are_64_byte_draws_reduced_mod_l() -> None:
    big = (1 << 512) - 1  # reduces to a value no 32-byte draw could encode directly
    dealing = deal(2, 2, randbytes=scripted(big.to_bytes(64, "little"), wide(5)))
    assert to_int(dealing.secret.value) == big % L
    assert to_int(dealing.shares[0].value) == (big + 5) % L


# Bad shares are detected and named


def test_a_flipped_bit_in_a_share_is_named() -> None:
    dealing = deal(3, 5)
    shares = list(dealing.shares[:4])
    shares[2] = Share(3, flip(shares[2].value))
    with pytest.raises(ShareRejected, match="share x=3 rejected") as caught:
        combine(shares, dealing.commitments)
    assert caught.value.x == 3 and "commitments" in caught.value.reason
    assert not verify_share(shares[2], dealing.commitments)


def test_a_share_under_the_wrong_x_is_named() -> None:
    dealing = deal(2, 4)
    moved = Share(4, dealing.shares[2].value)
    with pytest.raises(ShareRejected) as caught:
        combine([dealing.shares[0], moved], dealing.commitments)
    assert caught.value.x == 4


def test_a_share_from_another_dealing_is_named() -> None:
    dealing, other = deal(3, 5), deal(3, 5)
    with pytest.raises(ShareRejected) as caught:
        combine([dealing.shares[0], other.shares[1], dealing.shares[2]], dealing.commitments)
    assert caught.value.x == 2


def test_a_zero_share_is_rejected_with_its_reason() -> None:
    dealing = deal(2, 3)
    with pytest.raises(ShareRejected, match="zero") as caught:
        combine([Share(1, bytes(32)), dealing.shares[1]], dealing.commitments)
    assert caught.value.x == 1


def test_strict_combine_names_a_bad_share_even_beyond_the_threshold() -> None:
    dealing = deal(2, 5)
    shares = [*dealing.shares[:4], Share(5, flip(dealing.shares[4].value, 5))]
    with pytest.raises(ShareRejected) as caught:
        combine(shares, dealing.commitments)
    assert caught.value.x == 5


def test_combine_valid_drops_bad_shares_and_says_which() -> None:
    dealing = deal(3, 5)
    shares = [dealing.shares[0], Share(2, flip(dealing.shares[1].value)), *dealing.shares[2:]]
    secret, rejected = combine_valid(shares, dealing.commitments)
    assert secret == dealing.secret
    assert [(r.x, r.reason) for r in rejected] == [(2, "it does not match the commitments")]


def test_too_few_valid_shares_is_an_error_carrying_the_rejections() -> None:
    dealing = deal(3, 5)
    shares = [dealing.shares[0], Share(2, flip(dealing.shares[1].value)), dealing.shares[2]]
    with pytest.raises(NotEnoughShares, match="2 valid shares, 3 needed") as caught:
        combine_valid(shares, dealing.commitments)
    assert [r.x for r in caught.value.rejected] == [2]
    with pytest.raises(NotEnoughShares, match="2 valid shares, 3 needed"):
        combine(dealing.shares[:2], dealing.commitments)
    with pytest.raises(NotEnoughShares):
        combine([], dealing.commitments)


@pytest.mark.parametrize("combiner", [combine, combine_valid])
def test_duplicate_x_is_refused(combiner: Callable[..., object]) -> None:
    dealing = deal(2, 3)
    with pytest.raises(ShareError, match="two shares have x=2"):
        combiner([dealing.shares[1], dealing.shares[0], dealing.shares[1]], dealing.commitments)


def test_x_zero_or_beyond_255_cannot_be_a_share() -> None:
    value = deal(1, 1).shares[0].value
    for x in (0, 256, -1, True):
        with pytest.raises(ShareError, match="from 1 to 255"):
            Share(x, value)
    with pytest.raises(ShareError, match="from 1 to 255"):
        public_share_point(0, deal(1, 1).commitments)


# Tampered commitments are detected


def test_a_replaced_commitment_fails_every_share_that_depends_on_it() -> None:
    dealing = deal(3, 5)
    points = list(dealing.commitments.points)
    points[1] = point_of(99)
    forged = Commitments(tuple(points))
    assert not any(verify_share(share, forged) for share in dealing.shares)
    with pytest.raises(ShareRejected) as caught:
        combine(dealing.shares[:3], forged)
    assert caught.value.x == 1


def test_reordered_or_truncated_commitments_fail() -> None:
    dealing = deal(3, 4)
    swapped = Commitments(dealing.commitments.points[::-1])
    truncated = Commitments(dealing.commitments.points[:2])
    # At x = 1 every ordering sums to the same point, so a reversal shows from x = 2 on.
    assert verify_share(dealing.shares[0], swapped)
    assert not any(verify_share(share, swapped) for share in dealing.shares[1:])
    assert not any(verify_share(share, truncated) for share in dealing.shares)
    with pytest.raises(ShareRejected):
        combine(dealing.shares, truncated)


def test_commitments_whose_share_point_is_the_identity_verify_nothing() -> None:
    """A dishonest dealer can make S_1 = C_0 + C_1 the identity; nothing then verifies, and nothing crashes."""
    forged = Commitments((point_of(7), point_of(-7)))
    assert public_share_point(1, forged) == scalars.scalar_from_int(1)  # the identity's encoding
    assert not verify_share(Share(1, scalar(1)), forged)
    proof = prove_possession(Share(1, scalar(1)), forged, nonce=NONCE, binding=BINDING)
    assert not verify_possession(proof, 1, forged, nonce=NONCE, binding=BINDING)


# Possession proofs


def test_a_possession_proof_verifies_only_in_its_own_context() -> None:
    dealing, other = deal(3, 5), deal(3, 5)
    share = dealing.shares[3]
    proof = prove_possession(share, dealing.commitments, nonce=NONCE, binding=BINDING)
    assert len(proof) == 64
    assert verify_possession(proof, 4, dealing.commitments, nonce=NONCE, binding=BINDING)
    assert not verify_possession(proof, 4, dealing.commitments, nonce=bytes(16), binding=BINDING)
    assert not verify_possession(proof, 4, dealing.commitments, nonce=NONCE, binding=b"another-keeper")
    assert not verify_possession(proof, 3, dealing.commitments, nonce=NONCE, binding=BINDING)
    assert not verify_possession(proof, 4, other.commitments, nonce=NONCE, binding=BINDING)


def test_a_proof_from_the_wrong_share_fails() -> None:
    dealing, other = deal(2, 3), deal(2, 3)
    for share in (Share(1, dealing.shares[1].value), Share(1, other.shares[0].value)):
        proof = prove_possession(share, dealing.commitments, nonce=NONCE, binding=BINDING)
        assert not verify_possession(proof, 1, dealing.commitments, nonce=NONCE, binding=BINDING)


def test_a_tampered_or_malformed_proof_fails() -> None:
    dealing = deal(2, 3)
    proof = prove_possession(dealing.shares[0], dealing.commitments, nonce=NONCE, binding=BINDING)
    z = to_int(proof[32:])
    bad = [
        flip(proof, 0),
        flip(proof, 40),
        proof[:32] + (z + L).to_bytes(32, "little"),  # the same z, not reduced: malleability refused
        proof[:32] + bytes(32),
        proof[:63],
        proof + b"\x00",
        bytes(64),
    ]
    for candidate in bad:
        assert not verify_possession(candidate, 1, dealing.commitments, nonce=NONCE, binding=BINDING)


def test_possession_proofs_are_randomised_and_each_verifies() -> None:
    dealing = deal(2, 3)
    proofs = {prove_possession(dealing.shares[0], dealing.commitments, nonce=NONCE, binding=BINDING) for _ in "ab"}
    assert len(proofs) == 2
    assert all(verify_possession(p, 1, dealing.commitments, nonce=NONCE, binding=BINDING) for p in proofs)


def test_a_repeated_proof_nonce_would_reveal_the_share() -> None:
    """Why r is drawn fresh: the same r under two challenges gives s = (z1 - z2) / (c1 - c2)."""
    dealing = deal(2, 3)
    share, r = dealing.shares[0], wide(424242)
    first = prove_possession(share, dealing.commitments, nonce=NONCE, binding=BINDING, randbytes=scripted(r))
    second = prove_possession(share, dealing.commitments, nonce=bytes(16), binding=BINDING, randbytes=scripted(r))
    public = public_share_point(1, dealing.commitments)
    c1, c2 = (
        transcript_challenge(nonce, BINDING, 1, dealing.commitments, public, first[:32]) for nonce in (NONCE, bytes(16))
    )
    recovered = (to_int(first[32:]) - to_int(second[32:])) * pow(c1 - c2, -1, L) % L
    assert recovered == to_int(share.value)


def transcript_challenge(
    nonce: bytes, binding: bytes, x: int, commitments: Commitments, public: bytes, commitment: bytes
) -> int:
    """c as docs/custody.md lays out the transcript, written from the document alone."""
    digest = hashlib.sha256(
        b"ftm-commitments-v1\x00" + bytes([len(commitments.points)]) + b"".join(commitments.points)
    ).digest()
    transcript = b"ftm-share-possession-v1\x00" + bytes([len(nonce)]) + nonce + bytes([len(binding)]) + binding
    transcript += bytes([x]) + digest + public + commitment
    return int.from_bytes(hashlib.sha512(transcript).digest(), "little") % L


def test_a_proof_satisfies_the_documented_equation() -> None:
    dealing = deal(3, 5)
    proof = prove_possession(dealing.shares[4], dealing.commitments, nonce=NONCE, binding=BINDING)
    commitment, z = proof[:32], proof[32:]
    public = public_share_point(5, dealing.commitments)
    c = transcript_challenge(NONCE, BINDING, 5, dealing.commitments, public, commitment)
    assert scalars.base_mult(z) == scalars.point_add(commitment, scalars.point_mult(scalar(c), public))
    assert public == scalars.base_mult(dealing.shares[4].value)


def test_possession_arguments_are_checked() -> None:
    dealing = deal(2, 3)
    share, commitments = dealing.shares[0], dealing.commitments
    with pytest.raises(ValueError, match="nonce is 16 to 255 bytes"):
        prove_possession(share, commitments, nonce=bytes(15), binding=BINDING)
    with pytest.raises(ValueError, match="binding is 1 to 255 bytes"):
        verify_possession(bytes(64), 1, commitments, nonce=NONCE, binding=b"")
    with pytest.raises(ValueError, match="binding is 1 to 255 bytes"):
        prove_possession(share, commitments, nonce=NONCE, binding=bytes(256))
    with pytest.raises(ShareError, match="zero"):
        prove_possession(Share(1, bytes(32)), commitments, nonce=NONCE, binding=BINDING)


# Encodings


def test_shares_commitments_and_share_sets_round_trip() -> None:
    dealing = deal(3, 5)
    for share in dealing.shares:
        assert Share.decode(share.encode()) == share
    assert Commitments.decode(dealing.commitments.encode()) == dealing.commitments
    bundle = ShareSet(dealing.commitments, dealing.shares[1:4])
    assert ShareSet.decode(bundle.encode()) == bundle
    assert msgpack.unpackb(dealing.shares[0].encode()) == {"x": 1, "value": dealing.shares[0].value}
    value = dealing.shares[0].value  # the layout docs/custody.md gives, both sizes of x
    assert Share(127, value).encode() == bytes.fromhex("82a1787fa576616c7565c420") + value
    assert Share(200, value).encode() == bytes.fromhex("82a178ccc8a576616c7565c420") + value


def pack(value: object) -> bytes:
    packed = msgpack.packb(value, use_bin_type=True)
    assert isinstance(packed, bytes)
    return packed


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"x": 1, "value": L.to_bytes(32, "little")}, "canonical 32-byte scalar"),
        ({"x": 1, "value": b"\xff" * 32}, "canonical 32-byte scalar"),
        ({"x": 1, "value": bytes(31)}, "canonical 32-byte scalar"),
        ({"x": 1, "value": bytes(33)}, "canonical 32-byte scalar"),
        ({"x": 0, "value": bytes(32)}, "from 1 to 255"),
        ({"x": 256, "value": bytes(32)}, "from 1 to 255"),
        ({"x": True, "value": bytes(32)}, "expected an integer"),
        ({"x": 1, "value": "text"}, "expected bytes"),
        ({"x": 1}, "missing field 'value'"),
        ({"x": 1, "value": bytes(32), "extra": 1}, "unknown field 'extra'"),
    ],
)
def test_share_decoding_is_strict(fields: dict[str, object], message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        Share.decode(pack(fields))


def test_decode_errors_never_echo_the_value() -> None:
    secret_looking = bytes(range(200, 232))
    with pytest.raises(DecodeError) as caught:
        Share.decode(pack({"x": 0, "value": secret_looking}))
    assert secret_looking.hex() not in str(caught.value) and "200" not in str(caught.value)


SMALL_ORDER = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")  # order 8
NOT_ON_CURVE = bytes.fromhex("02" + "00" * 31)  # y = 2 has no x on the curve


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([], "1 to 255 points"),
        ([G] * 256, "1 to 255 points"),
        ([G, NOT_ON_CURVE], "commitment 1 is not a valid"),
        ([SMALL_ORDER], "commitment 0 is not a valid"),
        ([scalars.scalar_from_int(1)], "commitment 0 is not a valid"),  # the identity
        ([G, G[:31]], "commitment 1 is not a valid"),
        ([G, G + b"\x00"], "commitment 1 is not a valid"),
        ([G, 5], "expected bytes"),
    ],
)
def test_commitment_decoding_is_strict(points: list[bytes], message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        Commitments.decode(pack({"points": points}))


def test_a_non_canonical_point_encoding_is_refused() -> None:
    """y = p + 1 encodes y = 1 (a field element not reduced); libsodium's validity check refuses it."""
    p = (1 << 255) - 19
    non_canonical = (p + 1).to_bytes(32, "little")
    with pytest.raises(DecodeError, match="commitment 0 is not a valid"):
        Commitments.decode(pack({"points": [non_canonical]}))


def test_share_set_decoding_refuses_duplicate_x_and_bad_members() -> None:
    dealing = deal(2, 3)
    commitments = {"points": list(dealing.commitments.points)}
    one = {"x": 1, "value": dealing.shares[0].value}
    with pytest.raises(DecodeError, match="two shares have x=1"):
        ShareSet.decode(pack({"commitments": commitments, "shares": [one, one]}))
    with pytest.raises(DecodeError, match=r"shares\[1\].*from 1 to 255"):
        ShareSet.decode(pack({"commitments": commitments, "shares": [one, {"x": 0, "value": bytes(32)}]}))
    with pytest.raises(DecodeError, match="1 to 255 shares"):
        ShareSet.decode(pack({"commitments": commitments, "shares": []}))
    with pytest.raises(DecodeError, match=r"commitments.*not a valid"):
        ShareSet.decode(pack({"commitments": {"points": [SMALL_ORDER]}, "shares": [one]}))


def test_oversized_messages_are_refused_before_parsing() -> None:
    with pytest.raises(DecodeError, match="more than the limit"):
        Share.decode(pack({"x": 1, "value": bytes(200)}))


# Secrets stay out of reprs


def test_reprs_never_show_secret_values() -> None:
    dealing = deal(3, 5)
    text = repr(dealing) + str(dealing) + repr(dealing.shares[0]) + repr(dealing.secret)
    for value in (dealing.secret.value, *(share.value for share in dealing.shares)):
        assert value.hex() not in text and repr(value) not in text
    assert repr(dealing.shares[0]) == "Share(x=1, value=…)"


def test_secrets_compare_by_value_and_refuse_bad_encodings() -> None:
    assert Secret(scalar(5)) == Secret(scalar(5)) and Secret(scalar(5)) != Secret(scalar(6))
    assert Share(1, scalar(5)) != Share(2, scalar(5))
    for bad in (bytes(32), L.to_bytes(32, "little"), bytes(31)):
        with pytest.raises(ShareError):
            Secret(bad)


# The epoch key


def test_the_epoch_key_is_hkdf_of_the_secret_bound_to_its_context() -> None:
    secret = Secret(scalar(987654321))
    context = epoch_context("lumen", 7)
    key = derive_epoch_key(secret, context=context)
    assert key == derive_epoch_key(Secret(scalar(987654321)), context=context)
    assert key == HKDF(SHA256(), 32, None, b"ftm-epoch-key-v1\x00" + context).derive(secret.value)
    others = {
        derive_epoch_key(secret, context=epoch_context("lumen", 8)),
        derive_epoch_key(secret, context=epoch_context("lumen2", 7)),
        derive_epoch_key(Secret(scalar(987654322)), context=context),
    }
    assert key not in others and len(others) == 3
    assert context == b"\x05lumen" + (7).to_bytes(8, "big")


def test_epoch_key_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="non-empty context"):
        derive_epoch_key(Secret(scalar(1)), context=b"")
    with pytest.raises(ValueError, match="resident id is 1 to 255 bytes"):
        epoch_context("", 1)
    with pytest.raises(ValueError, match="64 bits"):
        epoch_context("lumen", 1 << 64)


# The worked example in docs/custody.md


def test_the_worked_example_in_the_specification() -> None:
    """docs/custody.md quotes these bytes; an independent implementation checks itself against them."""
    randbytes = vector_randbytes()
    dealing = deal(2, 3, randbytes=randbytes)
    assert dealing.secret.value.hex() == "fdf34b054b39d5d28000d22aee7a9b5f64ff46f644e173bf7a01d01c5fc1dd09"
    assert [share.value.hex() for share in dealing.shares] == [
        "297557e29b270cbb2bddbd5aa268cc5379aede0a1e1226891357589fcadd2b00",
        "42ca581c077955fbac56a12d3550dc5c8e5d761ff742d852acace02136fa7906",
        "5b1f5a5672ca9e3b2ed08400c837ec65a30c0e34d0738a1c450269a4a116c80c",
    ]
    assert dealing.shares[1].encode().hex() == (
        "82a17802a576616c7565c42042ca581c077955fbac56a12d3550dc5c8e5d761ff742d852acace02136fa7906"
    )
    assert dealing.commitments.encode().hex() == (
        "81a6706f696e747392"
        "c420ec8a63ca81f5fccc64cf13cc9cae6d8f1e77cbde293218e0639d699d67944a88"
        "c420bde61abdd061ca05676785a1caca61a1cd47ad47c340ef22a761a5a262268ca1"
    )
    assert dealing.commitments.digest().hex() == "828a0e50670efa0cb9aadd3db9ede4ed50e9510a4cb094ca20581c846e5b2576"
    assert public_share_point(2, dealing.commitments).hex() == (
        "f398089fe8a14c770c4a3cbf6ca0d24d8d48b0d11576d0c5acdad6673f3c004c"
    )
    proof = prove_possession(dealing.shares[1], dealing.commitments, nonce=NONCE, binding=BINDING, randbytes=randbytes)
    assert proof.hex() == (
        "8e02a8699db5acf34075104fe6c63b4fe168604d0d9e7d1ad7c8b56d587a9ea3"
        "e373532b18d7fb8fbc6332f694e0a94cbcb4a8ca2cf49ef4d704c3113230fa07"
    )
    assert verify_possession(proof, 2, dealing.commitments, nonce=NONCE, binding=BINDING)
    public = public_share_point(2, dealing.commitments)
    c = transcript_challenge(NONCE, BINDING, 2, dealing.commitments, public, proof[:32])
    assert scalar(c).hex() == "a1ca3b551dfc24ce62fd5b4277b9d48e7974345346758205f17f29b8e23bed0e"
    r = int.from_bytes(hashlib.sha512(b"ftm-custody-vector" + bytes([2])).digest(), "little") % L
    assert scalar(r).hex() == "795051684adebd453e2df8575fac0d6e8044056177bb5eebbc51b6d2310a5a02"
    assert proof == point_of(r) + scalar(r + c * to_int(dealing.shares[1].value))
    context = epoch_context("lumen", 7)
    assert context.hex() == "056c756d656e0000000000000007"
    assert derive_epoch_key(dealing.secret, context=context).hex() == (
        "2d7e8a48a7a0077c42dd84e9825c65eff8a3dd86c179cb2d02ef6d40a355e06a"
    )
    # The example from its stated draws alone: f(X) = a_0 + a_1·X with a_i = SHA-512(... ‖ i) mod L.
    a0, a1 = (int.from_bytes(hashlib.sha512(b"ftm-custody-vector" + bytes([i])).digest(), "little") % L for i in (0, 1))
    assert scalar(a1).hex() == "1955013a6b5149408179e3d292e70f0915af9714d930b2c9985588826b1c4e06"
    assert [to_int(share.value) for share in dealing.shares] == [(a0 + a1 * x) % L for x in (1, 2, 3)]
