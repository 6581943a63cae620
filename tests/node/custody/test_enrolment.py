"""Keeper nodes enrol with a vetted Keeper's token, in a signed request; a threshold node needs enough of them."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from ftm.config.loading import load_settings
from ftm.federation.clock import FakeClock
from ftm.federation.identity import SigningKey
from ftm.federation.signedrequests import RequestSigner
from ftm.keeper.enrolment import EnrolmentError, enrol
from ftm.keeper.protocol import CONTENT_TYPE, ENROL_PATH
from ftm.node.app import open_node
from ftm.node.datadir import DataDir
from ftm.node.errors import ConfigurationError
from tests.fakes.llm_server import FakeLLM
from tests.node.custody.grid import custody_grid


async def test_only_a_vetted_keepers_token_enrols_a_keeper_node(tmp_path: Path, clock: FakeClock, llm: FakeLLM) -> None:
    async with custody_grid(tmp_path, clock, llm, keepers=5) as grid:
        service = grid.node.keeper_service
        pending = await service.register("Late", "I came late.", "late@example.org", "A replica.", None, address="x")
        newcomer = SigningKey.generate()
        async with aiohttp.ClientSession() as session:

            async def enrol_with(token: str, key: SigningKey = newcomer, url: str = "http://127.0.0.1:9") -> str:
                try:
                    await enrol(session, key, clock, grid.site.url, url, token)
                except EnrolmentError as error:
                    return str(error)
                return "enrolled"

            assert "403 keeper_not_vetted" in await enrol_with(pending.token)
            assert "403 invalid_token" in await enrol_with("ftm_kp_not-a-token")
            await service.vet(pending.keeper_id)
            assert "422 bad_keeper_url" in await enrol_with(pending.token, url="ftp://keeper.example")
            # The key of a keeper already enrolled for another Keeper stays with that Keeper.
            taken = grid.keepers[0].keeper.key
            assert "403 keeper_key_taken" in await enrol_with(pending.token, key=taken)
            assert await enrol_with(pending.token) == "enrolled"
            assert await enrol_with(pending.token) == "enrolled"  # again: the same keeper, refreshed

            # An unsigned request, or one signed for another node, never reaches the enrolment.
            url = grid.site.url + ENROL_PATH
            async with session.post(url, data=b"\x80", headers={"Content-Type": CONTENT_TYPE}) as response:
                assert response.status == 400 and (await response.json())["error"]["code"] == "missing_signature_header"
            headers = RequestSigner(newcomer, clock).headers("POST", url, b"\x80", SigningKey.generate().public_key)
            async with session.post(url, data=b"\x80", headers={**headers, "Content-Type": CONTENT_TYPE}) as response:
                assert (await response.json())["error"]["code"] == "wrong_audience"

        store = grid.node.custody_parts.store
        enrolled = await store.keeper(newcomer.public_key)
        assert enrolled is not None and (enrolled.registration_id, enrolled.state) == (pending.keeper_id, "active")
        assert len(await store.dealable()) == 6


async def test_a_threshold_node_needs_as_many_enrolled_keepers_as_it_deals_to(tmp_path: Path, clock: FakeClock) -> None:
    settings = load_settings(None, {"FTM_CUSTODY_MODE": "threshold"})
    with pytest.raises(ConfigurationError, match="0 keeper nodes of vetted Keepers are enrolled"):
        async with open_node(DataDir(tmp_path / "node"), settings, env={}, clock=clock):
            pass
    wrong = load_settings(None, {"FTM_CUSTODY_MODE": "threshold", "FTM_CUSTODY_THRESHOLD": "5"})
    with pytest.raises(ConfigurationError, match=r"must be less than custody\.keepers"):
        async with open_node(DataDir(tmp_path / "other"), wrong, env={}, clock=clock):
            pass
