"""Verifiable-shares benchmark: dealing, verifying, combining and proving possession, against raw PyNaCl.

Run from the repository root:

    .venv/bin/python -m tests.bench.bench_shares [--schemes 2-of-3,3-of-5,5-of-9] [--repeat 7] [--calls 200]

Baselines, measured in the same run: the raw libsodium calls the scheme is built from (a fixed-base
`crypto_scalarmult_ed25519_base_noclamp`, a variable-base `crypto_scalarmult_ed25519_noclamp`, which also
validates its point, a point addition, a scalar multiplication mod L, a scalar inversion) and a raw Ed25519
signature verification (`nacl.signing.VerifyKey.verify` of 64 bytes), the natural yardstick for "one public-key
check". For each operation the table gives µs per call, its ratio to one raw Ed25519 verify, and its floor: the
raw libsodium calls the operation makes (counted in `floors`), priced at the baselines, so `op / floor` is the
cost of everything around them (Python, pynacl's argument checks, hashing, validation, encoding).

Operations: `deal` (a fresh secret, k-of-n); `verify_share` (one share); `combine` with k shares and with all n
(every share is verified, at once by a random linear combination); `combine_valid` with one bad share among n
(the batch check fails, so every share is checked on its own to name it); `prove_possession`;
`verify_possession`; `derive_epoch_key`; `Share.decode`; `Commitments.decode` (which validates every point).
Every figure is the best over `--repeat` rounds of the mean of `--calls` calls, with the collector paused; each
round times every baseline and operation in turn, so baselines and operations share the machine's conditions.
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable

import nacl.bindings as sodium
import nacl.signing

from ftm.keeper.shares import (
    Commitments,
    Share,
    combine,
    combine_valid,
    deal,
    derive_epoch_key,
    epoch_context,
    prove_possession,
    verify_possession,
    verify_share,
)

NONCE = bytes(range(16))
BINDING = b"keeper-key-id"
TARGET_DEAL_MS = 5.0


def mean_us(calls: int, action: Callable[[], object]) -> float:
    """Mean wall time of `calls` calls, in microseconds, with the collector paused."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(calls):
            action()
        return (time.perf_counter() - start) / calls * 1e6
    finally:
        gc.enable()


def best_round_robin(repeat: int, calls: int, actions: dict[str, Callable[[], object]]) -> dict[str, float]:
    """µs per call of each action: the best over `repeat` rounds, each round timing every action in turn, so a
    baseline and the operations compared with it see the same machine (others' load comes and goes)."""
    best = dict.fromkeys(actions, float("inf"))
    for _ in range(repeat):
        for name, action in actions.items():
            best[name] = min(best[name], mean_us(calls, action))
    return best


def raw_actions() -> dict[str, Callable[[], object]]:
    """The raw PyNaCl calls the figures are compared with."""
    scalar = sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64))
    other = sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64))
    point = sodium.crypto_scalarmult_ed25519_base_noclamp(scalar)
    second = sodium.crypto_scalarmult_ed25519_base_noclamp(other)
    key = nacl.signing.SigningKey.generate()
    signed = key.sign(os.urandom(64))
    verify_key = key.verify_key
    return {
        "base": lambda: sodium.crypto_scalarmult_ed25519_base_noclamp(scalar),
        "var": lambda: sodium.crypto_scalarmult_ed25519_noclamp(scalar, point),
        "add": lambda: sodium.crypto_core_ed25519_add(point, second),
        "scalar": lambda: sodium.crypto_core_ed25519_scalar_mul(scalar, other),
        "invert": lambda: sodium.crypto_core_ed25519_scalar_invert(scalar),
        "valid": lambda: sodium.crypto_core_ed25519_is_valid_point(point),
        "verify": lambda: verify_key.verify(signed),
    }


def floors(k: int, n: int) -> dict[str, dict[str, int]]:
    """The raw libsodium calls each operation needs (scalar = any scalar op: mul, add, sub, reduce)."""

    def combining(m: int) -> dict[str, int]:
        # batch check: m weights, Σ w_i·s_i, Σ_i w_i·x_i^j for each j, k var mults, one base mult;
        # interpolation: per share 3(k-1) ops for λ, 2 to apply it, one inversion each.
        return {
            "base": 1,
            "var": k,
            "add": k - 1,
            "scalar": m + 2 * m + 2 * m * k + k * (3 * (k - 1) + 3),
            "invert": k,
        }

    return {
        "deal": {"base": k, "scalar": k + 2 * n * (k - 1)},
        "verify_share": {"base": 1, "var": k - 1, "add": k - 1},
        "combine k": combining(k),
        "combine n": combining(n),
        # batch fails, then one check per share (base + (k-1) var and add each), interpolation as above
        "combine_valid, 1 bad of n": {
            "base": 1 + n,
            "var": k + n * (k - 1),
            "add": k - 1 + n * (k - 1),
            "scalar": 3 * n + 2 * n * k + k * (3 * (k - 1) + 3),
            "invert": k,
        },
        "prove_possession": {"base": 2, "scalar": 4},
        "verify_possession": {"base": 1, "var": k, "add": k, "scalar": 2},
        "Commitments.decode": {"valid": k},
    }


