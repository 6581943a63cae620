"""Invariant 1 under threshold custody: no persona plaintext and no key material in any file the node or its
keepers wrote. The canary is planted in every private field of the upload; the secrets dealt, the shares in the
clear, the epoch keys derived and the ephemeral secrets runs asked keepers with (kept in the database only until
the run's commit) are recorded as they are made, and every byte under both data directories is searched for each
of them (raw, hex and base64)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ftm.federation.clock import FakeClock
from ftm.keeper import shares
from ftm.node import thresholdcustody
from tests.factories import CANARY
from tests.fakes.llm_server import FakeLLM
from tests.node.custody.grid import custody_grid


def forms(value: bytes) -> list[bytes]:
    return [value, value.hex().encode(), base64.b64encode(value), base64.urlsafe_b64encode(value).rstrip(b"=")]


async def test_no_secret_or_persona_plaintext_in_any_file_of_node_or_keepers(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets: list[bytes] = []
    real_deal, real_derive = shares.deal, shares.derive_epoch_key

    def recording_deal(k: int, n: int, **kwargs: object) -> shares.Dealing:
        dealing = real_deal(k, n, **kwargs)  # type: ignore[arg-type]
        secrets.append(dealing.secret.value)
        secrets.extend(share.value for share in dealing.shares)
        return dealing

    def recording_derive(secret: shares.Secret, *, context: bytes) -> bytes:
        key = real_derive(secret, context=context)
        secrets.append(key)
        return key

    def recording_ephemeral() -> bytes:
        secret = real_ephemeral()
        secrets.append(secret)
        return secret

    real_ephemeral = thresholdcustody.generate_inbox_secret
    monkeypatch.setattr(shares, "deal", recording_deal)
    monkeypatch.setattr(shares, "derive_epoch_key", recording_derive)
    monkeypatch.setattr(thresholdcustody, "generate_inbox_secret", recording_ephemeral)
    async with custody_grid(tmp_path, clock, llm) as grid:
        rid = (await grid.admit()).sanctuary_id
        await grid.settle()
        assert (await grid.run(rid, 0)).state == "completed"
        await grid.settle()
        assert (await grid.epochs(rid))[2].state == "committed"
        # Two dealings (admission, the run), each a secret and five shares; three derivations (two deals, one open);
        # one ephemeral secret (the run's), kept in the database until the run committed.
        assert len(secrets) == 2 * 6 + 3 + 1
        assert await grid.node.db.fetch_all("SELECT 1 FROM custody_run_keys") == []

    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    keeper_files = [path for path in files if "keepers" in path.relative_to(tmp_path).parts]
    assert any(path.name == "keeper.db" for path in keeper_files)
    assert len([p for p in keeper_files if "replicas" in p.parts and p.suffix != ".levels"]) >= 5  # ciphertext
    needles = [CANARY.encode(), *(form for secret in secrets for form in forms(secret))]
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{path.relative_to(tmp_path)} holds a secret or persona plaintext"
