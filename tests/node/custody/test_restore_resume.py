"""A restore that dies after the keepers released (before the resident was committed here) resumes under the same
disaster claim: the node kept the epoch's ephemeral secret in its data directory, the keepers answer it again (a
repeat, logged as one), and they never release the epoch under that claim to any other key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftm.federation.clock import FakeClock
from ftm.federation.identity import generate_inbox_secret, inbox_public_key
from ftm.keeper.protocol import PROTOCOL_VERSION, Ack, Purpose, ReleaseRequest
from ftm.node.keeperclient import KeeperCallError, KeeperClient
from ftm.node.restore import WORK_DIR_NAME
from ftm.node.restorekeys import KEYS_DIR_NAME
from ftm.node.store.restores import RestoreStore
from tests.factories import CANARY
from tests.fakes.llm_server import FakeLLM
from tests.keeper.keeperparties import log_entries
from tests.node.custody.restorekit import (
    SILENCE,
    WAIT,
    addresses,
    claim_for,
    fresh_node,
    keepers_and_guardians,
    lose_a_node,
    restore,
    submit,
)


class Killed(BaseException):
    """The process dies here (nothing in the node catches a BaseException it does not re-raise)."""


async def test_a_restore_killed_after_the_releases_resumes_with_the_same_claim(
    tmp_path: Path, clock: FakeClock, llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with keepers_and_guardians(tmp_path, clock) as (keepers, guardians):
        lost = await lose_a_node(tmp_path, clock, llm, keepers, guardians, count=1)
        [rid] = lost.residents
        old_host, disaster = lost.key.public_key, Purpose.DISASTER.value
        async with fresh_node(tmp_path, clock, llm) as site:
            clock.advance(SILENCE + 60)
            claim = claim_for(site, lost, guardians[:2], clock)
            assert all(isinstance(a, Ack) for a in await submit(site, keepers, claim))
            clock.advance(WAIT)

            async def die(*args: object, **kwargs: object) -> None:
                raise Killed

            with monkeypatch.context() as patch:  # killed as the install's transaction runs: nothing commits
                patch.setattr(RestoreStore, "install", die)
                with pytest.raises(Killed):
                    await restore(site, keepers, site.node.identity.key, disaster, claim.id, old_host)
            assert await site.node.residents.ids() == set()

        keys_dir = tmp_path / "fresh" / WORK_DIR_NAME / KEYS_DIR_NAME
        [kept] = list(keys_dir.glob("*.key"))
        assert kept.stat().st_mode & 0o777 == 0o600

        clock.advance(86_400)  # the operator notices a day later and runs it again, on the node reopened
        async with fresh_node(tmp_path, clock, llm) as site:
            key = site.node.identity.key
            client = KeeperClient(key, clock)
            try:  # the epoch under this claim goes to the kept key only
                other = inbox_public_key(generate_inbox_secret())
                request = ReleaseRequest(PROTOCOL_VERSION, rid, 2, disaster, other, claim.id)
                with pytest.raises(KeeperCallError) as refused:
                    await client.release(addresses(keepers)[0], request)
                assert refused.value.code == "already_released"
            finally:
                await client.close()

            [outcome], _ = await restore(site, keepers, key, disaster, claim.id, old_host)
            assert (outcome.state, outcome.epoch, outcome.new_epoch) == ("restored", 2, 3), outcome
            package = await site.node.packages.open(rid)
            assert package == lost.packages[rid] and CANARY in package.system_prompt
            assert not list(keys_dir.glob("*.key"))  # the resident lives here: its restore's keys are gone

        granted = [
            (e.data.get("code"), e.data.get("repeat"))
            for keeper in keepers
            for e in await log_entries(keeper.keeper)
            if e.kind == "release_granted" and e.data.get("purpose") == "disaster"
        ]
        assert granted.count(("disaster_released", False)) == 3  # k = 3 keepers released, once each
        assert granted.count(("disaster_released", True)) == 3  # the resumed restore's shares were repeats
    for path in (tmp_path / "fresh").rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), f"{path} holds persona plaintext"