def scheme_actions(k: int, n: int) -> dict[str, Callable[[], object]]:
    """The operations timed for one k-of-n scheme, each checked once for the right answer."""
    dealing = deal(k, n)
    commitments, shares = dealing.commitments, dealing.shares
    bad = list(shares)
    bad[0] = Share(1, shares[1].value)
    proof = prove_possession(shares[0], commitments, nonce=NONCE, binding=BINDING)
    context = epoch_context("abcdefghijklmnopqrstuvwxyz", 7)
    share_bytes, commitment_bytes = shares[0].encode(), commitments.encode()
    assert combine(shares[:k], commitments) == dealing.secret == combine(shares, commitments)
    assert combine_valid(bad, commitments)[1][0].x == 1 and verify_share(shares[-1], commitments)
    assert verify_possession(proof, 1, commitments, nonce=NONCE, binding=BINDING)
    return {
        "deal": lambda: deal(k, n),
        "verify_share": lambda: verify_share(shares[-1], commitments),
        "combine k": lambda: combine(shares[:k], commitments),
        "combine n": lambda: combine(shares, commitments),
        "combine_valid, 1 bad of n": lambda: combine_valid(bad, commitments),
        "prove_possession": lambda: prove_possession(shares[0], commitments, nonce=NONCE, binding=BINDING),
        "verify_possession": lambda: verify_possession(proof, 1, commitments, nonce=NONCE, binding=BINDING),
        "derive_epoch_key": lambda: derive_epoch_key(dealing.secret, context=context),
        "Share.decode": lambda: Share.decode(share_bytes),
        "Commitments.decode": lambda: Commitments.decode(commitment_bytes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schemes", default="2-of-3,3-of-5,5-of-9", help="k-of-n schemes, comma-separated")
    parser.add_argument("--repeat", type=int, default=7, help="rounds per figure; the best is reported")
    parser.add_argument("--calls", type=int, default=200, help="calls per round")
    args = parser.parse_args()
    schemes = [(int(k), int(n)) for k, n in (scheme.split("-of-") for scheme in args.schemes.split(","))]

    raws = raw_actions()
    actions: dict[str, Callable[[], object]] = {f"raw {kind}": action for kind, action in raws.items()}
    per_scheme = {(k, n): scheme_actions(k, n) for k, n in schemes}
    for (k, n), timed in per_scheme.items():
        actions.update({f"{k}-of-{n} {name}": action for name, action in timed.items()})
    figures = best_round_robin(args.repeat, args.calls, actions)
    raw = {kind: figures[f"raw {kind}"] for kind in raws}

    out = sys.stdout.write
    out(f"Shares benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, ")
    out(f"best of {args.repeat} rounds x {args.calls} calls\n\n")
    out("| raw PyNaCl call | µs |\n|---|---|\n")
    labels = {
        "base": "`crypto_scalarmult_ed25519_base_noclamp`",
        "var": "`crypto_scalarmult_ed25519_noclamp` (validates the point)",
        "add": "`crypto_core_ed25519_add`",
        "scalar": "`crypto_core_ed25519_scalar_mul`",
        "invert": "`crypto_core_ed25519_scalar_invert`",
        "valid": "`crypto_core_ed25519_is_valid_point`",
        "verify": "Ed25519 verify, 64-byte message (`VerifyKey.verify`)",
    }
    for kind, label in labels.items():
        out(f"| {label} | {raw[kind]:.1f} |\n")
    out("\n| scheme | operation | µs | / Ed25519 verify | floor µs (raw calls) | op / floor |\n")
    out("|---|---|---|---|---|---|\n")
    deal_ms: dict[str, float] = {}
    for (k, n), timed in per_scheme.items():
        counts = floors(k, n)
        for name in timed:
            micros = figures[f"{k}-of-{n} {name}"]
            floor = sum(raw[kind] * count for kind, count in counts.get(name, {}).items())
            floor_text, ratio = (f"{floor:.0f}", f"{micros / floor:.2f}") if floor else ("-", "-")
            out(f"| {k}-of-{n} | `{name}` | {micros:.0f} | {micros / raw['verify']:.2f} | {floor_text} | {ratio} |\n")
            if name == "deal":
                deal_ms[f"{k}-of-{n}"] = micros / 1000
    if "3-of-5" in deal_ms:
        verdict = "met" if deal_ms["3-of-5"] <= TARGET_DEAL_MS else "MISSED"
        out(f"\nTarget: deal 3-of-5 <= {TARGET_DEAL_MS:g} ms: {deal_ms['3-of-5']:.3f} ms, {verdict}.\n")


if __name__ == "__main__":
    main()
