"""Fixtures for keeper tests: a keeper on a real server at 127.0.0.1 on the shared fake clock, an enrolled host,
and a factory of other parties (destinations, guardians, strangers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from ftm.federation.clock import FakeClock
from ftm.federation.identity import SigningKey
from ftm.keeper.daemon import Keeper
from tests.keeper.keeperparties import Party, running_keeper

KeeperSite = tuple[Keeper, TestServer]


@pytest.fixture
async def keeper_site(tmp_path: Path, clock: FakeClock) -> AsyncIterator[KeeperSite]:
    async with running_keeper(tmp_path / "keeper", clock) as site:
        yield site


@pytest.fixture
def keeper(keeper_site: KeeperSite) -> Keeper:
    return keeper_site[0]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


@pytest.fixture
def party(keeper_site: KeeperSite, session: aiohttp.ClientSession, clock: FakeClock) -> Callable[[], Party]:
    keeper, server = keeper_site

    def make() -> Party:
        return Party(SigningKey.generate(), clock, server, keeper.key.public_key, session)

    return make


@pytest.fixture
async def host(keeper: Keeper, party: Callable[[], Party]) -> Party:
    enrolled = party()
    await keeper.add_host(enrolled.public_key, "http://127.0.0.1:9", "registration-1", via="manual")
    return enrolled
